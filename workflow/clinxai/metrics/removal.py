"""Cumulative feature removal and ΔAUPC (SPEC §4, G3 truthfulness, paper §4.3.1).

At step q (0, 0.1, ..., 1) the voxels whose positive map value is >= the (1 - q) quantile of the map's non-zero
values are replaced; thresholds are computed once per map, so removal is cumulative, and modalities are pooled.
Step 0 is the unperturbed input (the curve starts at the model's own performance). Each random baseline is a random
permutation of the same map: the same number of voxels is removed at every step, at random positions. Permutations
are seeded per (model seed, case, draw) and not per method, so all methods of a model are compared against the
same random positions (common random numbers: less noise in differences between methods).

Performance at each step is computed over the whole test set (accuracy or ROC AUC), one curve for the map and one
per baseline; AUPC is the trapezoid area over q, AUPC(Hb) the area of the mean baseline curve, and
ΔAUPC = AUPC(Hb) - AUPC(H): positive when removing what the map ranks first hurts more than removing random voxels.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from .. import ClinxaiError
from .classification import class_auc, roc_auc

REPLACEMENTS = ("zero", "mean", "sampled", "neighbourhood", "blur", "road")
DYNAMIC = ("road",)  # the value depends on which voxels are removed (clinxai.metrics.road), not one array per case
MAP_DEPENDENT = ("sampled",)  # one array per case, but drawn from the map's low-importance voxels: one per map
NEVER = np.iinfo(np.int16).max


def removal_fractions(n_steps: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n_steps + 1)


def removal_steps(values: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """For each voxel, the index of the first step that removes it (NEVER for voxels with value <= 0).

    Voxels with value >= quantile(non-zero values, 1 - q) are removed at step q; q = 0 removes nothing.
    """
    if len(qs) - 1 >= NEVER:
        raise ClinxaiError(f"{len(qs) - 1} removal steps (truthfulness.removal.n_steps): at most {NEVER - 1}")
    values = np.asarray(values, dtype=np.float32).ravel()
    step = np.full(values.shape, NEVER, dtype=np.int16)
    positive = values > 0
    if positive.any():
        # the quantiles of the sorted values: the same order statistics, 3x faster than np.quantile's partition
        # around 22 of them (numpy's SIMD sort; 1.6 -> 0.5 ms for a knee demo map of 83k voxels)
        kept = values[positive]
        step[positive] = first_steps(kept, np.quantile(np.sort(kept), 1.0 - qs))
    return step


def first_steps(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each value, the first j >= 1 with value >= thresholds[j] (NEVER if none; thresholds[0] is q = 0's).

    That is the first j whose running minimum of thresholds[1..j] the value reaches, NaN thresholds left out (they
    admit nothing) -- also should rounding break the thresholds' order. The minimum never rises, so the steps that
    admit a value are the last ones: counted by one comparison per step over these values (5x faster than a masked
    assignment over the whole map per step; bisection is slower still for unsorted values).
    """
    n = len(thresholds) - 1
    admitted = np.zeros(values.size, np.int16)
    for floor in np.fmin.accumulate(thresholds[1:]):
        admitted += values >= floor
    return np.where(admitted > 0, n + 1 - admitted, NEVER).astype(np.int16, copy=False)


def case_rng(seed: int, case: str, draw: int) -> np.random.Generator:
    """Random numbers per (model seed, case, draw): the same for every method."""
    return np.random.default_rng([int(seed), zlib.crc32(str(case).encode()), int(draw)])


class _PermutationCache:
    """Random permutations per (model seed, case, draw, size), kept up to a memory budget: a job that runs every
    method on one model draws each case's permutations once instead of once per method."""

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes, self.items, self.nbytes = max_bytes, {}, 0

    def get(self, seed: int, case: str, draw: int, size: int) -> np.ndarray:
        key = (int(seed), str(case), int(draw), int(size))
        perm = self.items.get(key)
        if perm is None:
            perm = case_rng(seed, case, draw).permutation(size).astype(np.int32 if size < 2**31 else np.int64)
            if self.nbytes + perm.nbytes <= self.max_bytes:  # beyond the budget: drawn again when needed
                self.items[key] = perm
                self.nbytes += perm.nbytes
        return perm


PERMUTATIONS = _PermutationCache()


