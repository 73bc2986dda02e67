"""Occlusion by incremental inference (Nakandala et al., "Incremental and approximate inference for faster
occlusion-based deep CNN explanations", SIGMOD 2019): exact, and far cheaper than one forward pass per window.

An occluded window changes a network's activations only inside its receptive field. Through a chain of
convolutions, max pooling and element-wise layers (BatchNorm in eval mode, ReLU) the changed region stays a box, so
we keep the unoccluded input's activations and recompute, per window, only that box ("patch") of every layer from the
previous layer's patch and the stored activations around it. Once a patch covers most of a layer, the rest of the
chain runs dense; the model's head (flatten, fully connected) always does.

Same windows (as captum places them, the last one clipped at the border), baselines and formula as captum's
Occlusion: the attribution of a voxel is the mean, over the windows covering it, of f(x)[t] - f(x occluded)[t].
Equal to captum's output within float tolerance (tests/test_incremental_occlusion.py). A model whose family names no
chain (clinxai.models) but takes one input tensor runs as an empty chain: every window's input batched through the
whole model as its head; the knee network (three views) has its own (clinxai.attribution.occlusion_slices).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import ClinxaiError
from ..inference import describe

ELEMENTWISE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
               nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout3d)
DENSE_FROM = 0.5  # run the rest of the chain dense once a patch covers this share of a layer


def per_axis(v, d: int) -> tuple:
    """A layer argument (int or tuple) as one value per spatial axis."""
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * d


def _geometry(mod: nn.Module, d: int):
    """(kernel, stride, padding) per spatial axis of a windowed layer; None if the layer is element-wise."""
    if isinstance(mod, ELEMENTWISE):
        return None
    if isinstance(mod, (nn.Conv2d, nn.Conv3d)) and mod.groups == 1 and mod.padding_mode == "zeros" \
            and set(per_axis(mod.dilation, d)) == {1} and not isinstance(mod.padding, str):
        return per_axis(mod.kernel_size, d), per_axis(mod.stride, d), per_axis(mod.padding, d)
    if isinstance(mod, (nn.MaxPool2d, nn.MaxPool3d)) and not mod.ceil_mode and set(per_axis(mod.padding, d)) == {0} \
            and set(per_axis(mod.dilation, d)) == {1}:
        k = per_axis(mod.kernel_size, d)
        return k, per_axis(mod.stride if mod.stride is not None else mod.kernel_size, d), (0,) * d
    raise ValueError(type(mod).__name__)


def supported(chain: list[nn.Module]) -> bool:
    """True if every layer of the chain is a convolution, max pooling or element-wise layer this module handles, all
    of one spatial dimension."""
    dims = {2 if isinstance(m, (nn.Conv2d, nn.MaxPool2d)) else 3 for m in chain
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.Conv3d, nn.MaxPool3d))}
    if len(dims) != 1:
        return False
    d = dims.pop()
    try:
        for mod in chain:
            _geometry(mod, d)
    except ValueError:
        return False
    return True


def window_grid(shape, window, strides) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (windows x dims, over a case's dims without the batch) of captum's Occlusion windows: per axis
    ceil((size - window) / stride) + 1 positions, the last one clipped at the border."""
    shape, window, strides = (np.asarray(v, dtype=np.int64) for v in (shape, window, strides))
    rest = shape - window
    if (rest < 0).any():
        raise ClinxaiError(f"Occlusion window {window.tolist()} exceeds the input {shape.tolist()}.")
    if ((rest > 0) & (strides > window)).any():
        raise ClinxaiError(f"Occlusion strides {strides.tolist()} exceed the window {window.tolist()}: some voxels "
                           "would never be occluded.")
    counts = np.ceil(rest / strides).astype(np.int64) + 1
    index = np.stack([g.ravel() for g in np.indices(counts)], axis=1)
    starts = index * strides
    return starts, np.minimum(starts + window, shape)


def _gather(base: torch.Tensor, starts: np.ndarray, size) -> torch.Tensor:
    """Boxes of `size` at `starts` (windows x spatial dims) from one activation map (1 x C x ...): windows x C x size."""
    v = base[0]
    for i, k in enumerate(size):
        v = v.unfold(1 + i, int(k), 1)
    index = tuple(torch.from_numpy(starts[:, i]).to(base.device) for i in range(starts.shape[1]))
    return v[(slice(None),) + index].movedim(1, 0)  # C x N x size -> N x C x size


