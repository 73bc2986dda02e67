"""Modality importance (SPEC §4, paper §4.3.2): exact modality Shapley values and the MI correlation of a map.

The game: players are the M modalities (glioma channels, knee views); v(c) is the test-set performance of the model
when every modality not in c is set to 0 (after normalisation). v(∅) is included. Up to `max_exact` modalities
(default 6: 64 subsets) all 2^M subsets are evaluated and the Shapley values are exact; beyond that they are
estimated from P random orderings of the modalities (each ordering's marginal contributions are an unbiased draw of
φ; Castro et al. 2009), with the standard error of the mean over orderings.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

# Performances are ratios of counts (accuracy k/n, ROC AUC U/(n_pos n_neg) with half credit for ties): their exact
# fraction is recovered from the float, whose rounding error is far below the gap between two such fractions.
MAX_DENOMINATOR = 10**7


def all_subsets(n: int) -> list[tuple[int, ...]]:
    """Every subset of range(n), by size then lexicographically, the empty set first."""
    return [c for k in range(n + 1) for c in itertools.combinations(range(n), k)]


def shapley_values(value: dict, n: int) -> np.ndarray:
    """Exact Shapley values φ_m = Σ_{c ⊆ N∖{m}} |c|!(n−|c|−1)!/n! · (v(c ∪ {m}) − v(c)).

    `value` maps every subset (a tuple or frozenset of player indices) to its worth. Computed in exact fractions
    (worths are ratios of counts, see MAX_DENOMINATOR) and rounded once at the end, so values that are mathematically
    equal come out as the same float: Kendall τ-b against them sees ties as ties, not as rounding noise.
    """
    v = {frozenset(k): Fraction(float(x)).limit_denominator(MAX_DENOMINATOR) for k, x in value.items()}
    missing = [c for c in all_subsets(n) if frozenset(c) not in v]
    if missing:
        raise ValueError(f"the game lacks the worth of {len(missing)} subsets, e.g. {missing[0]}")
    phi = [Fraction(0)] * n
    for m in range(n):
        others = [i for i in range(n) if i != m]
        for k in range(n):
            w = Fraction(math.factorial(k) * math.factorial(n - k - 1), math.factorial(n))
            for c in itertools.combinations(others, k):
                phi[m] += w * (v[frozenset(c) | {m}] - v[frozenset(c)])
    return np.array([float(p) for p in phi])


def orderings(n: int, count: int, seed: int) -> list[tuple[int, ...]]:
    """`count` seeded random orderings of range(n)."""
    rng = np.random.default_rng(seed)
    return [tuple(int(i) for i in rng.permutation(n)) for _ in range(count)]


def ordering_subsets(perms) -> list[tuple[int, ...]]:
    """The subsets whose worth the orderings need (every prefix, as a sorted tuple), by size then lexicographically."""
    needed = {tuple(sorted(p[:k])) for p in perms for k in range(len(p) + 1)}
    return sorted(needed, key=lambda c: (len(c), c))


def sampled_shapley_values(value: dict, perms) -> tuple[np.ndarray, np.ndarray]:
    """(φ estimate, its standard error): the mean over orderings of each player's marginal contribution
    v(prefix ∪ {m}) − v(prefix), and std(ddof=1) / sqrt(P)."""
    v = {frozenset(k): float(x) for k, x in value.items()}
    n = len(perms[0])
    contrib = np.zeros((len(perms), n))
    for r, p in enumerate(perms):
        for k, m in enumerate(p):
            contrib[r, m] = v[frozenset(p[:k + 1])] - v[frozenset(p[:k])]
    se = contrib.std(axis=0, ddof=1) / np.sqrt(len(perms)) if len(perms) > 1 else np.full(n, np.nan)
    return contrib.mean(axis=0), se


def modality_sums(parts) -> np.ndarray:
    """Estimated modality importance MI_m: the sum of the positive map values of each modality."""
    return np.array([float(np.clip(np.asarray(p, dtype=np.float64), 0, None).sum()) for p in parts])


def identical_across_modalities(parts) -> bool:
    """True when every modality carries the same map (GradCAM's replicated layer map, unified supervoxels)."""
    first = np.asarray(parts[0])
    return len(parts) > 1 and all(np.asarray(p).shape == first.shape and np.array_equal(p, first) for p in parts[1:])


def mi_correlation(phi: np.ndarray, mi: np.ndarray, identical: bool = False) -> tuple[float, float, str]:
    """Kendall τ-b between the modality Shapley values and the map's modality sums: (tau, p, reason).

    NaN with a reason when it is not computable: the map is the same on every modality, the map's modality sums are
    all equal (e.g. an all-zero map), or the Shapley values are all equal.
    """
    from scipy.stats import kendalltau  # here, not at import: feature-removal jobs skip its 0.6 s import

    phi, mi = np.asarray(phi, float), np.asarray(mi, float)
    if identical:
        return float("nan"), float("nan"), "map identical across modalities (not modality-specific)"
    if not np.isfinite(mi).all():
        return float("nan"), float("nan"), "map has non-finite values"
    if np.ptp(mi) == 0:
        return float("nan"), float("nan"), "modality sums of the map are all equal (e.g. an all-zero map)"
    if np.ptp(phi) == 0:
        return float("nan"), float("nan"), "modality Shapley values are all equal"
    res = kendalltau(phi, mi, variant="b")
    return float(res.statistic), float(res.pvalue), ""
