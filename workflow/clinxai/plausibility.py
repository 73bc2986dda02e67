"""The plausibility stage (SPEC §5): FP, MSFI and msfi_global of every map against each task's mask, per case, with
the model's prediction joined, for all three tasks.

Masks: glioma the tumour (seg > 0) on every channel, dilated per axial slice like the reference code; knee the
menisci box of each view; synthetic the tumour on T1C only (the features the label depends on). Modality
importance φ: the modality Shapley values (glioma, knee) or the ground-truth accuracies (synthetic), normalised per
config (the reference: min-max for glioma, φ / max φ for knee and synthetic).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from . import ClinxaiError
from .attribution.postprocess import STATUS_NONFINITE, is_layer_map, postprocess
from .attribution.maps import KNEE_VIEWS, load_maps
from .io import save_csv
from .metrics.plausibility import fp, msfi, msfi_global, normalise_phi

log = logging.getLogger("clinxai.plausibility")


def dilate_axial(mask: np.ndarray, size: int) -> np.ndarray:
    """Dilate a 3-D mask (x, y, z; BraTS axial slices are the last axis) slice by slice with a size × size square."""
    if size <= 1:
        return mask
    return ndimage.binary_dilation(mask, structure=np.ones((size, size, 1), bool))


def _case_arrays(data_dir, case: str, keys) -> dict:
    path = Path(data_dir) / "arrays" / f"{case}.npz"
    if not path.is_file():
        raise ClinxaiError(f"{path} is missing: rerun the task's data rule (prepare_data or synthetic_data).")
    with np.load(path) as z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise ClinxaiError(f"{path} has no {', '.join(missing)}: the plausibility masks of case {case} need them "
                               "(knee: set data.knee.boxes_dir to the menisci box masks and rerun prepare_data).")
        return {k: z[k] for k in keys}


def case_masks(task: str, data_dir, case: str, names: list[str], dilation: int = 0) -> list:
    """The plausibility mask of each modality of one case (None where a modality has none)."""
    if task == "glioma":
        seg = _case_arrays(data_dir, case, ["seg"])["seg"] > 0
        masks = [dilate_axial(seg, dilation)] * len(names)
    elif task == "knee":
        arrays = _case_arrays(data_dir, case, [f"box_{v}" for v in KNEE_VIEWS])
        masks = [arrays[f"box_{v}"] > 0 for v in KNEE_VIEWS]
    elif task == "synthetic":
        seg = _case_arrays(data_dir, case, ["seg"])["seg"] > 0
        masks = [seg if n == "T1C" else None for n in names]
    else:
        raise ClinxaiError(f"plausibility: unknown task {task!r}")
    if not any(m is not None and m.any() for m in masks):
        raise ClinxaiError(f"{task} case {case}: empty plausibility mask in {data_dir}/arrays/{case}.npz; MSFI is "
                           "undefined without one. Check its segmentation / box file, or exclude the case "
                           f"(data.{task}.on_bad_case: exclude) and rerun the data rule.")
    return masks


def modality_weights(phi: pd.DataFrame, seed: int, names: list[str], how: str, source) -> np.ndarray:
    """φ' of one model: its φ per modality (in `names` order), normalised."""
    g = phi[phi["seed"] == int(seed)].set_index("modality")
    if g.empty or not set(names) <= set(g.index):
        raise ClinxaiError(f"{source} has no modality importance for model seed {seed} and modalities {names}; "
                           "rerun the rule that writes it (modality_shapley or synthetic_groundtruth).")
    return normalise_phi(g.loc[names, "phi"].to_numpy(float), how)


def run_plausibility(task: str, method: str, seeds, maps, predictions, phi_path, data_dir, names: list[str],
                     post_cfg: dict, phi_normalisation: str, dilation: int, out_path) -> pd.DataFrame:
    """Per (seed, case): FP, MSFI and msfi_global of one method's post-processed map, with the prediction."""
    phi = pd.read_csv(phi_path)
    rows, masks_of = [], {}  # every model has the same test cases: each case's mask is built once
    for seed, maps_path, pred_path in zip(seeds, maps, predictions):
        pred = pd.read_csv(pred_path, dtype={"case": str})
        raw = load_maps(maps_path)
        w = modality_weights(phi, seed, names, phi_normalisation, phi_path)
        for r in pred.itertuples(index=False):
            if r.case not in raw:
                raise ClinxaiError(f"{maps_path} has no map for test case {r.case}: rerun its heatmaps job.")
            if r.case not in masks_of:
                masks_of[r.case] = case_masks(task, data_dir, r.case, names, dilation)
            masks = masks_of[r.case]
            shape = next(m for m in masks if m is not None).shape  # maskless modalities share the grid
            shapes = [shape if m is None else m.shape for m in masks]
            parts, status = postprocess(raw[r.case], shapes, post_cfg, gradcam=is_layer_map(method))
            scores = {"fp": np.nan, "msfi": np.nan, "msfi_global": np.nan}
            if status != STATUS_NONFINITE:
                try:
                    scores = {"fp": fp(parts, masks), "msfi": msfi(parts, masks, w),
                              "msfi_global": msfi_global(parts, masks, w)}
                except ClinxaiError as err:
                    raise ClinxaiError(f"{maps_path}, case {r.case}: {err}; rerun its heatmaps job after a change "
                                       "of the data grid.") from err
            rows.append({"task": task, "seed": seed, "method": method, "case": r.case, "label": r.label,
                         "pred": r.pred, "prob_pred": r.prob_1 if r.pred == 1 else r.prob_0,
                         "correct": bool(r.pred == r.label), "status": status, **scores})
    table = pd.DataFrame(rows)
    save_csv(out_path, table)
    log.info("%s %s: FP %.3f, MSFI %.3f, msfi_global %.3f over %d maps", task, method, table["fp"].mean(),
             table["msfi"].mean(), table["msfi_global"].mean(), len(table))
    return table
