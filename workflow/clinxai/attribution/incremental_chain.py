"""A layer chain's activations for inputs that each differ from a stored input only inside a box (issue 22).

The incremental inference of clinxai.attribution.occlusion (Nakandala et al., SIGMOD 2019) for inputs that are not
windows of one case: FeatureAblation removes one supervoxel from the case (every input differs from the case inside
the supervoxel's bounding box), ShapleyValueSampling adds one supervoxel per step to the previous step's coalition
(every input differs from the one before it inside a box). `BoxedChain.state` keeps, per row, the input of every
windowed layer (zero-padded as the layer pads) and the chain's output; `logits` recomputes only each layer's box from
the row's stored activations around it, as Occlusion does, and with `write` stores the new activations as the row's
next state. At the paper's glioma size a supervoxel's box is about 4 % of the volume (50 per 128^3 channel), so a
step costs a fraction of a forward pass; where boxes are large against the input (the demo's 8 supervoxels per
32 x 32 x 24 channel) `relative_cost` says so and the callers batch whole inputs instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .occlusion import DENSE_FROM, _geometry, pad_as, window_math


def _apply(mod: nn.Module, geo, padded: torch.Tensor) -> torch.Tensor:
    """A convolution or max pooling on its input already padded (zeros, as the layer pads)."""
    k, st, _ = geo
    if isinstance(mod, (nn.Conv2d, nn.Conv3d)):
        conv = F.conv3d if padded.dim() == 5 else F.conv2d
        return conv(padded, mod.weight, mod.bias, stride=tuple(st))
    pool = F.max_pool3d if padded.dim() == 5 else F.max_pool2d
    return pool(padded, tuple(k), tuple(st))


def gather_rows(base: torch.Tensor, starts: np.ndarray, size) -> torch.Tensor:
    """Boxes of `size` at `starts` (rows x dims): from one map shared by every row (1 x C x ...), or each row's box
    from its own row of `base` (rows x C x ...). -> rows x C x size (a copy). One slice per row: copying slices ran
    faster than one advanced index over unfolded views (a paper-size glioma case's FeatureAblation)."""
    out = base.new_empty((len(starts), base.shape[1], *(int(k) for k in size)))
    shared = len(base) == 1
    for r, at in enumerate(starts):
        box = tuple(slice(int(a), int(a) + int(k)) for a, k in zip(at, size))
        out[r] = base[(0 if shared else r, slice(None)) + box]
    return out


def place_rows(into: torch.Tensor, patch: torch.Tensor, rel: np.ndarray) -> None:
    """Write patch r into row r of `into` at offsets rel r (rows x dims); parts outside `into` are dropped."""
    size, room = np.array(patch.shape[2:]), np.array(into.shape[2:])
    for r, at in enumerate(rel):
        lo, hi = np.maximum(0, -at), np.minimum(size, room - at)
        if (hi > lo).all():
            into[(r, slice(None)) + tuple(slice(int(a + o), int(b + o)) for a, b, o in zip(lo, hi, at))] = \
                patch[(r, slice(None)) + tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))]


def _dense(base: torch.Tensor, patch: torch.Tensor, at: np.ndarray) -> torch.Tensor:
    full = base.expand(len(patch), *base.shape[1:]).clone()
    place_rows(full, patch, at)
    return full


@dataclass
class ChainState:
    """Per row: the chain's input, every windowed layer's padded input, the chain's output."""

    x: torch.Tensor
    saved: list
    out: torch.Tensor

    def rows(self, n: int) -> "ChainState":
        """n writable copies of a one-row state."""
        def rep(t):
            return t.expand(n, *t.shape[1:]).clone()
        return ChainState(rep(self.x), [rep(t) for t in self.saved], rep(self.out))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [self.x, self.out, *self.saved])


