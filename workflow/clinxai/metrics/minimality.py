"""Minimality of a map (seed 004's saliency-card attribute; issue 19): how few voxels carry its positive mass.

All on the post-processed positive map R⁺ (modalities pooled), one scalar per map, higher = sparser:
- Gini index (Hurley & Rickard 2009, Quantus' Sparseness): with R⁺ sorted ascending, G = Σ_i (2i − n − 1) R⁺_(i) /
  (n Σ R⁺). 0 for a constant map, (n − 1)/n → 1 for a single voxel.
- top-share(f): the share of the positive mass in the ceil(f·n) largest voxels (f = 1 % and 5 %).
- max/mean: the largest value over the mean value.
NaN for a map without positive mass.
"""

from __future__ import annotations

import math

import numpy as np


def _positive(values) -> np.ndarray:
    return np.maximum(np.concatenate([np.asarray(v, np.float64).ravel() for v in values]), 0)


def gini(values) -> float:
    """`values`: a list of per-modality arrays (or one array in a list)."""
    a = np.sort(_positive(values))
    n, total = a.size, a.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * a) / (n * total))


def top_share(values, fraction: float) -> float:
    a = _positive(values)
    total = a.sum()
    if a.size == 0 or total <= 0:
        return float("nan")
    k = max(1, math.ceil(fraction * a.size))
    return float(np.partition(a, a.size - k)[a.size - k:].sum() / total)


def max_mean_ratio(values) -> float:
    a = _positive(values)
    if a.size == 0 or a.sum() <= 0:
        return float("nan")
    return float(a.max() / a.mean())


MINIMALITY = {"gini": gini, "top1_share": lambda v: top_share(v, 0.01), "top5_share": lambda v: top_share(v, 0.05),
              "max_mean_ratio": max_mean_ratio}
