"""Occlusion of a slice-encoded multi-view model by incremental inference (issue 22): the knee network.

Each view (1 x S x H x W) is encoded slice by slice: a 2-D chain per slice, the spatial mean of its output, the
maximum over slices; the views' features are then fused into the logits (clinxai.models.KneeNet). A window of a
view (slices s0..s1, a box in-plane) therefore changes only its own slices' features, and inside each of them only the
box's receptive field: per window, each of its slices runs the 2-D chain incrementally from the stored activations
(clinxai.attribution.occlusion), the view's maximum is taken over the new features and the unchanged slices' (kept as
prefix and suffix maxima), and the fusion runs on the result. Where a window covers a large part of a slice
(the demo's), the receptive fields soon cover the whole plane: its slices run through the chain in full instead,
the windows' slices batched together. Same windows, baselines and formula as captum's Occlusion of several inputs
(each view occluded on its own, a voxel's attribution the mean drop of the windows covering it); equal to captum's
maps within float tolerance (tests/test_incremental_occlusion.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .occlusion import IncrementalOcclusion, supported, window_grid


PLANE_INCREMENTAL_BELOW = 0.05  # in-plane windows over this share of a slice's area run their slices in full


def _spatial_mean(t: torch.Tensor) -> torch.Tensor:
    return t.mean(dim=tuple(range(2, t.dim())))


class SliceOcclusion:
    """captum's Occlusion for a model given as one 2-D `chains[v]` per view (run on each slice, spatial mean, maximum
    over slices) and `fuse(list of B x C view features) -> logits`; `windows_per_batch` windows share a pass."""

    implementation = "clinxai incremental (slices)"
    accumulate = staticmethod(IncrementalOcclusion.accumulate)

    def __init__(self, chains: list[list[nn.Module]], fuse, windows_per_batch: int = 128):
        self.encoders = [IncrementalOcclusion(chain, _spatial_mean, windows_per_batch) for chain in chains]
        self.fuse, self.batch = fuse, max(1, int(windows_per_batch))

    @staticmethod
    def applies(chains) -> bool:
        return all(supported(chain) for chain in chains)

    @torch.inference_mode()
    def attribute(self, inputs, target, sliding_window_shapes, strides=None, baselines=0.0, perturbations_per_eval=None):
        """As captum.attr.Occlusion(model).attribute for a tuple of views with one window shape (and stride) per
        view; `perturbations_per_eval` is accepted and ignored (`windows_per_batch` batches)."""
        views = tuple(inputs)
        windows = [tuple(w) for w in sliding_window_shapes]
        strides = [tuple(s) for s in strides] if strides is not None else [(1,) * len(w) for w in windows]
        baselines = baselines if isinstance(baselines, tuple) else (baselines,) * len(views)
        targets = torch.as_tensor(target).reshape(-1).tolist()
        out = tuple(torch.zeros_like(v) for v in views)
        for i in range(len(views[0])):
            case = [v[i:i + 1] for v in views]
            base = [b[i if len(b) > 1 else 0][None].expand_as(c) if torch.is_tensor(b) else
                    torch.full_like(c, float(b)) for b, c in zip(baselines, case)]
            maps = self._one(case, base, int(targets[i if len(targets) > 1 else 0]), windows, strides)
            for o, m in zip(out, maps):
                o[i] = m
        return out

    def prepare(self, case: list[torch.Tensor]) -> tuple[list, list, list]:
        """Every slice of each view as a batch of one-channel images: stored activations, per-slice features (S x C)
        and the view features (1 x C)."""
        acts = [enc.prepare(v[0][:, None], 0.0)[0] for enc, v in zip(self.encoders, case)]
        feats = [_spatial_mean(a[-1]) for a in acts]
        return acts, feats, [f.amax(dim=0, keepdim=True) for f in feats]

    def occluded_logits(self, v: int, x, baseline, state, starts: np.ndarray, ends: np.ndarray) -> torch.Tensor:
        """The logits with each window (starts, ends: windows x 3) of view v set to the baseline."""
        acts, feats, pooled = state
        view = self._occluded_features(self.encoders[v], x, baseline, acts[v], feats[v], starts, ends)
        return self.fuse([view if u == v else p.expand(len(starts), -1) for u, p in enumerate(pooled)])

    def _one(self, case, base, target: int, windows, strides) -> list[torch.Tensor]:
        state = self.prepare(case)
        reference = self.fuse(state[2])[0, target]
        maps = []
        for v, (x, b) in enumerate(zip(case, base)):
            starts, ends = window_grid(x.shape[1:], windows[v], strides[v])
            total = torch.zeros_like(x[0], dtype=torch.float32)
            count = torch.zeros_like(total)
            for lo in range(0, len(starts), self.batch):
                s, e = starts[lo:lo + self.batch], ends[lo:lo + self.batch]
                drop = reference - self.occluded_logits(v, x, b, state, s, e)[:, target]
                self.accumulate(total, count, s, e, drop)
            maps.append((total / count).to(x.dtype))
        return maps

    @staticmethod
    def _occluded_features(enc: IncrementalOcclusion, x, baseline, acts, feats, starts, ends) -> torch.Tensor:
        """Each window's view feature (windows x C): the maximum over its recomputed slices and the others."""
        n_slices = feats.shape[0]
        neg = torch.full_like(feats[:1], -torch.inf)
        prefix = torch.cat([neg, feats.cummax(dim=0).values])           # prefix[s]: max over slices < s
        suffix = torch.cat([feats.flip(0).cummax(dim=0).values.flip(0), neg])  # suffix[s]: max over slices >= s
        view = torch.maximum(prefix[starts[:, 0]], suffix[ends[:, 0]])
        if np.prod(ends[:, 1:] - starts[:, 1:], axis=1).max() > PLANE_INCREMENTAL_BELOW * np.prod(x.shape[2:]):
            return torch.maximum(view, SliceOcclusion._dense_slices(enc, x, baseline, starts, ends))
        # in-plane windows of one slice: the slice axis becomes the image's single channel
        plane_starts = np.concatenate([np.zeros((len(starts), 1), np.int64), starts[:, 1:]], axis=1)
        plane_ends = np.concatenate([np.ones((len(ends), 1), np.int64), ends[:, 1:]], axis=1)
        for s in range(n_slices):
            rows = np.flatnonzero((starts[:, 0] <= s) & (s < ends[:, 0]))
            if len(rows) == 0:
                continue
            slice_acts = [a[s:s + 1] for a in acts]
            new = enc.occluded_logits(x[:, s:s + 1], baseline[:, s:s + 1], plane_starts[rows], plane_ends[rows],
                                      slice_acts)
            index = torch.from_numpy(rows).to(view.device)
            view[index] = torch.maximum(view[index], new)
        return view

    @staticmethod
    def _dense_slices(enc: IncrementalOcclusion, x, baseline, starts, ends) -> torch.Tensor:
        """Each window's maximum feature over its own slices, occluded and run through the 2-D chain in full (the
        windows' slices batched together); a window clipped at the last slice repeats its last (occluded) slice."""
        depth = int((ends[:, 0] - starts[:, 0]).max())
        pick = torch.from_numpy(np.minimum(starts[:, :1] + np.arange(depth), ends[:, :1] - 1)).to(x.device)
        images = x[0][pick]  # windows x depth x H x W (indexing copies)
        for j in range(len(starts)):
            plane = tuple(slice(int(a), int(b)) for a, b in zip(starts[j, 1:], ends[j, 1:]))
            images[(j, slice(None)) + plane] = baseline[0][(pick[j],) + plane]
        images = images.reshape(-1, 1, *x.shape[2:])
        feats = []
        for lo in range(0, len(images), enc.batch):  # at most windows_per_batch slices through the chain at once
            out = images[lo:lo + enc.batch]
            for mod in enc.chain:
                out = mod(out)
            feats.append(_spatial_mean(out))
        return torch.cat(feats).reshape(len(starts), depth, -1).amax(dim=1)