class BoxedChain:
    """A model given as `chain` (convolution, max pooling and element-wise layers; see occlusion.supported) then
    `head`, evaluated on inputs that differ from a stored state inside boxes."""

    def __init__(self, chain: list[nn.Module], head: nn.Module):
        self.chain, self.head = list(chain), head

    def _geometry(self, d: int) -> list:
        return [_geometry(m, d) for m in self.chain]

    @torch.inference_mode()
    def state(self, x: torch.Tensor) -> ChainState:
        saved, a = [], x
        for mod, geo in zip(self.chain, self._geometry(x.dim() - 2)):
            if geo is None:
                a = mod(a.clone() if a is x and getattr(mod, "inplace", False) else a)  # never into the input
            else:
                saved.append(pad_as(a, geo))
                a = _apply(mod, geo, saved[-1])
        return ChainState(x, saved, a)

    @torch.inference_mode()
    def logits(self, state: ChainState, patch: torch.Tensor, starts: np.ndarray, write: bool = False):
        """The head's output for each row: the state's input (its row, or the one row every patch shares) with
        patch r (rows x C x size) at starts r (rows x dims). `write`: each row's state becomes its new input's."""
        geometry = self._geometry(patch.dim() - 2)
        if write:
            place_rows(state.x, patch, starts)
        dense, saved = None, iter(state.saved)
        for mod, geo in zip(self.chain, geometry):
            if geo is None:
                if dense is not None:
                    dense = mod(dense)
                else:
                    patch = mod(patch)
                continue
            stored = next(saved)
            pad = np.array(geo[2])
            if dense is not None:
                padded = pad_as(dense, geo)
                if write:
                    stored.copy_(padded)
                dense = _apply(mod, geo, padded)
            elif math.prod(patch.shape[2:]) >= DENSE_FROM * math.prod(np.array(stored.shape[2:]) - 2 * pad):
                if write:
                    place_rows(stored, patch, starts + pad)
                    full = stored
                else:
                    full = _dense(stored, patch, starts + pad)
                dense = _apply(mod, geo, full)
            else:
                n_out = (np.array(stored.shape[2:]) - np.array(geo[0])) // np.array(geo[1]) + 1
                out_starts, ctx_starts, ctx_size = window_math(geo, patch.shape[2:], starts, n_out)
                ctx = gather_rows(stored, ctx_starts, ctx_size)
                place_rows(ctx, patch, starts + pad - ctx_starts)
                if write:
                    place_rows(stored, patch, starts + pad)
                patch, starts = _apply(mod, geo, ctx), out_starts
        if dense is None:
            if write:
                place_rows(state.out, patch, starts)
                dense = state.out.clone()  # the head may work in place (a ReLU first): never on the state
            else:
                dense = _dense(state.out, patch, starts)
        elif write:
            state.out.copy_(dense)
        return self.head(dense)

    def reference(self, state: ChainState) -> torch.Tensor:
        """The head's output for the state's own input (a copy of the chain's output: the head may work in place)."""
        with torch.inference_mode():
            return self.head(state.out.clone())

    def relative_cost(self, shape, size) -> float:
        """Multiply-adds of the chain's convolutions on one box of `size` (per spatial axis) in an input of `shape`
        (C x spatial), as `logits` computes them, over those of a whole pass: below 1 the boxes pay."""
        d = len(shape) - 1
        spatial, size = np.array(shape[1:]), np.minimum(np.array(size), np.array(shape[1:]))
        full = part = 0.0
        dense = False
        for mod, geo in zip(self.chain, self._geometry(d)):
            if geo is None:
                continue
            k, st, p = (np.array(v) for v in geo)
            n_out = (spatial + 2 * p - k) // st + 1
            per_out = mod.in_channels * mod.out_channels * math.prod(k) if isinstance(mod, nn.modules.conv._ConvNd) \
                else 0
            full += per_out * math.prod(n_out)
            dense = dense or math.prod(size) >= DENSE_FROM * math.prod(spatial)
            if dense:
                part += per_out * math.prod(n_out)
            else:
                _, _, ctx_size = window_math(geo, size, ((spatial - size) // 2)[None], n_out)
                size = (ctx_size - k) // st + 1  # the outputs a centred box changes
                part += per_out * math.prod(size)
            spatial = n_out
        return part / full if full else 1.0


def feature_boxes(mask: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per feature id 0..n-1 of `mask` (1 x C x spatial, ids), the bounding box of its voxels over the spatial axes
    (any channel): starts and ends (n x dims); a feature without voxels gets an empty box (start = end = 0)."""
    ids = mask.reshape(mask.shape[1], -1).long().cpu()  # boxes are small bookkeeping: on the CPU, for numpy
    spatial = mask.shape[2:]
    starts, ends = np.zeros((n, len(spatial)), np.int64), np.zeros((n, len(spatial)), np.int64)
    present = torch.bincount(ids.reshape(-1), minlength=n)[:n] > 0
    for axis, size in enumerate(spatial):
        shape = [1] * len(spatial)
        shape[axis] = size
        coord = torch.arange(size).view(shape).expand(spatial).reshape(1, -1).expand_as(ids)
        lo = torch.full((n,), size, dtype=torch.long).scatter_reduce(0, ids.reshape(-1), coord.reshape(-1), "amin")
        hi = torch.full((n,), -1, dtype=torch.long).scatter_reduce(0, ids.reshape(-1), coord.reshape(-1), "amax")
        starts[:, axis] = torch.where(present, lo[:n], 0).numpy()
        ends[:, axis] = torch.where(present, hi[:n] + 1, 0).numpy()
    return starts, ends


def batch_box(starts: np.ndarray, ends: np.ndarray, spatial) -> tuple[np.ndarray, np.ndarray]:
    """One box size for a batch of boxes (the largest extent per axis) and each box's start, moved inside."""
    spatial = np.array(spatial)
    size = np.minimum(np.maximum((ends - starts).max(axis=0), 1), spatial)
    return np.minimum(starts, spatial - size), size
