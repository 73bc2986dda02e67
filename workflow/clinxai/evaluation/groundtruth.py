"""Truthfulness where the modality importance is known (the synthetic kind, SPEC §4): each model's accuracy on the two
ground-truth test sets gives φ. MSFI of every map against the known features comes from the plausibility stage
(clinxai.evaluation.plausibility) with this φ; its per-method summary is clinxai.analysis.summaries.summarise_msfi."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import ClinxaiError
from ..data.synthetic import CHANNELS, GROUND_TRUTH_SETS
from ..inference import predict, resolve_device
from ..io import save_csv
from ..models import load_checkpoint
from ..runtime import use_threads

log = logging.getLogger("clinxai.synthetic")


def load_groundtruth(gt_dir, name: str) -> tuple[torch.Tensor, np.ndarray]:
    path = Path(gt_dir) / f"{name}.npz"
    if not path.is_file():
        raise ClinxaiError(f"ground-truth set {path} is missing; rerun rule synthetic_data.")
    with np.load(path) as z:
        return torch.from_numpy(z["image"].astype(np.float32)), z["label"].astype(int)


def run_groundtruth(task: str, seeds, checkpoints, gt_dir, out_accuracy, out_phi, batch_size: int = 32, threads: int = 1,
                    device: str = "auto") -> pd.DataFrame:
    """Accuracy of every model on the "T1C" and "FLAIR" sets, and the ground-truth importance phi per modality:
    phi_T1C = Acc_T1C, phi_FLAIR = Acc_FLAIR, 0 for T1 and T2 (they never show label information)."""
    use_threads(threads)
    dev = resolve_device(device)
    sets = {name: load_groundtruth(gt_dir, name) for name in GROUND_TRUTH_SETS}
    rows, phis = [], []
    for seed, ckpt in zip(seeds, checkpoints):
        model = load_checkpoint(ckpt, task=task).to(dev)
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