def baseline_steps(step: np.ndarray, n_baselines: int, seed: int, case: str) -> np.ndarray:
    """Removal steps of the random baselines: each is the map's steps at randomly permuted positions.

    Permuting the map's values and recomputing the thresholds gives exactly this (the thresholds depend only on the
    multiset of values), so every baseline removes the same number of voxels as the map at every step.
    """
    return np.stack([step[PERMUTATIONS.get(seed, case, b + 1, step.size)] for b in range(n_baselines)])


def replacement_values(x: np.ndarray, flat_map: np.ndarray, layout, how: str, seed: int, case: str,
                       neighbourhood_size: int = 5, low_quantile: float = 0.5, blur_sigma: float = 2.0) -> np.ndarray:
    """The value each voxel takes when removed (flat, like `x`), for every replacement but the DYNAMIC ones.

    zero: 0 (glioma, synthetic; the paper). mean: the modality's (knee view's) mean over the case (knee; the paper).
    sampled: values drawn at random from the same modality's low-importance voxels (map value at or below the
    modality's `low_quantile`), so removed voxels keep a realistic intensity distribution.
    neighbourhood: the local mean of the modality over a cube of `neighbourhood_size` voxels per side.
    blur: the modality blurred by a Gaussian of `blur_sigma` voxels (seed 002's MoRF/LeRF perturbation).
    """
    out = np.empty_like(x)
    shapes = layout.modality_shapes()
    for m, sl in enumerate(layout.modality_slices()):
        xm = x[sl]
        if how == "zero":
            out[sl] = 0.0
        elif how == "mean":
            out[sl] = xm.mean()
        elif how == "sampled":
            mm = flat_map[sl]
            low = np.flatnonzero(mm <= np.quantile(mm, low_quantile))
            out[sl] = xm[case_rng(seed, case, 1_000_000 + m).choice(low, size=xm.size)]
        elif how == "neighbourhood":
            from scipy import ndimage

            out[sl] = ndimage.uniform_filter(xm.reshape(shapes[m]), size=neighbourhood_size, mode="nearest").ravel()
        elif how == "blur":
            from scipy import ndimage

            out[sl] = ndimage.gaussian_filter(xm.reshape(shapes[m]).astype(np.float64), blur_sigma,
                                              mode="nearest").ravel()
        elif how in DYNAMIC:
            raise ValueError(f"replacement {how!r} has no fixed value per voxel: use clinxai.metrics.road.fill")
        else:
            raise ClinxaiError(f"unknown replacement {how!r} (truthfulness.removal.replacement): use one of "
                               f"{', '.join(REPLACEMENTS)}")
    return out


def performance(metric: str, labels: np.ndarray, prob: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Performance over the test set: accuracy of `pred` (... x cases) or ROC AUC of `prob` (... x cases x classes)
    -- of the class-1 probability for two classes, macro one-vs-rest for more (clinxai.metrics.classification)."""
    if metric == "accuracy":
        return (pred == labels).mean(axis=-1)
    if metric == "auc":
        flat = prob.reshape(-1, *prob.shape[-2:])
        if flat.shape[-1] == 2:  # class 1's scores of every curve and step ranked in one call
            return roc_auc(labels, flat[:, :, 1]).reshape(prob.shape[:-2])
        return np.array([class_auc(labels, p) for p in flat]).reshape(prob.shape[:-2])
    raise ClinxaiError(f"unknown performance metric {metric!r} (truthfulness.metric): use accuracy or auc")


def aupc(q: np.ndarray, performance: np.ndarray) -> float:
    return float(np.trapezoid(performance, q))


def delta_aupc(curves: pd.DataFrame) -> dict:
    """AUPC(H), AUPC(Hb) of the mean baseline curve, ΔAUPC and the spread of the single baselines' areas."""
    m = curves[curves["curve"] == "map"].sort_values("q")
    b = curves[curves["curve"] == "baseline"]
    mean_b = b.groupby("q")["performance"].mean().sort_index()
    areas = [aupc(g["q"].to_numpy(), g["performance"].to_numpy()) for _, g in b.sort_values("q").groupby("draw")]
    a_h = aupc(m["q"].to_numpy(), m["performance"].to_numpy())
    a_b = aupc(mean_b.index.to_numpy(), mean_b.to_numpy())
    return {"aupc_map": a_h, "aupc_baseline": a_b, "delta_aupc": a_b - a_h,
            "baseline_aupc_std": float(np.std(areas, ddof=1)) if len(areas) > 1 else float("nan"),
            "performance_unperturbed": float(m["performance"].iloc[0])}