def _place(into: torch.Tensor, patch: torch.Tensor, rel: np.ndarray) -> None:
    """Write each window's patch into its row of `into` at offsets `rel` (windows x dims; parts outside dropped).
    Windows share offsets except near a border, so this is a few slice assignments, not one per window."""
    size, room = np.array(patch.shape[2:]), np.array(into.shape[2:])
    keys, group = np.unique(rel, axis=0, return_inverse=True)
    group = group.ravel()
    for g, r in enumerate(keys):
        lo, hi = np.maximum(0, -r), np.minimum(size, room - r)
        if (hi <= lo).any():
            continue
        src = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        dst = tuple(slice(int(a + o), int(b + o)) for a, b, o in zip(lo, hi, r))
        if len(keys) == 1:
            into[(slice(None), slice(None)) + dst] = patch[(slice(None), slice(None)) + src]
        else:
            idx = torch.from_numpy(np.flatnonzero(group == g)).to(into.device)
            into[(idx, slice(None)) + dst] = patch[(idx, slice(None)) + src]


def window_math(geometry, size, starts: np.ndarray, n_out):
    """For boxes of `size` at `starts` (boxes x dims) in a windowed layer's input: the output boxes' starts they
    change, and the input context (starts in the padded input's coordinates, one size) those outputs read."""
    k, st, p = (np.array(v) for v in geometry)
    size, n_out = np.array(size), np.array(n_out)
    lo = np.maximum(-((-(starts - k + 1 + p)) // st), 0)        # first output touched by the box
    hi = np.minimum((starts + size - 1 + p) // st + 1, n_out)    # one past the last
    # at least one output: a batch whose boxes no output reads (a pooling floor, a kernel below its stride) still
    # yields a valid (unchanged) patch
    size_out = np.minimum(np.maximum((hi - lo).max(axis=0), 1), n_out)
    out_starts = np.clip(lo, 0, n_out - size_out)
    return out_starts, out_starts * st, (size_out - 1) * st + k


def pad_as(a: torch.Tensor, geometry) -> torch.Tensor:
    """A windowed layer's input zero-padded as the layer pads it (itself where the layer does not pad)."""
    p = geometry[2]
    return F.pad(a, [int(v) for v in p[::-1] for _ in (0, 1)]) if any(p) else a


def _windowed(mod, geometry, base_in: torch.Tensor, n_out, patch: torch.Tensor, starts: np.ndarray):
    """One convolution or pooling layer on every window's patch: the output patch and its starts."""
    k, st, p = (np.array(v) for v in geometry)
    out_starts, ctx_starts, ctx_size = window_math(geometry, patch.shape[2:], starts, n_out)
    ctx = _gather(pad_as(base_in, geometry), ctx_starts, ctx_size)
    _place(ctx, patch, starts + p - ctx_starts)
    if isinstance(mod, (nn.Conv2d, nn.Conv3d)):
        conv = F.conv3d if ctx.dim() == 5 else F.conv2d
        out = conv(ctx, mod.weight, mod.bias, stride=tuple(int(v) for v in st))
    else:
        pool = F.max_pool3d if ctx.dim() == 5 else F.max_pool2d
        out = pool(ctx, tuple(int(v) for v in k), tuple(int(v) for v in st))
    return out, out_starts


def _dense(base: torch.Tensor, patch: torch.Tensor, starts: np.ndarray) -> torch.Tensor:
    """Every window's full activation map: the unoccluded one with the window's patch written in."""
    full = base.expand(len(patch), *base.shape[1:]).clone()
    _place(full, patch, starts)
    return full


class IncrementalOcclusion:
    """captum's Occlusion for a model given as `chain` (layers run window by window) then `head` (run dense);
    `windows_per_batch` windows share one pass through the chain."""

    def __init__(self, chain: list[nn.Module], head: nn.Module, windows_per_batch: int = 128):
        self.chain, self.head, self.batch = list(chain), head, max(1, int(windows_per_batch))

    @property
    def implementation(self) -> str:  # read when asked: a compiled model may fall back to uncompiled mid-job
        return "clinxai incremental" if self.chain else "clinxai batched windows" + describe(self.head)

    @torch.inference_mode()
    def attribute(self, inputs, target, sliding_window_shapes, strides=None, baselines=0.0, perturbations_per_eval=None):
        """As captum.attr.Occlusion(model).attribute (one input tensor, or a tuple of one); `perturbations_per_eval`
        is accepted and ignored (`windows_per_batch` batches)."""
        as_tuple = isinstance(inputs, tuple)
        x = inputs[0] if as_tuple else inputs
        if as_tuple and len(inputs) != 1:
            raise ClinxaiError("incremental Occlusion takes models of one input tensor; use captum's for several.")
        baselines = baselines[0] if isinstance(baselines, tuple) else baselines
        window = tuple(sliding_window_shapes)
        strides = tuple(strides) if strides is not None else (1,) * len(window)
        targets = torch.as_tensor(target).reshape(-1).tolist()
        out = torch.zeros_like(x)
        for i in range(len(x)):
            base = baselines[i if len(baselines) > 1 else 0][None] if torch.is_tensor(baselines) else baselines
            out[i] = self._one(x[i:i + 1], int(targets[i if len(targets) > 1 else 0]), window, strides, base)[0]
        return (out,) if as_tuple else out

    def prepare(self, x: torch.Tensor, baseline) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The unoccluded activations (every layer's input, then the chain's output) and the baseline as a tensor."""
        acts = [x]
        for mod in self.chain:
            acts.append(mod(acts[-1].clone() if getattr(mod, "inplace", False) else acts[-1]))  # keep every input
        if not torch.is_tensor(baseline):
            baseline = torch.full_like(x, float(baseline))
        return acts, baseline.expand_as(x)

    def _one(self, x: torch.Tensor, target: int, window, strides, baseline) -> torch.Tensor:
        acts, baseline = self.prepare(x, baseline)
        reference = self.head(acts[-1])[0, target]
        starts, ends = window_grid(x.shape[1:], window, strides)
        total = torch.zeros_like(x[0], dtype=torch.float32)
        count = torch.zeros_like(total)
        for lo in range(0, len(starts), self.batch):
            s, e = starts[lo:lo + self.batch], ends[lo:lo + self.batch]
            self.accumulate(total, count, s, e, reference - self.occluded_logits(x, baseline, s, e, acts)[:, target])
        return (total / count)[None].to(x.dtype)

    @staticmethod
    def accumulate(total: torch.Tensor, count: torch.Tensor, starts: np.ndarray, ends: np.ndarray, drop) -> None:
        """Add each window's drop to its voxels and count the windows covering each voxel."""
        for j in range(len(starts)):
            box = tuple(slice(int(a), int(b)) for a, b in zip(starts[j], ends[j]))
            total[box] += drop[j]
            count[box] += 1

    def occluded_logits(self, x, baseline, starts: np.ndarray, ends: np.ndarray, acts) -> torch.Tensor:
        """The logits of x with each window (starts, ends: windows x dims) set to the baseline."""
        geometry = [_geometry(m, x.dim() - 2) for m in self.chain]
        spatial = np.array(x.shape[2:])
        size = np.minimum((ends - starts)[:, 1:].max(axis=0), spatial)
        box_starts = np.minimum(starts[:, 1:], spatial - size)
        patch = _gather(x, box_starts, size).clone()
        for j in range(len(starts)):  # occlude: the window's channels and voxels take the baseline's values
            win = tuple(slice(int(a), int(b)) for a, b in zip(starts[j], ends[j]))
            rel = (slice(int(starts[j, 0]), int(ends[j, 0])),) + tuple(
                slice(int(a - o), int(b - o)) for a, b, o in zip(starts[j, 1:], ends[j, 1:], box_starts[j]))
            patch[(j,) + rel] = baseline[(0,) + win]
        dense = None
        for mod, geo, base_in, base_out in zip(self.chain, geometry, acts[:-1], acts[1:]):
            if dense is not None:
                dense = mod(dense)
            elif math.prod(patch.shape[2:]) >= DENSE_FROM * math.prod(base_in.shape[2:]):
                dense = mod(_dense(base_in, patch, box_starts))
            elif geo is None:
                patch = mod(patch)
            else:
                patch, box_starts = _windowed(mod, geo, base_in, base_out.shape[2:], patch, box_starts)
        if dense is None:
            dense = _dense(acts[-1], patch, box_starts)
        return self.head(dense)
