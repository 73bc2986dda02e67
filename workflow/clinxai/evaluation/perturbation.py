"""Running a model on perturbed copies of its inputs (torch): the feature-removal curves of a map and its random
baselines (SPEC §4, formulas in clinxai.metrics.removal) and the test-set performance on every modality subset
(the game behind the modality Shapley values, clinxai.metrics.modality)."""

from __future__ import annotations

import logging
import zlib

import numpy as np
import pandas as pd
import torch

from ..inference import Batcher, FlatLayout
from ..metrics import road
from ..metrics.modality import all_subsets
from ..metrics.removal import (DYNAMIC, baseline_steps, performance, removal_fractions, removal_steps,
                               replacement_values)
from ..progress import Progress

log = logging.getLogger("clinxai.truthfulness")


class Perturber:
    """One case's input with removed voxels replaced, for batches of (curve, step) items whose removed voxels are
    those with `steps[curve] <= step`. Fixed replacements (zero, mean, sampled, neighbourhood, blur) are one array
    per case and a batch is one torch.lerp with 0/1 weights (a torch.where where the value minus the input is not
    finite, or the input not float); ROAD imputes every item on its own (seeded per case, curve and step).
    `cfg`: replacement (or `how`), neighbourhood_size, low_quantile, blur_sigma, road_noise."""

    def __init__(self, x: np.ndarray, flat_map: np.ndarray, layout: FlatLayout, how: str, cfg: dict, seed: int,
                 case: str):
        self.x, self.layout, self.how, self.cfg = x, layout, how, cfg
        self.key = (int(seed), zlib.crc32(str(case).encode()))
        self.xt = torch.from_numpy(x)
        self.values = None if how in DYNAMIC else torch.from_numpy(replacement_values(
            x, flat_map, layout, how, seed, case, cfg.get("neighbourhood_size", 5), cfg.get("low_quantile", 0.5),
            cfg.get("blur_sigma", 2.0)))
        # lerp with a 0/1 weight returns x or the value itself when their difference is finite (else 0 * inf = NaN)
        self.lerp = (self.values is not None and self.xt.is_floating_point()
                     and bool(torch.isfinite(self.values - self.xt).all()))

    def batch(self, steps: torch.Tensor, curves: list[int], at: list[int]) -> torch.Tensor:
        """The perturbed inputs of items (curves[i], at[i]): a B x N tensor."""
        r = torch.tensor(curves)
        j = torch.tensor(at, dtype=torch.int16)
        if self.lerp:
            # `le` written straight into a float weight and lerp over it in place: the same tensor as torch.where
            # over a boolean mask, 5-7x faster at the demo sizes on CPU (a bool-to-float copy and where's broadcast cost)
            n = len(at)
            w = torch.empty((n, self.xt.numel()), dtype=self.xt.dtype)
            torch.le(steps.index_select(0, r), j[:, None], out=w)
            return torch.lerp(self.xt.expand(n, -1), self.values.expand(n, -1), w, out=w)
        removed = steps.index_select(0, r) <= j[:, None]
        if self.values is not None:
            return torch.where(removed, self.values, self.xt)
        shapes, slices = self.layout.modality_shapes(), self.layout.modality_slices()
        return torch.from_numpy(np.stack([
            road.fill(self.x, rm.numpy(), shapes, slices, self.cfg.get("road_noise", 0.01), (*self.key, ci, ji))
            for rm, ci, ji in zip(removed, curves, at)]))


class ClassProbabilities:
    """An array of class-probability vectors of shape `shape` x classes, allocated at the first assignment (the
    number of classes is the model's)."""

    def __init__(self, shape):
        self.shape, self.array = tuple(shape), None

    def __setitem__(self, index, value):
        value = np.asarray(value, np.float32)
        if self.array is None:
            self.array = np.zeros((*self.shape, value.shape[-1]), np.float32)
        self.array[index] = value


