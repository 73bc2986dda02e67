"""The localisation stage's per-map scores (issue 20, torch-free): every threshold-free and coherence score of one
method's post-processed maps against the task's clinical masks, per (model, case), pooled over modalities and per
modality, in long format (one scalar per row, with its declared better direction) for the shared statistics path.
The rules that run it are not wired yet."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attribution.postprocess import STATUS_NONFINITE
from ..io import save_csv
from ..metrics.coherence import rma, rra
from ..metrics.voxel_ranking import auroc, max_f1, pointing_game, vxap
from ..tasks import TaskKind
from .plausibility import processed_maps

# metric -> (function of (parts, masks, seed, key), better direction)
SCORES = {
    "rma": (lambda p, m, s, k: rma(p, m), "higher"),
    "rra": (lambda p, m, s, k: rra(p, m, s, k), "higher"),
    "vxap": (lambda p, m, s, k: vxap(p, m), "higher"),
    "max_f1": (lambda p, m, s, k: max_f1(p, m), "higher"),
    "auroc": (lambda p, m, s, k: auroc(p, m), "higher"),
    "pointing_game": (lambda p, m, s, k: pointing_game(p, m), "higher"),
}


def map_scores(parts, masks, names, seed: int = 0, key: str = "") -> list[dict]:
    """Rows (modality, metric, value, better) of one map: pooled ("all") and per modality that carries a mask."""
    rows = []
    scopes = [("all", parts, masks)] + [(n, [p], [m]) for n, p, m in zip(names, parts, masks) if m is not None]
    for scope, p, m in scopes:
        for metric, (fn, better) in SCORES.items():
            rows.append({"modality": scope, "metric": metric, "value": fn(p, m, seed, f"{key}/{scope}"),
                         "better": better})
    return rows


def run_localisation(task: str, kind: TaskKind, method: str, seeds, maps, predictions, data_dir, names: list[str],
                     post_cfg: dict, dilation: int, out_path) -> pd.DataFrame:
    """Long-format scores of one method's maps on every model of a task."""
    rows = []
    for seed, _, r, parts, masks, status in processed_maps(task, kind, method, seeds, maps, predictions, data_dir,
                                                           names, post_cfg, dilation):
        base = {"task": task, "seed": seed, "method": method, "case": r.case, "label": r.label, "pred": r.pred,
                "status": status}
        if status == STATUS_NONFINITE:
            rows += [{**base, "modality": "all", "metric": m, "value": np.nan, "better": b}
                     for m, (_, b) in SCORES.items()]
            continue
        rows += [{**base, **s} for s in map_scores(parts, masks, names, int(seed), f"{method}/{r.case}")]
    table = pd.DataFrame(rows)
    save_csv(out_path, table)
    return table
