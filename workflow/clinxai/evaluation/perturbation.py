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
from ..metrics.removal import (DYNAMIC, MAP_DEPENDENT, baseline_steps, performance, removal_fractions,
                               removal_steps, replacement_values)
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
                   labels: np.ndarray, cfg: dict, seed: int, shared: dict | None = None,
                   label: str = "feature removal") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Perturbation curves of one map per case and of its random baselines, over the whole test set.

    `predict(flat B x N tensor) -> (prob B x classes, pred)`; `inputs` and `maps` are flat per case. `cfg`: n_steps,
    baselines, replacement, metric, batch_size, neighbourhood_size, low_quantile, blur_sigma. `shared`: predictions of
    inputs that do not depend on the map, filled here and reused by the calls for several methods (or replacements)
    on one model: {case: (prob, pred)} of the unchanged input, {(case, replacement, parameters): (prob, pred)} of the
    input with every voxel replaced.
    Returns (curves: one row per curve and step; removed: voxels removed per case, curve and step).
    """

    qs = removal_fractions(cfg["n_steps"])
    n_curves, n_steps, how = 1 + cfg["baselines"], len(qs), cfg["replacement"]
    prob = ClassProbabilities((n_curves, n_steps, len(cases)))
    pred = np.zeros((n_curves, n_steps, len(cases)), np.int64)
    removed = np.zeros((n_steps, len(cases)), np.int64)
    shared, local = ({} if shared is None else shared), {}
    bs = cfg["batch_size"]
    progress = Progress(len(cases), label, log)
    for c, (case, x, flat_map) in enumerate(zip(cases, inputs, maps)):
        step = removal_steps(flat_map, qs)
        # voxels removed by step j: one count for every curve (a baseline permutes the map's steps)
        removed[:, c] = np.bincount(np.minimum(step, n_steps), minlength=n_steps + 1)[:n_steps].cumsum()
        keys, scope = _shared_inputs(case, removed[:, c], layout.n, how, cfg)
        store = {k: local if where == "map" else shared for k, where in scope.items()}
        # each shared input not yet evaluated once (as curve 0 at its first step), then every other (curve, step)
        todo = {}
        for j, k in enumerate(keys):
            if k is not None and k not in store[k] and k not in todo:
                todo[k] = (0, j)
        items = list(todo.values()) + [(r, j) for r in range(n_curves) for j in range(1, n_steps) if keys[j] is None]
        if items:
            steps = step[None] if all(r == 0 for r, _ in items) else \
                np.concatenate([step[None], baseline_steps(step, cfg["baselines"], seed, case)])
            perturber = Perturber(x, flat_map, layout, how, cfg, seed, case)
            st = torch.from_numpy(steps)
        got = {}
        # Batches go straight to the model (no concatenation); batches of 16-32 are faster per input than 64 on CPU
        # (activations stay in cache).
        for start in range(0, len(items), bs):
            chunk = items[start:start + bs]
            pb, pr = predict(perturber.batch(st, [i[0] for i in chunk], [i[1] for i in chunk]))
            got.update(zip(chunk, zip(pb, pr)))
        for k, item in todo.items():
            store[k][k] = got[item]
        for j, k in enumerate(keys):
            for r in range(n_curves):
                prob[r, j, c], pred[r, j, c] = got[(r, j)] if k is None else store[k][k]
        progress.update()
    perf = performance(cfg["metric"], labels, prob.array, pred)
    n_total = layout.n
    curves = pd.DataFrame([
        {"curve": "map" if r == 0 else "baseline", "draw": r, "step": j, "q": float(qs[j]),
         "performance": float(perf[r, j]), "removed_fraction": float(removed[j].mean() / n_total)}
        for r in range(n_curves) for j in range(n_steps)])
    removed_df = pd.DataFrame([
        {"case": case, "draw": r, "step": j, "removed": int(removed[j, c])}
        for c, case in enumerate(cases) for r in range(n_curves) for j in range(n_steps)])
    return curves, removed_df


def _shared_inputs(case: str, count: np.ndarray, n: int, how: str, cfg: dict) -> tuple[list, dict]:
    """Per step, the key of an input that is the same for every curve (None where the curves differ), and per key
    where it is shared ("model": by every map of the model, "map": by this map's curves only).

    A step that removes nothing is the unchanged input (maps without a positive voxel); one that removes every voxel
    is the replacement array itself (maps positive everywhere), unless the replacement is imputed per removed set.
    """
    full = (case, how, *(cfg.get(p) for p in ("neighbourhood_size", "low_quantile", "blur_sigma")))
    keys = [case if k == 0 else full if k == n and how not in DYNAMIC else None for k in count]
    return keys, {case: "model", full: "map" if how in MAP_DEPENDENT else "model"}


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
    # a subset that keeps no voxel is the zero input, the same for every case: evaluated once (key case None)
    empty = [s for s in range(len(subsets)) if not keep[s].any()]
    rest = [s for s in range(len(subsets)) if keep[s].any()]
    if empty:
        batcher.add(torch.where(keep_t[empty[:1]], torch.from_numpy(inputs[0]), torch.zeros(())), [(empty[0], None)])
    for i, x in enumerate(inputs):
        xt = torch.from_numpy(x)
        for start in range(0, len(rest), batch_size):
            idx = rest[start:start + batch_size]
            batcher.add(torch.where(keep_t[idx], xt, torch.zeros(())), [(s, i) for s in idx])
    batcher.flush()
    prob = ClassProbabilities((len(subsets), len(inputs)))
    pred = np.zeros((len(subsets), len(inputs)), np.int64)
    for (s, i), pb, pr in batcher.results:
        if i is None:
            prob[empty, :], pred[empty, :] = pb, pr
        else:
            prob[s, i], pred[s, i] = pb, pr
    perf = performance(metric, labels, prob.array, pred)
    return pd.DataFrame({"subset": [list(c) for c in subsets], "size": [len(c) for c in subsets], "performance": perf})
