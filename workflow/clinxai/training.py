"""Training one model per (task, seed): weighted sampling, MONAI augmentation, best-validation-epoch selection.

Reproducible: torch, numpy and MONAI transforms are seeded from the model seed; data live in memory and the
loop runs in the main process, so a seed gives bit-identical weights and predictions on the same machine.
"""

from __future__ import annotations

import logging
import random
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import ClinxaiError
from .data.cases import load_prepared
from .inference import as_tensors, predict, resolve_device, to_channels_last
from .io import save_csv, save_json
from .metrics.classification import classification_metrics
from .models import MODEL_FAMILIES, build_model, save_checkpoint
from .runtime import use_threads
from .tasks import TaskKind

log = logging.getLogger("clinxai.training")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    deterministic_algorithms()
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


def deterministic_algorithms() -> None:
    """torch.use_deterministic_algorithms(True, warn_only=True) for the eager ops training runs. The public function
    also sets torch._inductor's flag, importing inductor and dynamo for it: 1.4-1.8 s of every training job's start on
    these CPUs, for a compiler training does not use. The op-level switch is the same call it makes."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is not None and "torch._inductor.config" not in sys.modules:  # else another torch, or inductor in use
        try:
            return setter(True, warn_only=True)
        except TypeError:  # a torch whose private signature changed
            pass
    torch.use_deterministic_algorithms(True, warn_only=True)


def _load_pretrained(model: nn.Module, path, task: str):
    """Non-strict load of a local weights file (a state_dict or a clinxai checkpoint); matching shapes only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ClinxaiError(f"config key training.{task}.model.pretrained = {str(path)!r} cannot be read "
                           f"({type(err).__name__}: {str(err)[:200]}); give a state_dict .pt file or null.") from err
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ClinxaiError(f"config key training.{task}.model.pretrained = {str(path)!r}: no tensor matches the "
                           f"{task} model's names and shapes; it is a weights file for another model.")
    return model.load_state_dict(usable, strict=False)


