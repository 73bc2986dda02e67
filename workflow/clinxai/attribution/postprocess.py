"""Post-processing of raw attributions before any metric (SPEC §3), each step switchable in config.

A map is a list of per-modality arrays (one per channel or knee view), so 3-D volumes, 2-D slices and the knee's
three views of different shapes are handled alike. Order: GradCAM upsampling -> Gaussian smoothing per modality ->
normalisation by the 99 % cumulative-mass value (joint over modalities) and clipping to [-1, 1] -> positive part.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

STATUS_OK, STATUS_ZERO, STATUS_NONFINITE = "ok", "all_zero", "non_finite"


def map_status(parts) -> str:
    """'non_finite' if any value is NaN/Inf, 'all_zero' if every value is 0, else 'ok'."""
    if any(not np.isfinite(p).all() for p in parts):
        return STATUS_NONFINITE
    if all(not np.any(p) for p in parts):
        return STATUS_ZERO
    return STATUS_OK


def upsample_nearest(layer_map: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour upsampling of a layer map (spatial only) to `shape`."""
    zoom = [s / m for s, m in zip(shape, layer_map.shape)]
    out = ndimage.zoom(layer_map, zoom, order=0, mode="nearest", grid_mode=True)
    return out[tuple(slice(0, s) for s in shape)]


def normalisation_value(parts, mass: float = 0.99) -> float:
    """The |attr| value at which the cumulative sum of |attr| sorted ascending (all modalities) first reaches `mass`
    of the total: captum's `_cumulative_sum_threshold`, so only the top (1 - mass) of the attribution mass is clipped.
    """
    # float64: a float32 cumulative sum over 1e5+ voxels drifts by up to 1e-3 of the total, moving the value found
    a = np.sort(np.concatenate([np.abs(np.asarray(p, dtype=np.float64)).ravel() for p in parts]))
    total = a.sum()
    if total == 0 or not np.isfinite(total):
        return 0.0
    k = int(np.searchsorted(np.cumsum(a), mass * total))
    return float(a[min(k, len(a) - 1)])


def postprocess(parts, input_shapes, cfg: dict, gradcam: bool = False) -> tuple[list[np.ndarray], str]:
    """Processed per-modality maps and their status. `cfg`: upsample_gradcam, smooth_sigma (list or null),
    normalise (bool), mass (0-1), positive_only (bool). Non-finite maps are returned unchanged and flagged."""
    parts = [np.asarray(p, dtype=np.float32) for p in parts]
    status = map_status(parts)
    if status == STATUS_NONFINITE:
        return parts, status
    if gradcam and cfg["upsample_gradcam"]:
        # One layer map for all modalities: upsample to the input grid and replicate.
        parts = [upsample_nearest(parts[0], shape) for shape in input_shapes]
    if cfg["smooth_sigma"] is not None:
        parts = [ndimage.gaussian_filter(p, sigma=cfg["smooth_sigma"], mode="constant") for p in parts]
    if cfg["normalise"]:
        v = normalisation_value(parts, cfg["mass"])
        parts = [np.clip(p / v, -1, 1) if v > 0 else p for p in parts]
    if cfg["positive_only"]:
        parts = [np.maximum(p, 0) for p in parts]
    return parts, map_status(parts) if status == STATUS_OK else status


def is_layer_map(method: str) -> bool:
    """True for methods whose raw map is one layer map (GradCAM) to be upsampled to every modality."""
    from .registry import METHODS

    return METHODS[method].layer_map
