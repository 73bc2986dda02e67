"""Feature-localisation scores of a heatmap against a mask (SPEC §4-5, paper eq. 2-4).

A map is a list of per-modality arrays S_m (the positive, post-processed heatmap); `masks` is a list of the same
shapes (bool), or None for a modality without a plausibility mask (the synthetic task marks the tumour on T1C only).

- FP (eq. 2): the share of the map's mass inside the mask, over all modalities.
- MSFI (eq. 3-4): FP_m per modality with its own denominator, weighted by the normalised modality importance phi'_m:
  sum phi'_m FP_m / sum phi'_m.
- msfi_global: sum_m phi'_m * (mass of S_m inside the mask) / (mass of S over all modalities), the whole-map
  denominator of the reference code's synthetic numbers (SPEC §4): mass on modalities the model does not use
  lowers the score. With phi' = 1 for every modality it equals FP.
Undefined cases return NaN: a map with no positive mass, or all phi' zero.
"""

from __future__ import annotations

import numpy as np

from .. import ClinxaiError

PHI_NORMALISATIONS = ("minmax", "max", "none")


def normalise_phi(phi, how: str) -> np.ndarray:
    """phi' in [0, 1]: min-max (glioma, the reference), phi / max phi (knee, synthetic) or unchanged."""
    phi = np.asarray(phi, dtype=float)
    if how == "none":
        return phi
    if how == "max":
        top = phi.max()
        return np.clip(phi / top, 0, None) if top > 0 else np.zeros_like(phi)
    if how == "minmax":
        span = phi.max() - phi.min()
        return (phi - phi.min()) / span if span > 0 else np.zeros_like(phi)
    raise ClinxaiError(f"unknown modality-importance normalisation {how!r}: use one of {', '.join(PHI_NORMALISATIONS)}")


def _masses(parts, masks) -> tuple[np.ndarray, np.ndarray]:
    """Per modality: (mass inside the mask, total mass) of the positive map."""
    if len(parts) != len(masks):
        raise ClinxaiError(f"the map has {len(parts)} modalities but the mask {len(masks)}")
    inside, total = [], []
    for s, m in zip(parts, masks):
        s = np.maximum(np.asarray(s, dtype=np.float64), 0)
        if m is not None and np.shape(m) != s.shape:
            raise ClinxaiError(f"mask shape {np.shape(m)} differs from the map's {s.shape}")
        inside.append(float(s[np.asarray(m, bool)].sum()) if m is not None else 0.0)
        total.append(float(s.sum()))
    return np.array(inside), np.array(total)


def fp(parts, masks) -> float:
    """Eq. 2: mass of the map inside the mask / total mass, all modalities pooled."""
    inside, total = _masses(parts, masks)
    return float(inside.sum() / total.sum()) if total.sum() > 0 else float("nan")


def msfi(parts, masks, phi_norm) -> float:
    """Eq. 3-4: sum_m phi'_m FP_m / sum_m phi'_m, FP_m with each modality's own mass as denominator.

    A modality with no mass has FP_m = 0 (the map points at nothing there)."""
    inside, total = _masses(parts, masks)
    w = np.asarray(phi_norm, dtype=float)
    if total.sum() <= 0 or w.sum() <= 0:
        return float("nan")
    fp_m = np.divide(inside, total, out=np.zeros_like(inside), where=total > 0)
    return float((w * fp_m).sum() / w.sum())


def msfi_global(parts, masks, phi_norm) -> float:
    """sum_m phi'_m * mass inside the mask on m / total mass of the whole map (SPEC §4)."""
    inside, total = _masses(parts, masks)
    w = np.asarray(phi_norm, dtype=float)
    if total.sum() <= 0 or w.sum() <= 0:
        return float("nan")
    return float((w * inside).sum() / total.sum())
