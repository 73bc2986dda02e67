"""The localisation stage's per-map scores (issue 20, torch-free): every threshold-free and coherence score of one
method's post-processed maps against the task's clinical masks, per (model, case), pooled over modalities and per
modality, in long format (one scalar per row, with its declared better direction) for the shared statistics path
(rule localisation)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attribution.postprocess import STATUS_NONFINITE
from ..io import save_csv
from ..metrics.coherence import rma, rra
from ..metrics.voxel_ranking import pointing_game, threshold_free
from ..tasks import TaskKind
from .plausibility import processed_maps

# metric -> better direction; in this order
SCORES = {"rma": "higher", "rra": "higher", "vxap": "higher", "max_f1": "higher", "auroc": "higher",
          "pointing_game": "higher"}


def map_scores(parts, masks, names, seed: int = 0, key: str = "") -> list[dict]:
    """Rows (modality, metric, value, better) of one map: pooled ("all") and per modality that carries a mask.
    VxAP, MaxF1 and AUROC come from one sort per scope (clinxai.metrics.voxel_ranking.threshold_free)."""
    rows = []
    scopes = [("all", parts, masks)] + [(n, [p], [m]) for n, p, m in zip(names, parts, masks) if m is not None]
    for scope, p, m in scopes:
        values = {"rma": rma(p, m), "rra": rra(p, m, seed, f"{key}/{scope}"), **threshold_free(p, m),
                  "pointing_game": pointing_game(p, m)}
        rows += [{"modality": scope, "metric": k, "value": values[k], "better": b} for k, b in SCORES.items()]
    return rows


def run_localisation(task: str, kind: TaskKind, method: str, seeds, maps, predictions, data_dir, names: list[str],
                     post_cfg: dict, dilation: int, out_path, masks_of: dict | None = None) -> pd.DataFrame:
    """Long-format scores of one method's maps on every model of a task (`masks_of`: see processed_maps)."""
    rows = []
    for seed, _, r, parts, masks, status in processed_maps(task, kind, method, seeds, maps, predictions, data_dir,
                                                           names, post_cfg, dilation, masks_of):
        base = {"task": task, "seed": seed, "method": method, "case": r.case, "label": r.label, "pred": r.pred,
                "status": status}
        if status == STATUS_NONFINITE:
            rows += [{**base, "modality": "all", "metric": m, "value": np.nan, "better": b}
                     for m, b in SCORES.items()]
            continue
        # ties in RRA: an order seeded per model and case, the same for every method
        rows += [{**base, **s} for s in map_scores(parts, masks, names, int(seed), str(r.case))]
    table = pd.DataFrame(rows)
    save_csv(out_path, table)
    return table
