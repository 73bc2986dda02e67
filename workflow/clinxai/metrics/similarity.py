"""How alike two maps of the same case are (issue 19: input, model and label sensitivity, determinism,
hyperparameter dependence). A map is a list of per-modality arrays; the positive part is compared, modalities pooled
unless said otherwise.

- spearman: Spearman's ρ of the two positive maps' voxel values (NaN when either is constant).
- top_iou(f): IoU of the two sets of the ceil(f·n) most relevant voxels, ties in a seeded order (f = 10 %).
- ssim: structural similarity (Wang et al. 2004; MONAI's SSIMMetric, Gaussian window of σ 1.5) of the two maps, each
  scaled by its own maximum, per modality, averaged weighted by voxel count.
- relative_change: ‖Φ' − Φ‖ / ‖Φ‖ (Frobenius) of the maps normalised by their maximum absolute value -- one draw of
  max-sensitivity (Yeh et al. 2019) as Quantus 0.6 computes it with normalise_by_max on one case; max_sensitivity is
  the largest over the draws (tested equal to Quantus on the same noise).
- mean_pairwise_spearman and voxel_cv: agreement of R repeated maps (determinism): the mean ρ over all pairs, and the
  mean over voxels with a positive mean of the coefficient of variation std/mean across repeats.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .coherence import ranking


def _flat(parts) -> np.ndarray:
    return np.concatenate([np.asarray(p, np.float64).ravel() for p in parts])


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    x, y = np.maximum(_flat(a), 0), np.maximum(_flat(b), 0)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def top_iou(a, b, fraction: float = 0.1, seed: int = 0, key: str = "") -> float:
    """Only positive voxels can be among a map's most relevant: a map with fewer than k of them contributes those
    (zero voxels filled in a shared tie order would count as agreement)."""
    x, y = _flat(a), _flat(b)
    k = max(1, math.ceil(fraction * x.size))
    tops = []
    for v in (x, y):
        top = np.zeros(v.size, bool)
        top[ranking(np.maximum(v, 0), seed, key)[:min(k, int((v > 0).sum()))]] = True
        tops.append(top)
    union = (tops[0] | tops[1]).sum()
    return float((tops[0] & tops[1]).sum() / union) if union else float("nan")


def ssim(a, b) -> float:
    import torch
    from monai.metrics import SSIMMetric

    values, weights = [], []
    for pa, pb in zip(a, b):
        pa, pb = np.maximum(np.asarray(pa, np.float64), 0), np.maximum(np.asarray(pb, np.float64), 0)
        if pa.max() <= 0 and pb.max() <= 0:  # empty in both: nothing to compare there
            continue
        pa, pb = pa / max(pa.max(), 1e-300), pb / max(pb.max(), 1e-300)  # an empty one stays a zero image
        win = [min(11, s if s % 2 else s - 1) for s in pa.shape]  # the window must fit every axis
        metric = SSIMMetric(spatial_dims=pa.ndim, data_range=1.0, win_size=win)
        ta, tb = torch.from_numpy(pa)[None, None], torch.from_numpy(pb)[None, None]
        values.append(float(metric(ta, tb).item()))
        weights.append(pa.size)
    return float(np.average(values, weights=weights)) if values else float("nan")


def relative_change(a, b) -> float:
    x, y = _flat(a), _flat(b)
    nx, ny = np.abs(x).max(), np.abs(y).max()
    if nx == 0:
        return float("nan")
    x, y = x / nx, (y / ny if ny > 0 else y)
    return float(np.linalg.norm(y - x) / np.linalg.norm(x))


def max_sensitivity(original, perturbed: list) -> float:
    """NaN when a draw's change is undefined (a map without finite values or all zero)."""
    return float(np.max([relative_change(original, p) for p in perturbed])) if perturbed else float("nan")


def mean_pairwise_spearman(maps: list) -> float:
    rhos = np.array([spearman(a, b) for a, b in itertools.combinations(maps, 2)])
    return float(np.nanmean(rhos)) if np.isfinite(rhos).any() else float("nan")  # pairs with a constant map left out


def voxel_cv(maps: list) -> float:
    stack = np.stack([np.maximum(_flat(m), 0) for m in maps])
    mean = stack.mean(axis=0)
    keep = mean > 0
    if not keep.any():
        return float("nan")
    return float(np.mean(stack[:, keep].std(axis=0) / mean[keep]))
