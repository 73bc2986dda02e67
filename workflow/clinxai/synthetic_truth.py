"""Truthfulness on the synthetic task (SPEC §4): ground-truth modality importance from the two ground-truth test
sets, and the per-method summary of MSFI against the known features (the per-case scores come from the
plausibility stage, clinxai.plausibility, with the T1C tumour as mask and this importance as φ)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import ClinxaiError
from .data.synthetic import CHANNELS, GROUND_TRUTH_SETS
from .inference import resolve_device
from .io import save_csv
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
