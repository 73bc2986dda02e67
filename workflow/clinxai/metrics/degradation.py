"""Degradation scores from MoRF and LeRF curves (seed 002 §4.4.1, after Baer et al.).

q_i is the predicted probability of the explained class after step i of removing voxels in descending (MoRF) or
ascending (LeRF) order of relevance. Per case DS = (1/m) Σ_i (q_LeRF,i − q_MoRF,i) over the m removal steps: positive
when removing what the map ranks first hurts more than removing what it ranks last. Over cases: the mean DS, and the
class-adjusted DS_c(α) = mean DS − α·Δ with Δ = ½(max_y DS_y − min_y DS_y), DS_y the mean DS over cases of true
class y (for two classes Δ = ½|DS_1 − DS_0|): a method that only works for one class is penalised.
"""

from __future__ import annotations

import numpy as np

from .coherence import ranking


def degradation_score(morf, lerf) -> float:
    """DS of one case from its MoRF and LeRF probabilities at the m removal steps (step 0, nothing removed, left out)."""
    morf, lerf = np.asarray(morf, float), np.asarray(lerf, float)
    if morf.shape != lerf.shape or morf.size == 0:
        raise ValueError(f"MoRF and LeRF curves differ in length ({morf.size} vs {lerf.size}) or are empty")
    return float(np.mean(lerf - morf))


def class_adjusted(ds, labels, alpha: float = 1.0) -> dict:
    """Mean DS, the per-class means, Δ and DS_c(α) over cases with true classes `labels`."""
    ds, labels = np.asarray(ds, float), np.asarray(labels)
    ok = np.isfinite(ds)
    ds, labels = ds[ok], labels[ok]
    if ds.size == 0:
        return {"ds": float("nan"), "delta": float("nan"), "ds_c": float("nan"), "per_class": {}}
    per_class = {int(y): float(ds[labels == y].mean()) for y in np.unique(labels)}
    delta = 0.5 * (max(per_class.values()) - min(per_class.values()))
    mean = float(ds.mean())
    return {"ds": mean, "delta": float(delta), "ds_c": mean - alpha * float(delta), "per_class": per_class}


def removal_step(order: np.ndarray, steps: int) -> np.ndarray:
    """For each voxel, the first of `steps` equal steps that removes it when voxels go in `order`: step i
    (1..steps) has removed the first round(i·n/steps) voxels of `order`. One int16 array instead of `steps` masks."""
    n = len(order)
    removed_after = np.round(np.arange(1, steps + 1) * n / steps).astype(np.int64)
    step = np.empty(n, np.int16)
    step[order] = np.searchsorted(removed_after, np.arange(n), side="right") + 1
    return step


def morf_lerf_curves(predict, x: np.ndarray, values: np.ndarray, replace, steps: int = 10, seed: int = 0,
                     key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the explained class after removing 1/steps, 2/steps, ..., all of the voxels, most relevant
    first (MoRF) and least relevant first (LeRF); ties in a seeded random order (clinxai.metrics.coherence.ranking).

    `x` and `values`: one case's input and map, flat and aligned (modalities pooled); `replace(x, removed)` returns
    the input with the `removed` voxels replaced (blur, a constant, ROAD); `predict(batch)` the probabilities of the
    explained class for a batch of flat inputs. All 2·steps perturbed inputs go to `predict` in one batch. The
    reference form of what clinxai.evaluation.degradation batches over cases, methods and random orderings.
    """
    order = ranking(np.asarray(values, np.float64), seed, key)
    batch = []
    for direction in (order, order[::-1]):
        step = removal_step(direction, steps)
        batch += [replace(x, step <= i) for i in range(1, steps + 1)]
    prob = np.asarray(predict(np.stack(batch)), float)
    return prob[:steps], prob[steps:]
