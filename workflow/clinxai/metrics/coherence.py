"""Coherence of a map with a clinical mask (seed 002 §4.4.1, after Arras et al.): relevance mass and rank accuracy.

A map is a list of per-modality arrays (the positive, post-processed heatmap R⁺); `masks` the same shapes (bool) or
None for a modality without a mask. Voxels are pooled over modalities, as feature removal does.

- RMA = Σ_{v∈GT} R⁺_v / Σ_v R⁺_v  (equals FP).
- RRA = |top-K voxels by R ∩ GT| / K with K = |GT|. Most voxels of a positive map are 0, so ties at the K-th value are
  common: they are broken by a seeded random order (`tie_order`; the stage seeds it per model, case and scope, the
  same for every method).
NaN where undefined: no positive mass (RMA), an empty mask (RRA).
"""

from __future__ import annotations

import zlib

import numpy as np

from .. import ClinxaiError
from .localisation import fp


def pooled(parts, masks) -> tuple[np.ndarray, np.ndarray]:
    """(map values, mask) of every voxel of every modality, flattened in modality order; a maskless modality's
    voxels are outside the mask."""
    if len(parts) != len(masks):
        raise ClinxaiError(f"the map has {len(parts)} modalities but the mask {len(masks)}")
    values, inside = [], []
    for s, m in zip(parts, masks):
        s = np.asarray(s, dtype=np.float64)
        if m is not None and np.shape(m) != s.shape:
            raise ClinxaiError(f"mask shape {np.shape(m)} differs from the map's {s.shape}")
        values.append(s.ravel())
        inside.append(np.zeros(s.size, bool) if m is None else np.asarray(m, bool).ravel())
    return np.concatenate(values), np.concatenate(inside)


def tie_order(n: int, seed: int, key: str = "") -> np.ndarray:
    """A random permutation rank per voxel, seeded by (seed, key): the secondary sort key that breaks ties."""
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode())])
    return rng.permutation(n)


def ranking(values: np.ndarray, seed: int = 0, key: str = "") -> np.ndarray:
    """Voxel indices from most to least relevant, ties in a seeded random order."""
    return np.lexsort((tie_order(len(values), seed, key), -values))


def rma(parts, masks) -> float:
    """RMA is FP (clinxai.metrics.localisation): the share of the positive mass inside the mask, modalities pooled."""
    return fp(parts, masks)


def rra(parts, masks, seed: int = 0, key: str = "") -> float:
    values, inside = pooled(parts, masks)
    k = int(inside.sum())
    if k == 0:
        return float("nan")
    values = np.maximum(values, 0)
    # the first k of ranking(values, seed, key) without sorting every voxel: all above the k-th value, then the tied
    # voxels at it in the seeded tie order
    pos = values[values > 0]  # most voxels are 0: select among the positive ones (0 when fewer than k are)
    kth = 0.0 if pos.size < k else np.partition(pos, pos.size - k)[pos.size - k]
    above = values > kth
    tied = np.flatnonzero(values == kth)
    need = k - int(above.sum())  # >= 1: fewer than k values lie above the k-th
    chosen = tied
    if need < tied.size:  # which of the tied voxels count: the first `need` in the tie order (distinct ranks)
        ranks = tie_order(values.size, seed, key)[tied]
        chosen = tied[np.argpartition(ranks, need - 1)[:need]]
    return float((inside[above].sum() + inside[chosen].sum()) / k)
