"""The plausibility stage (SPEC §5): FP, MSFI and msfi_global of every map against its task's clinical mask, per
case, with the model's prediction joined, for every task.

Masks come from the task kind (clinxai.tasks.ClinicalMask, read by clinxai.data.cases): glioma the tumour (seg > 0)
on every channel, dilated per axial slice like the reference code; knee the menisci box of each view; synthetic the
tumour on T1C only (the features the label depends on). Modality importance φ: the modality Shapley values, or the
ground-truth accuracies where the kind knows them, normalised per config (the reference: min-max for glioma,
φ / max φ for knee and synthetic).
"""

from __future__ import annotations

import logging
import numpy as np
import pandas as pd

from .. import ClinxaiError
from ..attribution.maps import load_maps
from ..attribution.postprocess import STATUS_NONFINITE, is_layer_map, postprocess
from ..data.cases import clinical_masks
from ..io import save_csv
from ..metrics.localisation import fp, msfi, msfi_global, normalise_phi
from ..tasks import TaskKind

log = logging.getLogger("clinxai.plausibility")


def modality_weights(phi: pd.DataFrame, seed: int, names: list[str], how: str, source) -> np.ndarray:
    """φ' of one model: its φ per modality (in `names` order), normalised."""
    g = phi[phi["seed"] == int(seed)].set_index("modality")
    if g.empty or not set(names) <= set(g.index):
        raise ClinxaiError(f"{source} has no modality importance for model seed {seed} and modalities {names}; "
                           "rerun the rule that writes it (modality_shapley or synthetic_groundtruth).")
    return normalise_phi(g.loc[names, "phi"].to_numpy(float), how)


def processed_maps(task: str, kind: TaskKind, method: str, seeds, maps, predictions, data_dir, names: list[str],
                   post_cfg: dict, dilation: int, masks_of: dict | None = None):
    """(seed, prediction row, post-processed map parts, clinical masks, status) of every test case of every model.
    Every model has the same test cases: each case's masks are built once (once per job when the caller passes the
    same `masks_of` for every method). Shared by plausibility and localisation."""
    masks_of = {} if masks_of is None else masks_of
    for seed, maps_path, pred_path in zip(seeds, maps, predictions):
        pred = pd.read_csv(pred_path, dtype={"case": str})
        raw = load_maps(maps_path)
        for r in pred.itertuples(index=False):
            if r.case not in raw:
                raise ClinxaiError(f"{maps_path} has no map for test case {r.case}: rerun its heatmaps job.")
            if r.case not in masks_of:
                masks_of[r.case] = clinical_masks(kind, data_dir, r.case, names, dilation, task)
            masks = masks_of[r.case]
            shape = next(m for m in masks if m is not None).shape  # maskless modalities share the grid
            shapes = [shape if m is None else m.shape for m in masks]
            parts, status = postprocess(raw[r.case], shapes, post_cfg, gradcam=is_layer_map(method))
            yield seed, maps_path, r, parts, masks, status


def run_plausibility(task: str, kind: TaskKind, method: str, seeds, maps, predictions, phi_path, data_dir, names: list[str],
                     post_cfg: dict, phi_normalisation: str, dilation: int, out_path,
                     masks_of: dict | None = None) -> pd.DataFrame:
    """Per (seed, case): FP, MSFI and msfi_global of one method's post-processed map, with the prediction."""
    phi = pd.read_csv(phi_path)
    rows, weights = [], {}
    for seed, maps_path, r, parts, masks, status in processed_maps(task, kind, method, seeds, maps, predictions,
                                                                   data_dir, names, post_cfg, dilation, masks_of):
        if seed not in weights:
            weights[seed] = modality_weights(phi, seed, names, phi_normalisation, phi_path)
        w = weights[seed]
        scores = {"fp": np.nan, "msfi": np.nan, "msfi_global": np.nan}
        if status != STATUS_NONFINITE:
            try:
                scores = {"fp": fp(parts, masks), "msfi": msfi(parts, masks, w),
                          "msfi_global": msfi_global(parts, masks, w)}
            except ClinxaiError as err:
                raise ClinxaiError(f"{maps_path}, case {r.case}: {err}; rerun its heatmaps job after a change "
                                   "of the data grid.") from err
        rows.append({"task": task, "seed": seed, "method": method, "case": r.case, "label": r.label,
                     "pred": r.pred, "prob_pred": getattr(r, f"prob_{r.pred}"),
                     "correct": bool(r.pred == r.label), "status": status, **scores})
    table = pd.DataFrame(rows)
    save_csv(out_path, table)
    log.info("%s %s: FP %.3f, MSFI %.3f, msfi_global %.3f over %d maps", task, method, table["fp"].mean(),
             table["msfi"].mean(), table["msfi_global"].mean(), len(table))
    return table
