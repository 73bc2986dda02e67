"""Threshold-free localisation (SE3D, ICIP 2024): the map's voxel values as a ranking of the clinical mask's voxels.

- VxAP: average precision of the map against the mask (chance level: the mask's prevalence).
- MaxF1: the best F1 over all thresholds of the map.
- AUROC: area under the ROC curve of the map against the mask (0.5: chance).
- Pointing game: 1 when the map's maximum lies inside the mask, 0 outside (Zhang et al.); when several voxels share
  the maximum, the share of them inside.
Per modality or pooled over modalities (clinxai.metrics.coherence.pooled). NaN where undefined (an empty or full
mask; a map without positive values for the pointing game).
"""

from __future__ import annotations

import numpy as np

from .coherence import pooled


def _ranked(values: np.ndarray, inside: np.ndarray):
    """Distinct thresholds from the top: true and false positives above each (ties move together).

    The voxels at the lowest value are one tie group, the last: most voxels of a positive map are 0, so only the
    others are sorted (counts at a group's end do not depend on the order within groups, so this equals one sort of
    every voxel; nor does the sort need to be stable)."""
    if values.size == 0 or not np.isfinite(values).all():  # NaN / inf: each its own group, so one stable sort of
        order = np.argsort(-values, kind="stable")  # everything, as before (the stage skips non-finite maps)
    else:
        top = np.flatnonzero(values > values.min())
        order = top[np.argsort(-values[top])]
    v, y = values[order], inside[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(v)), len(v) - 1] if len(v) else np.zeros(0, np.int64)
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    if len(order) < values.size:  # the lowest value's group: every voxel above its threshold
        n_in = int(inside.sum())
        tp, fp = np.r_[tp, n_in], np.r_[fp, values.size - n_in]
    return tp.astype(float), fp.astype(float)


def vxap(parts, masks) -> float:
    values, inside = pooled(parts, masks)
    n_pos = inside.sum()
    if n_pos == 0 or n_pos == inside.size:
        return float("nan")
    tp, fp = _ranked(values, inside)
    precision, recall = tp / (tp + fp), tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))  # step-wise, as scikit-learn defines AP


def max_f1(parts, masks) -> float:
    values, inside = pooled(parts, masks)
    n_pos = inside.sum()
    if n_pos == 0:
        return float("nan")
    tp, fp = _ranked(values, inside)
    return float(np.max(2 * tp / (tp + fp + n_pos)))


def auroc(parts, masks) -> float:
    values, inside = pooled(parts, masks)
    n_pos, n_neg = inside.sum(), (~inside).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(values)  # ties get half credit
    return float((ranks[inside].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def threshold_free(parts, masks) -> dict:
    """VxAP, MaxF1 and AUROC from one sort of the voxels (the stage's path; the functions above are the reference
    forms the tests hold it to). AUROC is the trapezoid area under the ROC points of the distinct thresholds, which
    gives tied voxels half credit exactly as the rank formula does."""
    values, inside = pooled(parts, masks)
    n_pos, n_neg = int(inside.sum()), int((~inside).sum())
    nan = float("nan")
    if n_pos == 0:
        return {"vxap": nan, "max_f1": nan, "auroc": nan}
    tp, fp = _ranked(values, inside)
    precision, recall = tp / (tp + fp), tp / n_pos
    out = {"vxap": float(np.sum(np.diff(np.r_[0.0, recall]) * precision)) if n_neg else nan,
           "max_f1": float(np.max(2 * tp / (tp + fp + n_pos))), "auroc": nan}
    if n_neg:
        out["auroc"] = float(np.trapezoid(np.r_[0.0, recall], np.r_[0.0, fp / n_neg]))
    return out


def pointing_game(parts, masks) -> float:
    values, inside = pooled(parts, masks)
    if values.size == 0 or values.max() <= 0 or inside.sum() == 0:
        return float("nan")
    top = values == values.max()
    return float(inside[top].mean())
