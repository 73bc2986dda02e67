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


def impute(image: np.ndarray, removed: np.ndarray, noise_std: float = 0.0, seed=0,
           rtol: float = 1e-10) -> np.ndarray:
    """`image` (one modality, 2-D or 3-D) with the `removed` voxels replaced by noisy linear imputation; `seed`: an
    int or a sequence of ints (numpy's SeedSequence) for the noise."""
    from scipy import ndimage, sparse
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
        index = np.full(image.shape, -1, dtype=np.int64)
        index[solve] = np.arange(int(solve.sum()))
        coords = np.argwhere(solve)
        rows, cols, vals = [], [], []
        diag = np.zeros(len(coords))
        rhs = np.zeros(len(coords))
        shape = np.array(image.shape)
        for offset, w in stencil(image.ndim):
            nb = coords + np.array(offset)
            inside = np.all((nb >= 0) & (nb < shape), axis=1)
            src, nb = np.flatnonzero(inside), nb[inside]
            nb_t = tuple(nb.T)
            diag[src] += w
            j = index[nb_t]
            unknown = j >= 0
            rows.append(src[unknown])
            cols.append(j[unknown])
            vals.append(np.full(int(unknown.sum()), -w))
            known_nb = (~unknown) & ~isolated[nb_t]
            np.add.at(rhs, src[known_nb], w * out[nb_t][known_nb])
            iso_nb = (~unknown) & isolated[nb_t]  # neighbours filled with the mean count as known
            np.add.at(rhs, src[iso_nb], w * fill)
        a = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(len(coords), len(coords))) + sparse.diags(diag)
        x, info = cg(a, rhs, rtol=rtol, atol=0.0, maxiter=10 * len(coords) + 100)
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