def _augmenter(augmentation: str, seed: int):
    """Per-sample MONAI augmentation, seeded (TaskKind.augmentation). "image": flips only along left-right (brain
    anatomy is symmetric), noise and intensity shift; "views": noise and intensity scaling of each view."""
    from monai.data import get_track_meta, set_track_meta
    from monai.transforms import Compose, RandFlip, RandGaussianNoise, RandScaleIntensity, RandShiftIntensity

    if augmentation == "views":
        t = Compose([RandGaussianNoise(prob=0.5, std=0.05), RandScaleIntensity(factors=0.1, prob=0.5)])
    else:
        t = Compose([RandFlip(prob=0.5, spatial_axis=0), RandGaussianNoise(prob=0.5, std=0.05),
                     RandShiftIntensity(offsets=0.1, prob=0.5)])
    t.set_random_state(seed)

    def apply(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        # Plain tensors, not MetaTensors: the same values and draws, without MONAI's metadata bookkeeping on every
        # operation (half of a knee demo batch's augmentation time). Restored after: the setting is global.
        tracking = get_track_meta()
        set_track_meta(False)
        try:
            # knee views are S x H x W per sample: treat slices as channels for the intensity transforms
            return tuple(torch.stack([torch.as_tensor(t(s)) for s in x]).float() for x in batch)
        finally:
            set_track_meta(tracking)

    return apply


def train_model(task: str, kind: TaskKind, seed: int, data_dir, cfg: dict, out: dict, device: str = "auto",
                threads: int = 1, permute_labels: bool = False) -> dict:
    """Train one model of a task of `kind`; write checkpoint, per-epoch log, test predictions and metrics (paths in
    `out`). `permute_labels`: the training and validation labels are permuted (seeded) -- Adebayo et al.'s
    data-randomisation test -- and the model of the last epoch is kept (no early stopping: the validation labels
    are noise; the model is meant to memorise its training labels); the test predictions are scored against the true
    labels."""
    start = time.perf_counter()
    use_threads(threads)
    device = torch.device(resolve_device(device))
    seed_everything(seed)
    split, inputs, meta = load_prepared(data_dir, kind)
    inputs = as_tensors(inputs)
    n_classes = len(kind.classes)
    arch = MODEL_FAMILIES[kind.model].arch(cfg["model"], {**meta, "n_classes": n_classes})
    model = build_model(kind.model, arch)
    if cfg["model"].get("pretrained"):
        missing, unexpected = _load_pretrained(model, cfg["model"]["pretrained"], task)
        log.info("pretrained weights %s: %d missing, %d unexpected keys", cfg["model"]["pretrained"],
                 len(missing), len(unexpected))
    model.to(device)
    t = cfg["train"]
    if t.get("channels_last", True):  # same training up to float rounding; the checkpoint is saved contiguous
        to_channels_last(model)
    labels = torch.tensor(split["label"].to_numpy(), dtype=torch.long)
    idx = {part: np.flatnonzero(split["split"].to_numpy() == part) for part in ("train", "val", "test")}
    if permute_labels:
        fit = np.concatenate([idx["train"], idx["val"]])
        labels[fit] = labels[fit][torch.from_numpy(np.random.default_rng(seed).permutation(len(fit)))]
    if len(np.unique(labels[idx["train"]])) < 2:
        raise ClinxaiError(f"{task}: the training split has a single class; add cases or change the split.")

    # Weighted random sampler: inverse class frequency, with replacement (the reference).
    train_labels = labels[idx["train"]]
    class_weight = 1.0 / torch.bincount(train_labels, minlength=n_classes).clamp(min=1).double()
    gen = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.WeightedRandomSampler(class_weight[train_labels], num_samples=len(train_labels),
                                                     replacement=True, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"], amsgrad=t["amsgrad"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=t["step_size"], gamma=t["gamma"])
    loss_fn = nn.CrossEntropyLoss()
    augment = _augmenter(kind.augmentation, seed)
    use_amp = bool(t.get("amp")) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    history, best = [], {"val_acc": -1.0, "val_loss": np.inf, "epoch": -1, "state": None}
    for epoch in range(1, t["max_epochs"] + 1):
        t0 = time.perf_counter()
        model.train()
        order = idx["train"][list(sampler)]
        losses, correct = [], 0
        for b in range(0, len(order), t["batch_size"]):
            sel = order[b:b + t["batch_size"]]
            if len(sel) < 2:  # BatchNorm needs two samples
                continue
            batch = augment(tuple(x[sel] for x in inputs))
            batch = tuple(x.to(device) for x in batch)
            y = labels[sel].to(device)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(*batch)
                loss = loss_fn(logits, y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item() * len(sel))
            correct += (logits.argmax(1) == y).sum().item()
        sched.step()
        val_prob = predict(model, tuple(x[idx["val"]] for x in inputs), t["batch_size"], device)
        val_y = labels[idx["val"]].numpy()
        val_loss = float(nn.functional.nll_loss(torch.log(torch.as_tensor(val_prob).clamp_min(1e-8)),
                                                torch.as_tensor(val_y)))
        vm = classification_metrics(val_y, val_prob)
        row = {"epoch": epoch, "train_loss": sum(losses) / max(len(order), 1), "train_acc": correct / max(len(order), 1),
               "val_loss": val_loss, "val_acc": vm["accuracy"], "val_auc": vm["auc"],
               "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        history.append(row)
        log.info("epoch %3d  train loss %.4f acc %.3f  val loss %.4f acc %.3f auc %.3f  (%.1fs)", epoch,
                 row["train_loss"], row["train_acc"], val_loss, vm["accuracy"], vm["auc"], row["seconds"])
        # Best epoch: highest validation accuracy, ties broken by lower validation loss (chosen by code).
        if permute_labels or (vm["accuracy"], -val_loss) > (best["val_acc"], -best["val_loss"]):
            best = {"val_acc": vm["accuracy"], "val_loss": val_loss, "epoch": epoch,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if not permute_labels and epoch - best["epoch"] >= t["patience"]:
            log.info("early stop: no better validation epoch in %d epochs", t["patience"])
            break

    model.load_state_dict(best["state"])
    model.to(memory_format=torch.contiguous_format)
    save_checkpoint(out["checkpoint"], model.cpu(), task, kind.model, arch,
                    {"seed": seed, "epoch": best["epoch"], "permuted_labels": permute_labels})
    save_csv(out["history"], pd.DataFrame(history))
    info = {"permuted_labels": permute_labels, "best_epoch": best["epoch"], "epochs_run": len(history)}
    return save_predictions(model, task, seed, split, inputs, labels, t["batch_size"], device, out, info, start)


def save_predictions(model, task: str, seed: int, split: pd.DataFrame, inputs, labels, batch_size: int, device,
                     out: dict, info: dict, start: float) -> dict:
    """The test predictions (case, label, pred, prob_<class>) and the metrics file of a model: the same for a model
    trained here and a supplied one (clinxai.plugin). `labels`: the labels it was fitted to (permuted or not);
    the test set is scored against the true ones."""
    model.to(device)
    idx = {part: np.flatnonzero(split["split"].to_numpy() == part) for part in ("val", "test")}
    probs = {part: predict(model, tuple(x[idx[part]] for x in inputs), batch_size, device) for part in idx}
    test = split.iloc[idx["test"]].reset_index(drop=True)
    pred = pd.DataFrame({"case": test["case"], "label": test["label"], "pred": probs["test"].argmax(1),
                         **{f"prob_{k}": probs["test"][:, k] for k in range(probs["test"].shape[1])}})
    save_csv(out["predictions"], pred)
    metrics = {
        "task": task, "seed": seed, **info,
        "val": classification_metrics(np.asarray(labels)[idx["val"]], probs["val"]),
        "test": classification_metrics(test["label"].to_numpy(), probs["test"]),
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "seconds": round(time.perf_counter() - start, 2),
    }
    save_json(out["metrics"], metrics)
    return metrics
