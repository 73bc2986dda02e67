"""Stratified, seeded train/val/test split (one fixed split; the five models differ only by seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import ClinxaiError


def stratified_split(cases: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Add a `split` column (train/val/test) to `cases` (columns case, label), stratified by label.

    Per class, test and val take round(fraction * n) cases (at least one when the class has three or more),
    train the rest. The result depends only on the case list, the fractions and the seed.
    """
    total = sum(fractions.values())
    if not np.isclose(total, 1.0):
        raise ClinxaiError(f"split fractions must sum to 1, got {fractions} (sum {total:.3f}); fix config key 'split'.")
    rng = np.random.default_rng(seed)
    out = cases.sort_values("case").reset_index(drop=True).copy()
    out["split"] = "train"
    for idx in out.groupby("label").groups.values():
        idx = np.array(sorted(idx))
        rng.shuffle(idx)
        n = len(idx)
        n_test = int(round(fractions["test"] * n))
        n_val = int(round(fractions["val"] * n))
        if n >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        out.loc[idx[:n_test], "split"] = "test"
        out.loc[idx[n_test:n_test + n_val], "split"] = "val"
    for part in ("train", "val", "test"):
        if not (out["split"] == part).any():
            raise ClinxaiError(f"the {part} split is empty with {len(out)} cases: add cases or change 'split'.")
    return out
