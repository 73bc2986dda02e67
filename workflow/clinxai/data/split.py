"""Stratified, seeded train/val/test split (one fixed split; the five models differ only by seed), grouped by
patient where the data say which rows are one patient's; or the split a dataset carries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import ClinxaiError

PARTS = ("train", "val", "test")


def stratified_split(cases: pd.DataFrame, fractions: dict[str, float], seed: int,
                     groups: pd.Series | None = None) -> pd.DataFrame:
    """Add a `split` column (train/val/test) to `cases` (columns case, label), stratified by label.

    Per class, test and val take round(fraction * n) cases (at least one when the class has three or more),
    train the rest. The result depends only on the case list, the fractions and the seed.
    `groups` (aligned with `cases`: a patient id per case) keeps every group in one split: the groups are split
    instead, stratified by the label of their first case, with a group counting as its number of cases.
    """
    total = sum(fractions.values())
    if not np.isclose(total, 1.0):
        raise ClinxaiError(f"split fractions must sum to 1, got {fractions} (sum {total:.3f}); fix config key 'split'.")
    if groups is not None:
        return _grouped(cases, fractions, seed, pd.Series(np.asarray(groups), index=cases.index))
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
    return _check(out)


def _grouped(cases: pd.DataFrame, fractions: dict, seed: int, groups: pd.Series) -> pd.DataFrame:
    """Whole groups to test, then val, until each class's share is reached (groups in a seeded order; a class's
    last group always trains)."""
    rng = np.random.default_rng(seed)
    out = cases.assign(group=groups.astype(str)).sort_values("case").reset_index(drop=True)
    first = out.groupby("group", sort=True).agg(label=("label", "first"), n=("case", "size"))
    out["split"] = "train"
    for _, members in first.groupby("label"):
        names = np.array(sorted(members.index))
        rng.shuffle(names)
        n = int(members["n"].sum())
        want = {"test": int(round(fractions["test"] * n)), "val": int(round(fractions["val"] * n))}
        if len(names) >= 3:
            want = {k: max(v, 1) for k, v in want.items()}
        taken = {"test": 0, "val": 0}
        for name in names[:-1]:  # the last group stays in train: every class keeps training cases
            part = next((p for p in ("test", "val") if taken[p] < want[p]), None)
            if part is None:
                break
            out.loc[out["group"] == name, "split"] = part
            taken[part] += int(members.at[name, "n"])
    return _check(out.drop(columns="group"))


def given_split(cases: pd.DataFrame) -> pd.DataFrame:
    """The split a dataset carries (a manifest's split column): checked, in case order."""
    out = cases[["case", "label", "split"]].sort_values("case").reset_index(drop=True)
    return _check(out)


def _check(out: pd.DataFrame) -> pd.DataFrame:
    for part in PARTS:
        if not (out["split"] == part).any():
            raise ClinxaiError(f"the {part} split is empty with {len(out)} cases: add cases or change 'split' (a "
                               "manifest's split column: give it train, val and test rows).")
    return out
