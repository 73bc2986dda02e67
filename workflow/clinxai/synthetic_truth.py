"""Truthfulness on the synthetic task (SPEC §4): ground-truth modality importance from the two ground-truth test
sets, then MSFI of every heatmap against the known features (the T1C tumour, weighted by that importance)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import ClinxaiError
from .attribution.postprocess import STATUS_NONFINITE, is_layer_map, postprocess
from .attribution.run import load_maps
from .data.synthetic import CHANNELS, GROUND_TRUTH_SETS
from .inference import resolve_device
from .io import save_csv
from .metrics.plausibility import fp, msfi, msfi_global, normalise_phi
from .models import load_checkpoint
from .training import predict

log = logging.getLogger("clinxai.synthetic")


def load_groundtruth(gt_dir, name: str) -> tuple[torch.Tensor, np.ndarray]:
    path = Path(gt_dir) / f"{name}.npz"
    if not path.is_file():
        raise ClinxaiError(f"ground-truth set {path} is missing; rerun rule synthetic_data.")
    with np.load(path) as z:
        return torch.from_numpy(z["image"].astype(np.float32)), z["label"].astype(int)


def run_groundtruth(seeds, checkpoints, gt_dir, out_accuracy, out_phi, batch_size: int = 32, threads: int = 1,
                    device: str = "auto") -> pd.DataFrame:
    """Accuracy of every model on the "T1C" and "FLAIR" sets, and the ground-truth importance phi per modality:
    phi_T1C = Acc_T1C, phi_FLAIR = Acc_FLAIR, 0 for T1 and T2 (they never show label information)."""
    torch.set_num_threads(max(1, threads))
    dev = resolve_device(device)
    sets = {name: load_groundtruth(gt_dir, name) for name in GROUND_TRUTH_SETS}
    rows, phis = [], []
    for seed, ckpt in zip(seeds, checkpoints):
        model = load_checkpoint(ckpt, task="synthetic").to(dev)
        acc = {}
        for name, (x, y) in sets.items():
            prob = predict(model, (x,), batch_size, dev)
            acc[name] = float((prob.argmax(1) == y).mean())
            rows.append({"seed": seed, "set": name, "accuracy": acc[name], "n": len(y),
                         "predicted_1": float(prob.argmax(1).mean())})
        phis += [{"seed": seed, "modality": c, "phi": acc.get(c, 0.0)} for c in CHANNELS]
        log.info("seed %s: Acc_T1C %.3f, Acc_FLAIR %.3f", seed, acc["T1C"], acc["FLAIR"])
    table = pd.DataFrame(rows)
    save_csv(out_accuracy, table)
    save_csv(out_phi, pd.DataFrame(phis))
    return table


def _t1c_masks(data_dir, case: str) -> list:
    """Plausibility mask of a synthetic case: its tumour on T1C, nothing on the other channels (SPEC §1)."""
    with np.load(Path(data_dir) / "arrays" / f"{case}.npz") as z:
        seg = z["seg"].astype(bool)
    if not seg.any():
        raise ClinxaiError(f"synthetic case {case}: empty T1C tumour mask in {data_dir}/arrays/{case}.npz; "
                           "rerun rule synthetic_data (every case has a tumour by construction).")
    return [seg if c == "T1C" else None for c in CHANNELS]


def run_msfi(method: str, seeds, maps, predictions, phi_path, data_dir, post_cfg: dict, phi_normalisation: str,
             out_path) -> pd.DataFrame:
    """Per (seed, case): FP, MSFI and msfi_global of one method's post-processed map, with the prediction."""
    phi = pd.read_csv(phi_path)
    rows, masks_of = [], {}  # every model has the same test cases: each case's mask is read once
    for seed, maps_path, pred_path in zip(seeds, maps, predictions):
        pred = pd.read_csv(pred_path, dtype={"case": str})
        raw = load_maps(maps_path)
        g = phi[phi["seed"] == int(seed)].set_index("modality")
        if g.empty:
            raise ClinxaiError(f"{phi_path} has no modality importance for seed {seed}; rerun synthetic_groundtruth.")
        w = normalise_phi(g.loc[list(CHANNELS), "phi"].to_numpy(), phi_normalisation)
        for r in pred.itertuples(index=False):
            if r.case not in raw:
                raise ClinxaiError(f"{maps_path} has no map for test case {r.case}: rerun its heatmaps job.")
            if r.case not in masks_of:
                masks_of[r.case] = _t1c_masks(data_dir, r.case)
            masks = masks_of[r.case]
            shapes = [masks[CHANNELS.index("T1C")].shape] * len(CHANNELS)
            parts, status = postprocess(raw[r.case], shapes, post_cfg, gradcam=is_layer_map(method))
            nan = status == STATUS_NONFINITE
            rows.append({"seed": seed, "method": method, "case": r.case, "label": r.label, "pred": r.pred,
                         "prob_pred": r.prob_1 if r.pred == 1 else r.prob_0, "correct": bool(r.pred == r.label),
                         "status": status,
                         "fp": np.nan if nan else fp(parts, masks),
                         "msfi": np.nan if nan else msfi(parts, masks, w),
                         "msfi_global": np.nan if nan else msfi_global(parts, masks, w)})
    table = pd.DataFrame(rows)
    save_csv(out_path, table)
    log.info("%s: MSFI %.3f, msfi_global %.3f over %d maps", method, table["msfi"].mean(),
             table["msfi_global"].mean(), len(table))
    return table


def summarise_msfi(tables: list[pd.DataFrame], accuracy: pd.DataFrame, report_metric: str) -> pd.DataFrame:
    """Per method: mean, std and n of msfi and msfi_global over all (model, case) pairs; the reported metric."""
    t = pd.concat(tables, ignore_index=True)
    out = t.groupby("method").agg(msfi_mean=("msfi", "mean"), msfi_std=("msfi", "std"), msfi_n=("msfi", "count"),
                                  msfi_global_mean=("msfi_global", "mean"), msfi_global_std=("msfi_global", "std"),
                                  msfi_global_n=("msfi_global", "count"), fp_mean=("fp", "mean"))
    out["reported"] = report_metric
    out["acc_t1c"] = accuracy.loc[accuracy["set"] == "T1C", "accuracy"].mean()
    out["acc_flair"] = accuracy.loc[accuracy["set"] == "FLAIR", "accuracy"].mean()
    return out.reset_index().assign(task="synthetic")
