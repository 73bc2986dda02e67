"""The one reader of prepared cases (`results/<task>/data/arrays/<case>.npz`): model inputs, clinical masks and
modality names, for every input layout of the task registry. No torch: the light rules (plausibility) read masks
here, and the model stages make tensors of the arrays (clinxai.inference.as_tensors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ClinxaiError
from ..tasks import VIEWS, TaskKind


def read_meta(data_dir) -> dict:
    return json.loads((Path(data_dir) / "meta.json").read_text())


def modality_names(meta: dict) -> list[str]:
    """The modalities of a task's maps, in the prepared data's order: image channels, or views."""
    return list(meta["channels"])


def input_keys(kind: TaskKind, meta: dict) -> list[str]:
    """npz keys of a case's model inputs: one per view, or the one multi-channel image."""
    return modality_names(meta) if kind.layout == VIEWS else ["image"]


def modality_shapes(x: tuple) -> list[tuple[int, ...]]:
    """Spatial shape of each modality of one case's inputs (1 x ... tensors): channels of one tensor, or views."""
    if len(x) > 1:
        return [tuple(t.shape[1:]) for t in x]
    return [tuple(x[0].shape[2:])] * x[0].shape[1]


def case_path(data_dir, case: str) -> Path:
    return Path(data_dir) / "arrays" / f"{case}.npz"


def read_case(data_dir, case: str, keys, why: str = "") -> dict[str, np.ndarray]:
    """Arrays `keys` of one prepared case, with an error naming the file and the fix when any is missing."""
    path = case_path(data_dir, case)
    if not path.is_file():
        raise ClinxaiError(f"{path} is missing: rerun the task's data rule (prepare_data or synthetic_data).")
    with np.load(path) as z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise ClinxaiError(f"{path} has no {', '.join(missing)}{why}.")
        return {k: z[k] for k in keys}


def load_inputs(kind: TaskKind, data_dir, cases, meta: dict | None = None) -> list[tuple[np.ndarray, ...]]:
    """Model inputs per case, each a tuple of 1 x ... float32 arrays (one per input tensor of the model)."""
    keys = input_keys(kind, meta or read_meta(data_dir))
    out = []
    for case in cases:
        arrays = read_case(data_dir, case, keys)
        out.append(tuple(arrays[k].astype(np.float32)[None] for k in keys))
    return out


def load_prepared(data_dir, kind: TaskKind):
    """Split table and stacked inputs of a prepared task: inputs is a tuple of N x ... arrays."""
    data_dir = Path(data_dir)
    split = pd.read_csv(data_dir / "split.csv", dtype={"case": str})
    meta = read_meta(data_dir)
    keys = input_keys(kind, meta)
    arrays = {k: [] for k in keys}
    for case in split["case"]:
        case_arrays = read_case(data_dir, case, keys)
        for k in keys:
            arrays[k].append(case_arrays[k])
    inputs = tuple(np.stack(arrays[k]) for k in keys)
    return split, inputs, meta


def dilate_axial(mask: np.ndarray, size: int) -> np.ndarray:
    """Dilate a 3-D mask (x, y, z; BraTS axial slices are the last axis) slice by slice with a size × size square."""
    if size <= 1:
        return mask
    from scipy import ndimage

    return ndimage.binary_dilation(mask, structure=np.ones((size, size, 1), bool))


def mask_keys(kind: TaskKind, names: list[str]) -> list[str]:
    """npz keys of a case's clinical masks; none for a task without (a manifest without a mask column)."""
    if kind.mask.key is None:
        return []
    return [f"{kind.mask.key}_{n}" for n in names] if kind.mask.per_view else [kind.mask.key]


def clinical_masks(kind: TaskKind, data_dir, case: str, names: list[str], dilation: int = 0,
                   task: str = "") -> list:
    """The clinical (plausibility) mask of each modality of one case; None where a modality carries none."""
    keys = mask_keys(kind, names)
    arrays = read_case(data_dir, case, keys, why=f": the plausibility masks of case {case} need them (real MRNet: "
                       "set data.<task>.boxes_dir to the menisci box masks and rerun prepare_data)")
    if kind.mask.per_view:
        masks = [arrays[k] > 0 for k in keys]
    else:
        region = arrays[kind.mask.key] > 0
        if kind.mask.dilation:  # "axial": per axial slice (the reference code)
            region = dilate_axial(region, dilation)
        chosen = kind.mask.modalities
        masks = [region if chosen is None or n in chosen else None for n in names]
    if not any(m is not None and m.any() for m in masks):
        raise ClinxaiError(f"{task or kind.name} case {case}: empty plausibility mask in {case_path(data_dir, case)}; "
                           "MSFI is undefined without one. Check its segmentation / box file, or exclude the case "
                           f"(data.{task or '<task>'}.on_bad_case: exclude) and rerun the data rule.")
    return masks


def montage_arrays(kind: TaskKind, data_dir, case: str, meta: dict):
    """(per-modality images, affine, per-modality slice index through the clinical mask -- the middle one without a
    mask --, slice axis) of a case, for the export's NIfTI files and montages. 2-D slices are shown whole (index
    None)."""
    names = modality_names(meta)
    keys = input_keys(kind, meta) + mask_keys(kind, names) + (["affine"] if kind.has_affine else [])
    z = read_case(data_dir, case, keys)
    images = [z[k] for k in names] if kind.layout == VIEWS else list(z["image"])
    affine = z["affine"] if kind.has_affine else np.eye(4)  # MRNet views carry no geometry
    axis = kind.export_axis
    if axis is None:
        return images, affine, [None] * len(images), None
    masks = [z[k] for k in mask_keys(kind, names)]
    masks = masks if kind.mask.per_view else masks * len(images)
    if not masks:  # no clinical mask: the middle slice
        return images, affine, [img.shape[axis] // 2 for img in images], axis
    slices = []
    for img, m in zip(images, masks):
        area = np.moveaxis(m > 0, axis, 0).reshape(m.shape[axis], -1).sum(1)
        slices.append(int(np.argmax(area)) if area.any() else img.shape[axis] // 2)
    return images, affine, slices, axis