def removal_curves(predict, layout: FlatLayout, cases: list[str], inputs: list[np.ndarray], maps: list[np.ndarray],
                   labels: np.ndarray, cfg: dict, seed: int, unperturbed: dict | None = None,
                   label: str = "feature removal") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Perturbation curves of one map per case and of its random baselines, over the whole test set.

    `predict(flat B x N tensor) -> (prob B x classes, pred)`; `inputs` and `maps` are flat per case. `cfg`: n_steps,
    baselines, replacement, metric, batch_size, neighbourhood_size, low_quantile. `unperturbed`: {case: (prob, pred)} of the
    unchanged inputs, shared by the calls for several methods on one model (filled here when a case is missing).
    Returns (curves: one row per curve and step; removed: voxels removed per case, curve and step).
    """

    qs = removal_fractions(cfg["n_steps"])
    n_curves, n_steps = 1 + cfg["baselines"], len(qs)
    prob = ClassProbabilities((n_curves, n_steps, len(cases)))
    pred = np.zeros((n_curves, n_steps, len(cases)), np.int64)
    removed = np.zeros((n_curves, n_steps, len(cases)), np.int64)
    unperturbed = {} if unperturbed is None else unperturbed
    # (curve, step) items of a case; (0, 0) is the unperturbed input (no voxel has step <= 0), shared by all curves
    perturbed = [(r, j) for r in range(n_curves) for j in range(1, n_steps)]
    bs = cfg["batch_size"]
    progress = Progress(len(cases), label, log)
    for c, (case, x, flat_map) in enumerate(zip(cases, inputs, maps)):
        items = perturbed if case in unperturbed else [(0, 0)] + perturbed
        if case in unperturbed:
            prob[:, 0, c], pred[:, 0, c] = unperturbed[case]
        step = removal_steps(flat_map, qs)
        steps = np.concatenate([step[None], baseline_steps(step, cfg["baselines"], seed, case)])
        # voxels removed by step j per curve: counts of each step value, accumulated (one pass per curve)
        removed[:, :, c] = np.stack([np.bincount(np.minimum(s, n_steps), minlength=n_steps + 1)[:n_steps]
                                     for s in steps]).cumsum(axis=1)
        perturber = Perturber(x, flat_map, layout, cfg["replacement"], cfg, seed, case)
        st = torch.from_numpy(steps)
        # Batches go straight to the model (no concatenation); batches of 16-32 are faster per input than 64 on CPU
        # (activations stay in cache).
        for start in range(0, len(items), bs):
            chunk = items[start:start + bs]
            pb, pr = predict(perturber.batch(st, [i[0] for i in chunk], [i[1] for i in chunk]))
            for (ri, ji), a, b in zip(chunk, pb, pr):
                if ji == 0:
                    prob[:, 0, c], pred[:, 0, c] = a, b
                    unperturbed[case] = (a, b)
                else:
                    prob[ri, ji, c], pred[ri, ji, c] = a, b
        progress.update()
    if not (removed == removed[:1]).all():  # by construction; a failure here is a bug, not bad input
        raise RuntimeError("baselines removed a different number of voxels than the map")
    perf = performance(cfg["metric"], labels, prob.array, pred)
    n_total = layout.n
    curves = pd.DataFrame([
        {"curve": "map" if r == 0 else "baseline", "draw": r, "step": j, "q": float(qs[j]),
         "performance": float(perf[r, j]), "removed_fraction": float(removed[r, j].mean() / n_total)}
        for r in range(n_curves) for j in range(n_steps)])
    removed_df = pd.DataFrame([
        {"case": case, "draw": r, "step": j, "removed": int(removed[r, j, c])}
        for c, case in enumerate(cases) for r in range(n_curves) for j in range(n_steps)])
    return curves, removed_df


def subset_performance(predict, layout: FlatLayout, inputs: list[np.ndarray], labels: np.ndarray, metric: str,
                       batch_size: int, subsets=None) -> pd.DataFrame:
    """v(c) for every modality subset c (or the `subsets` given): one row per subset (modalities kept, performance)."""

    subsets = all_subsets(len(layout.modality_sizes)) if subsets is None else list(subsets)
    keep = np.zeros((len(subsets), layout.n), dtype=bool)
    slices = layout.modality_slices()
    for s, c in enumerate(subsets):
        for m in c:
            keep[s, slices[m]] = True
    keep_t = torch.from_numpy(keep)
    batcher = Batcher(predict, batch_size)
    for i, x in enumerate(inputs):
        xt = torch.from_numpy(x)
        for start in range(0, len(subsets), batch_size):
            idx = list(range(start, min(start + batch_size, len(subsets))))
            batcher.add(torch.where(keep_t[idx], xt, torch.zeros(())), [(s, i) for s in idx])
    batcher.flush()
    prob = ClassProbabilities((len(subsets), len(inputs)))
    pred = np.zeros((len(subsets), len(inputs)), np.int64)
    for (s, i), pb, pr in batcher.results:
        prob[s, i], pred[s, i] = pb, pr
    perf = performance(metric, labels, prob.array, pred)
    return pd.DataFrame({"subset": [list(c) for c in subsets], "size": [len(c) for c in subsets], "performance": perf})
