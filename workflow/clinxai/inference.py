"""Fast batched evaluation of a trained model on many perturbed copies of its inputs.

The evaluation stages (feature removal, modality Shapley) feed a model tens of thousands of perturbed inputs. They
work on a *flat* view of one case: every modality (channel or knee view) flattened and concatenated in order, so a
heatmap (a list of per-modality arrays) and its input line up voxel by voxel, whatever the task's input layout.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn


class FlatLayout:
    """Converts one case's model inputs (a tuple of 1 x ... tensors) to and from a flat vector."""

    def __init__(self, example: tuple[torch.Tensor, ...]):
        self.shapes = [tuple(t.shape[1:]) for t in example]  # per input tensor, without the batch dimension
        self.sizes = [math.prod(s) for s in self.shapes]
        if len(example) > 1:  # knee: one modality per view tensor
            self.modality_sizes = list(self.sizes)
        else:  # channels of one tensor
            c = self.shapes[0][0]
            self.modality_sizes = [self.sizes[0] // c] * c
        self.n = sum(self.sizes)

    def flatten(self, x: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in x])

    def unflatten(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """B x N -> model inputs with batch dimension B."""
        parts = torch.split(flat, self.sizes, dim=1)
        return tuple(p.reshape(flat.shape[0], *s) for p, s in zip(parts, self.shapes))

    def flatten_map(self, parts) -> np.ndarray:
        """Per-modality map arrays -> one flat float32 vector in the same order as the inputs."""
        flat = np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in parts])
        if flat.size != self.n:
            raise ValueError(f"map has {flat.size} values, the inputs {self.n}: map and input shapes differ")
        return flat

    def modality_shapes(self) -> list[tuple[int, ...]]:
        """Spatial shape of each modality: each knee view's, or one image's channels."""
        if len(self.shapes) > 1:
            return list(self.shapes)
        return [self.shapes[0][1:]] * self.shapes[0][0]

    def modality_slices(self) -> list[slice]:
        ends = np.cumsum(self.modality_sizes)
        return [slice(int(e - s), int(e)) for s, e in zip(self.modality_sizes, ends)]


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """A copy with every Conv -> BatchNorm pair folded into one conv (eval mode; same outputs up to rounding)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, (nn.Conv2d, nn.Conv3d)) and isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm3d)):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return model


def channels_last_format(model: nn.Module):
    """The channels-last memory format matching a model's convolutions (2-D or 3-D), or None (no convolutions, or
    both kinds). With channels-last weights a convolution's output is channels-last whatever its input's layout,
    and the layers after it (BatchNorm, ReLU, pooling) keep it: max pooling alone runs 5-9x faster on CPU than on
    the default layout (the knee network's forward passes 2x faster; a demo training epoch, batches of 4-8 with the
    optimiser and augmentation unchanged, 4-15 %)."""
    dims = {m.weight.dim() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))}
    return {frozenset({4}): torch.channels_last, frozenset({5}): torch.channels_last_3d}.get(frozenset(dims))


def to_channels_last(model: nn.Module) -> nn.Module:
    """The model (in place) with channels-last weights where `channels_last_format` names a format: the same outputs
    up to float rounding."""
    fmt = channels_last_format(model)
    return model.to(memory_format=fmt) if fmt is not None else model


def compile_checked(model: nn.Module, example: tuple[torch.Tensor, ...], inference: bool):
    """`torch.compile(model)` (inductor), checked against the model's own logits on `example` and on two copies of
    it; None, with a warning, where compiling fails (no C++ compiler on a node, an operation inductor cannot trace)
    or changes the logits. dynamo compiles once for the first batch size and once more, for any size, at the
    second (automatic dynamic shapes), and per autograd mode (`inference`: the caller's passes run under
    torch.inference_mode, else no_grad): both compiles happen here, before any timed pass, and are both checked.
    Measured on CPU (README "Performance"): worth it only for long jobs."""
    import logging

    log = logging.getLogger("clinxai")
    mode = torch.inference_mode if inference else torch.no_grad
    try:
        fast = torch.compile(model)
        with mode():
            for x in (example, tuple(torch.cat([t, t]) for t in example)):
                got, expected = fast(*x), model(*x)
                if not torch.allclose(got, expected, atol=1e-4, rtol=1e-4):
                    log.warning("torch.compile changes this model's logits (max difference %.2g at batch size %d): "
                                "evaluating it uncompiled", float((got - expected).abs().max()), len(got))
                    return None
    except Exception as err:  # noqa: BLE001 - any failure to compile leaves the model as it is
        log.warning("torch.compile failed (%s: %s): evaluating the model uncompiled (set compile: false to skip "
                    "the attempt)", type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        return None
    return fast


def describe(forward_func) -> str:
    """What a forward function adds to a method's `implementation`: ", BatchNorm folded", ", compiled"."""
    return ((", BatchNorm folded" if getattr(forward_func, "folded", False) else "")
            + (", compiled" if getattr(forward_func, "compiled", False) else ""))


