"""SLIC supervoxel feature masks (SPEC §3), computed once per test case and cached for every method and seed.

- modality-specific: SLIC of each channel (each knee view) on its own, label ranges made disjoint, so a feature
  belongs to one modality (~n_segments features per channel).
- unified: SLIC of one channel copied to every channel; the maps of methods that use it are identical across
  modalities. Knee views have different grids, so the knee's unified mask is the view-specific one.
Voxels outside the brain form one background feature per channel (ablating them to the baseline 0 changes
nothing, since prepared images are 0 there).
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import slic

from .. import ClinxaiError
from ..tasks import VIEWS, TaskKind


def slic_labels(image: np.ndarray, n_segments: int, compactness: float, sigma: float, mask=None) -> np.ndarray:
    """SLIC labels of a single-channel 2-D or 3-D image: 1..k inside `mask`, 0 outside."""
    if mask is not None and not mask.any():
        raise ClinxaiError("SLIC: the brain mask is empty")
    labels = slic(image.astype(np.float64), n_segments=n_segments, compactness=compactness, sigma=sigma,
                  mask=mask, channel_axis=None, start_label=1)
    return labels.astype(np.int32)


def _relabel(labels: np.ndarray, offset: int) -> tuple[np.ndarray, int]:
    """Consecutive labels from `offset` (0 = background gets its own id too)."""
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape).astype(np.int32)
    return inverse + offset, offset + int(inverse.max()) + 1


def image_masks(image: np.ndarray, brain: np.ndarray, cfg: dict) -> dict[str, np.ndarray]:
    """Masks of a C x spatial image: {"specific": C x spatial, "unified": C x spatial}, feature ids 0..F-1."""
    kw = {"n_segments": cfg["n_segments"], "compactness": cfg["compactness"], "sigma": cfg["sigma"]}
    brain = brain.astype(bool)
    specific, offset = [], 0
    for c in range(image.shape[0]):
        lab, offset = _relabel(slic_labels(image[c], mask=brain, **kw), offset)
        specific.append(lab)
    unified_lab, _ = _relabel(slic_labels(image[cfg["unified_channel"]], mask=brain, **kw), 0)
    unified = np.broadcast_to(unified_lab, image.shape).copy()
    return {"specific": np.stack(specific), "unified": unified}


def view_masks(views: dict[str, np.ndarray], cfg: dict) -> dict[str, list[np.ndarray]]:
    """Knee: per-view SLIC with disjoint ids across views; the same masks serve as 'unified'."""
    kw = {"n_segments": cfg["n_segments"], "compactness": cfg["compactness"], "sigma": cfg["sigma"]}
    masks, offset = [], 0
    for name in views:
        lab, offset = _relabel(slic_labels(views[name], **kw), offset)
        masks.append(lab)
    return {"specific": masks, "unified": masks}


def save_masks(path, masks_by_case: dict, layout: str) -> None:
    from ..io import atomic_path

    flat = {}
    for case, masks in masks_by_case.items():
        for kind, m in masks.items():
            if layout == VIEWS:  # one mask per view
                for i, v in enumerate(m):
                    flat[f"{case}__{kind}__{i}"] = v
            else:
                flat[f"{case}__{kind}"] = m
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **flat)


def load_masks(path, case: str, kind: str, layout: str):
    with np.load(path) as npz:
        if layout == VIEWS:
            keys = [k for k in npz.files if k.startswith(f"{case}__{kind}__")]
            keys.sort(key=lambda k: int(k.rsplit("_", 1)[1]))
            if not keys:
                raise ClinxaiError(f"no {kind} supervoxel mask for case {case} in {path}; rerun rule supervoxels.")
            return [npz[k] for k in keys]
        key = f"{case}__{kind}"
        if key not in npz.files:
            raise ClinxaiError(f"no {kind} supervoxel mask for case {case} in {path}; rerun rule supervoxels.")
        return npz[key]


def compute_masks(kind: TaskKind, data_dir, cases, cfg: dict, workers: int = 1) -> dict:
    """Masks of every case (in parallel processes; SLIC is deterministic, so the result is the same)."""
    from concurrent.futures import ProcessPoolExecutor

    args = [(kind, str(data_dir), c, cfg) for c in cases]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_case_masks, args))
    else:
        results = [_case_masks(a) for a in args]
    return dict(zip(cases, results))


def n_features(masks: dict, layout: str) -> int:
    """Modality-specific features of one case's masks (ids are consecutive over modalities)."""
    specific = masks["specific"][-1] if layout == VIEWS else masks["specific"]
    return int(specific.max()) + 1


def _case_masks(arg):
    from ..data.cases import input_keys, read_case, read_meta

    kind, data_dir, case, cfg = arg
    if kind.layout == VIEWS:
        keys = input_keys(kind, read_meta(data_dir))
        return view_masks(read_case(data_dir, case, keys), cfg)
    z = read_case(data_dir, case, ["image", "brain"])
    if not z["brain"].any():
        raise ClinxaiError(f"case {case}: empty brain mask in {data_dir}/arrays/{case}.npz; SLIC needs one. "
                           "Check the case's images or exclude it (data.<task>.on_bad_case: exclude).")
    return image_masks(z["image"], z["brain"], cfg)
