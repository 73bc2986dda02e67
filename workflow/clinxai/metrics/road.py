"""ROAD's noisy linear imputation (Rong et al., ICML 2022): what a removed voxel becomes.

Filling removed voxels with a constant leaks the removal pattern (the class can be read from the shape of the hole).
ROAD instead sets every removed voxel to the weighted mean of all its neighbours -- removed ones included, as unknowns,
so the removed values solve one sparse linear system -- plus small noise. Weights follow ROAD's 2-D stencil (the 4 direct
neighbours 1/6, the 4 diagonal ones 1/12), i.e. proportional to 1 / squared distance, which extends to 3-D (6 faces,
12 edges, 8 corners); they are symmetric, so the system (a graph Laplacian restricted to the removed voxels) is
symmetric positive definite and conjugate gradients solve it at 4 x 128³. Imputation stays within one modality. A
removed region with no known neighbour (e.g. 100 % removal) takes the modality's mean.
Linear ramps are harmonic for this stencil: a removed block of a ramp is restored exactly (noise 0).
"""

from __future__ import annotations

import itertools

import numpy as np


def stencil(ndim: int) -> list[tuple[tuple[int, ...], float]]:
    """(offset, weight) of every neighbour, weights ∝ 1 / squared distance, summing to 1."""
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]
    raw = [1.0 / sum(d * d for d in o) for o in offsets]
    total = sum(raw)
    return [(o, w / total) for o, w in zip(offsets, raw)]


def _system(out: np.ndarray, solve: np.ndarray):
    """The sparse system (A, b) of the removed voxels `solve`: A = diag(Σ w over neighbours inside the image) - w to
    each removed neighbour, b = Σ w * value in `out` of each other neighbour (known, or isolated and filled).

    Vectorised over voxels and stencil offsets on the image padded by one voxel (no bounds checks per offset). The
    result is the same to the bit as a loop over offsets adding to b and to the diagonal and assembling A from
    coordinates: the sums run in stencil order, and A's rows hold their entries sorted by column (the order in which
    CSR sums them), which the offsets' lexicographic order gives directly."""
    from scipy import sparse

    offsets, weights = zip(*stencil(out.ndim))
    padded = tuple(s + 2 for s in out.shape)
    strides = np.array([int(np.prod(padded[d + 1:])) for d in range(out.ndim)])
    # per padded voxel: its unknown's number (-1: none), whether it lies in the image, and its value (isolated
    # voxels hold the fill already)
    index = np.full(padded, -1, dtype=np.int64)
    core = tuple(slice(1, -1) for _ in padded)
    n = int(solve.sum())
    index[core][solve] = np.arange(n)
    inside = np.zeros(padded, bool)
    inside[core] = True
    value = np.zeros(padded)
    value[core] = out
    at = np.flatnonzero(index.ravel() >= 0)  # the unknowns' padded flat positions, in their numbering's order
    nb = at[None, :] + (np.array(offsets) @ strides)[:, None]  # offsets x unknowns
    j = index.ravel()[nb]
    ok = inside.ravel()[nb]
    known = ok & (j < 0)
    diag, rhs = np.zeros(n), np.zeros(n)
    for k, w in enumerate(weights):  # sums in stencil order, offset by offset, as the loop this replaces added them
        diag += np.where(ok[k], w, 0.0)
        rhs += np.where(known[k], w * value.ravel()[nb[k]], 0.0)
    # rows of A: the entries of the offsets before the voxel itself, its diagonal, those after (sorted columns)
    mid = len(offsets) // 2
    off_diag = np.broadcast_to(-np.array(weights)[:, None], j.shape)
    cols = np.concatenate([j[:mid], np.arange(n)[None], j[mid:]]).T
    vals = np.concatenate([off_diag[:mid], diag[None], off_diag[mid:]]).T
    keep = cols >= 0
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    return sparse.csr_matrix((vals[keep], cols[keep], indptr), shape=(n, n)), rhs


def impute(image: np.ndarray, removed: np.ndarray, noise_std: float = 0.0, seed=0,
           rtol: float = 1e-10) -> np.ndarray:
    """`image` (one modality, 2-D or 3-D) with the `removed` voxels replaced by noisy linear imputation; `seed`: an
    int or a sequence of ints (numpy's SeedSequence) for the noise."""
    from scipy import ndimage
    from scipy.sparse.linalg import cg

    image = np.asarray(image, dtype=np.float64)
    removed = np.asarray(removed, bool)
    out = image.copy()
    if not removed.any():
        return out
    known = ~removed
    fill = float(image.mean())  # the modality's mean, for regions nothing known touches
    # regions of removed voxels that touch no known voxel cannot be interpolated: the modality's mean
    labels, n = ndimage.label(removed, structure=np.ones((3,) * image.ndim, bool))
    touches = np.zeros(n + 1, bool)
    touches[labels[ndimage.binary_dilation(known, structure=np.ones((3,) * image.ndim, bool)) & removed]] = True
    isolated = removed & ~touches[labels]
    out[isolated] = fill
    solve = removed & ~isolated
    if solve.any():
        a, rhs = _system(out, solve)
        x, info = cg(a, rhs, rtol=rtol, atol=0.0, maxiter=10 * len(rhs) + 100)
        if info != 0:
            raise RuntimeError(f"ROAD imputation: conjugate gradients did not converge ({info})")
        out[solve] = x
    if noise_std > 0:
        out[removed] += np.random.default_rng(seed).normal(0.0, noise_std, int(removed.sum()))
    return out


def fill(x: np.ndarray, removed: np.ndarray, shapes, slices, noise_std: float = 0.01, seed=(0,),
         rtol: float = 1e-6) -> np.ndarray:
    """A flat multi-modal input `x` with its `removed` voxels imputed, each modality (of `shapes`, at `slices` of
    the flat vector) on its own; the noise is seeded by `seed` + (modality,). rtol 1e-6: far below the noise."""
    out = np.array(x, dtype=np.float32, copy=True)
    for m, (shape, sl) in enumerate(zip(shapes, slices)):
        r = removed[sl]
        if r.any():
            out[sl] = impute(x[sl].reshape(shape), r.reshape(shape), noise_std, [*seed, m], rtol).ravel()
    return out