class ForwardOnly(nn.Module):
    """A model for work that needs only forward passes (`Predictor`, perturbation methods): BatchNorm folded into
    the convolutions, channels-last weights (`to_channels_last`) and ReLUs in place — about 2x faster on CPU for the
    same outputs up to float rounding. Folding assumes that a BatchNorm registered right after a convolution normalises that
    convolution's output, which holds for the pipeline's networks but need not for a supplied one
    (`bn(conv(x) + skip)`): the logits on `example` are therefore compared with the model's, and where they differ
    the model itself is used (`folded` False, with a warning). `compile`: the result through `torch.compile` as
    well (`compiled`; `compile_checked`), for passes in the autograd mode `inference` (None: the mode this is built
    in); a compiled pass that fails later (a recompile) falls back to the uncompiled model, with a warning."""

    def __init__(self, model: nn.Module, example: tuple[torch.Tensor, ...], compile: bool = False,
                 inference: bool | None = None):
        super().__init__()
        self.__dict__["_compiled"] = None  # not a submodule: module walks (the linear stem) see the model once
        # the weights only: converting each input batch too costs a copy (10 % of a glioma demo pass) and gains
        # nothing, the first convolution's output is channels-last either way
        self.model = to_channels_last(fuse_batchnorm(model))
        for m in self.model.modules():  # no autograd here: ReLUs in place (explainable() set them out of place for
            if isinstance(m, nn.ReLU):  # captum's hooks), a glioma demo pass 1.5x faster at batch 16
                m.inplace = True
        with torch.no_grad():
            plain, folded = model.eval()(*example), self(*example)
        self.folded = bool(torch.allclose(plain, folded, atol=1e-4, rtol=1e-4))
        if not self.folded:
            import logging

            logging.getLogger("clinxai").warning(
                "folding BatchNorm changes this model's predictions (max logit difference %.2g, ReLUs in place): "
                "evaluating it as given (the model normalises something else than the convolution registered "
                "before it, or reuses a ReLU's input)", float((plain - folded).abs().max()))
            self.model = model
            folded = plain
        if compile:
            inference = torch.is_inference_mode_enabled() if inference is None else inference
            self.__dict__["_compiled"] = compile_checked(self.model, example, inference)
        self.compiled = self._compiled is not None

    def forward(self, *x):
        if self._compiled is None:
            return self.model(*x)
        try:
            return self._compiled(*x)
        except Exception as err:  # noqa: BLE001 - a later recompile failing must not end an hours-long job
            import logging

            logging.getLogger("clinxai").warning(
                "a compiled forward pass failed (%s: %s): evaluating the model uncompiled from here on",
                type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            self.__dict__["_compiled"] = None
            self.compiled = False
            return self.model(*x)


class Predictor:
    """Class probabilities (B x classes) and predicted classes of a model for batches of flat inputs.

    `fast=True` evaluates the model as `ForwardOnly` (BatchNorm folded, channels-last), checked on the first batch.
    """

    def __init__(self, model: nn.Module, layout: FlatLayout, device: str = "cpu", fast: bool = True,
                 compile: bool = False):
        self.layout, self.device, self.fast, self.compile = layout, device, fast, compile
        self.model = copy.deepcopy(model).to(device).eval()

    @torch.inference_mode()
    def __call__(self, flat: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        x = self.layout.unflatten(flat.to(self.device))
        if self.fast and not isinstance(self.model, ForwardOnly):  # folded once, checked on this first batch
            self.model = ForwardOnly(self.model, x, compile=self.compile)
        prob = torch.softmax(self.model(*x).float(), dim=1).cpu().numpy()
        return prob, prob.argmax(1)


class Batcher:
    """Collects perturbed inputs from many cases into batches of about `size` for one forward pass each."""

    def __init__(self, predict, size: int):
        self.predict, self.size = predict, size
        self.inputs, self.keys, self.results = [], [], []

    def add(self, x: torch.Tensor, keys: list) -> None:
        self.inputs.append(x)
        self.keys += keys
        if sum(len(t) for t in self.inputs) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.inputs:
            prob, pred = self.predict(torch.cat(self.inputs))
            self.results += list(zip(self.keys, prob, pred))
            self.inputs, self.keys = [], []


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@torch.no_grad()
def predict(model: nn.Module, inputs: tuple[torch.Tensor, ...], batch_size: int, device) -> np.ndarray:
    """Class probabilities (N x 2) in eval mode, batched."""
    model.eval()
    probs = []
    for start in range(0, len(inputs[0]), batch_size):
        batch = tuple(x[start:start + batch_size].to(device) for x in inputs)
        probs.append(torch.softmax(model(*batch).float(), dim=1).cpu())
    return torch.cat(probs).numpy()


def as_tensors(arrays) -> tuple[torch.Tensor, ...]:
    """A case's (or a stack's) input arrays from clinxai.data.cases as tensors, sharing memory."""
    return tuple(torch.from_numpy(a) for a in arrays)
