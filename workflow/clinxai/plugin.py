"""The user's own model as a plug-in (issue 23): `data.<task>.model = {factory, kwargs, checkpoint, python_path,
gradcam_layer}`.

The factory ("package.module:function") builds an `nn.Module` from `kwargs`; the checkpoint is its state_dict (loaded
with weights_only=True). The model takes the prepared inputs of the task's layout (one C x spatial tensor per
case, C = the manifest's modalities in order) and returns (batch, classes) logits or one binary logit, which
`PluginModel` turns into the two logits (-z/2, z/2) as the knee network does (softmax = (1 - sigmoid z, sigmoid z)).
Rule import_model checks the model once against the task and writes a clinxai checkpoint whose `arch` is this
module's spec, so every later job rebuilds the same model through `clinxai.models.load_checkpoint`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch
from torch import nn

from . import ClinxaiError


def _key(task: str, leaf: str) -> str:
    return f"data.{task}.model.{leaf}"


def import_factory(spec: dict):
    """The factory function of `spec["factory"]`, imported with `spec["python_path"]` first on sys.path."""
    task = spec.get("task", "<task>")
    folder = spec.get("python_path")
    if folder:
        folder = str(Path(folder).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
    module_name, _, name = spec["factory"].partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # not found, or the module itself fails
        raise ClinxaiError(f"config key {_key(task, 'factory')} = {spec['factory']!r}: module {module_name!r} cannot "
                           f"be imported ({type(err).__name__}: {str(err)[:200]}). Set {_key(task, 'python_path')} "
                           "to the folder that holds it, or install its package in the environment.") from err
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ClinxaiError(f"config key {_key(task, 'factory')} = {spec['factory']!r}: module {module_name} has no "
                           f"function {name!r}. Name the function that returns the model.")
    return factory


class PluginModel(nn.Module):
    """The user's network with the pipeline's output convention: two class logits for a one-logit binary model;
    `layer(which)` finds the GradCAM layers by their module names."""

    def __init__(self, net: nn.Module, binary_logit: bool, layers: dict):
        super().__init__()
        self.net, self.binary_logit, self.layer_names = net, binary_logit, dict(layers)

    def forward(self, *inputs):
        out = self.net(*inputs)
        if self.binary_logit:
            from .models import two_logits

            return two_logits(out)
        return out

    def layer(self, which: str) -> nn.Module | None:
        name = self.layer_names.get(which)
        return None if not name else self.net.get_submodule(name)


def build(arch: dict) -> PluginModel:
    """The model of a spec (a checkpoint's `arch`): factory(**kwargs), wrapped."""
    factory = import_factory(arch)
    try:
        net = factory(**arch.get("kwargs", {}))
    except Exception as err:
        raise ClinxaiError(f"config key {_key(arch.get('task', '<task>'), 'factory')} = {arch['factory']!r} failed "
                           f"with kwargs {arch.get('kwargs', {})}: {type(err).__name__}: {str(err)[:200]}") from err
    if not isinstance(net, nn.Module):
        raise ClinxaiError(f"config key {_key(arch.get('task', '<task>'), 'factory')}: {arch['factory']} returned a "
                           f"{type(net).__name__}, not a torch.nn.Module.")
    return PluginModel(net, bool(arch.get("binary_logit", False)),
                       {"last": arch.get("gradcam_layer"), "previous": arch.get("gradcam_previous_layer")})


def spec_of(task: str, model_cfg: dict) -> dict:
    """The plug-in's arch dict from its config (binary_logit is found by import_model)."""
    return {"task": task, "factory": model_cfg["factory"], "kwargs": dict(model_cfg.get("kwargs") or {}),
            "python_path": model_cfg.get("python_path"), "gradcam_layer": model_cfg.get("gradcam_layer"),
            "gradcam_previous_layer": model_cfg.get("gradcam_previous_layer")}


def first_conv_channels(net: nn.Module) -> int | None:
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return m.in_channels
    return None


def check_model(task: str, model_cfg: dict, example: torch.Tensor, n_classes: int, checkpoint) -> tuple[dict, dict]:
    """(arch, state_dict of the wrapped model) of a supplied checkpoint, after the checks of issue 23: the weights
    fit the factory's model, the modalities match its input channels, the output is (batch, classes) logits or one
    binary logit, and the GradCAM layers exist. `example`: one prepared case (1 x C x spatial)."""
    spec = spec_of(task, model_cfg)
    ckpt_key = _key(task, "checkpoint")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ClinxaiError(f"config key {ckpt_key}: {checkpoint} cannot be read as a state_dict ({type(err).__name__}: "
                           f"{str(err)[:200]}). Save it with torch.save(model.state_dict(), path).") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training script's {"state_dict": ..., "epoch": ...}
    model = build(spec)
    try:
        model.net.load_state_dict(state)
    except Exception as err:
        raise ClinxaiError(f"config key {ckpt_key}: {checkpoint} does not match the model of {spec['factory']} with "
                           f"kwargs {spec['kwargs']} ({str(err)[:300]}). Give the factory and kwargs the checkpoint "
                           "was trained with.") from err
    n_channels = example.shape[1]
    expected = first_conv_channels(model.net)
    if expected is not None and expected != n_channels:
        raise ClinxaiError(f"config key data.{task}.modalities lists {n_channels} modalities, but the model's first "
                           f"convolution takes {expected} input channels: list the modalities the model was trained "
                           "on, in its channel order.")
    for leaf in ("gradcam_layer", "gradcam_previous_layer"):
        name = spec[leaf]
        if name:
            try:
                model.net.get_submodule(name)
            except AttributeError:
                names = [n for n, _ in model.net.named_modules() if n][:40]
                raise ClinxaiError(f"config key {_key(task, leaf)} = {name!r}: the model has no such module. Its "
                                   f"modules: {', '.join(names)}.") from None
    model.eval()
    try:
        with torch.no_grad():
            out = model.net(example)
    except Exception as err:
        raise ClinxaiError(f"the model of {ckpt_key} fails on a prepared case of shape {tuple(example.shape)} "
                           f"({type(err).__name__}: {str(err)[:200]}): check data.{task}.modalities, layout, grid "
                           "and preprocessing against what the model was trained on.") from err
    shape = tuple(getattr(out, "shape", ()))
    if shape == (1, 1) and n_classes == 2:
        spec["binary_logit"] = True
    elif shape == (1, n_classes):
        spec["binary_logit"] = False
    else:
        raise ClinxaiError(f"the model of {ckpt_key} returns {type(out).__name__} of shape {shape} for one case; "
                           f"expected (batch, {n_classes}) class logits"
                           + (" or (batch, 1), one binary logit" if n_classes == 2 else "")
                           + f" for the {n_classes} classes of data.{task}.classes. Return logits, not a tuple or dict.")
    model.binary_logit = spec["binary_logit"]
    return spec, model.state_dict()


def import_model(task: str, kind, number: int, data_dir, model_cfg: dict, out: dict, device: str = "auto") -> dict:
    """Rule import_model: the `number`-th checkpoint of a supplied model (1-based) checked against the prepared
    task and written as a clinxai checkpoint, with the same predictions and metrics files as a trained model."""
    import time

    import pandas as pd

    from .data.cases import load_prepared
    from .inference import as_tensors, resolve_device
    from .io import save_csv
    from .models import save_checkpoint
    from .tasks import checkpoints
    from .training import save_predictions

    start = time.perf_counter()
    source = checkpoints(model_cfg)[number - 1]
    split, inputs, meta = load_prepared(data_dir, kind)
    inputs = as_tensors(inputs)
    arch, state = check_model(task, model_cfg, inputs[0][:1], len(kind.classes), source)
    model = build(arch)
    model.load_state_dict(state)
    save_checkpoint(out["checkpoint"], model, task, "plugin", arch, {"seed": number, "source": str(source)})
    save_csv(out["history"], pd.DataFrame(columns=["epoch"]))  # a supplied model is not trained here
    labels = split["label"].to_numpy()
    info = {"supplied": str(source), "binary_logit": arch["binary_logit"], "epochs_run": 0}
    return save_predictions(model.eval(), task, number, split, inputs, labels, 8, resolve_device(device), out, info,
                            start)
