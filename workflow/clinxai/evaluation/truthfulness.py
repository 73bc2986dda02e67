"""The G3 truthfulness stage: feature-removal curves per method and model, modality Shapley values per model (their
summaries are torch-free, in clinxai.analysis.summaries)."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from .. import ClinxaiError
from ..attribution.maps import load_maps
from ..attribution.postprocess import STATUS_NONFINITE, is_layer_map, postprocess
from ..data.cases import load_inputs, modality_shapes
from ..inference import FlatLayout, Predictor, as_tensors, resolve_device
from ..io import save_csv
from ..metrics.modality import (identical_across_modalities, modality_sums, ordering_subsets, orderings,
                                sampled_shapley_values, shapley_values)
from ..metrics.removal import delta_aupc
from ..models import load_checkpoint
from ..runtime import use_threads
from ..tasks import TaskKind
from .perturbation import removal_curves, subset_performance

log = logging.getLogger("clinxai.truthfulness")


def test_set(kind: TaskKind, data_dir, predictions):
    pred = pd.read_csv(predictions, dtype={"case": str})
    if pred.empty:
        raise ClinxaiError(f"{predictions} lists no test cases: the split has an empty test set.")
    cases = list(pred["case"])
    return cases, pred["label"].to_numpy(int), [as_tensors(x) for x in load_inputs(kind, data_dir, cases)]


def check_maps(maps: dict, cases: list[str], path) -> None:
    missing = [c for c in cases if c not in maps]
    if missing:
        raise ClinxaiError(f"{path} has no map for test cases {missing[:5]}: rerun its heatmaps job "
                           "(delete the file) so maps and predictions agree.")


def case_subset(cases: list[str], labels: np.ndarray, inputs: list, n: int | None):
    """Up to `n` test cases taken from each true class in turn (round robin, each class in test-set order), so that
    a subset holds both classes whenever the test set does -- ΔAUPC by ROC AUC and DS_c need them; in test-set order.
    n None or 0: every case."""
    if not n or n >= len(cases):
        return cases, labels, inputs
    queues = {}
    for i, y in enumerate(labels):
        queues.setdefault(int(y), []).append(i)
    queues, picked = list(queues.values()), []
    while len(picked) < n:
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0))
    picked.sort()
    return [cases[i] for i in picked], labels[picked], [inputs[i] for i in picked]


def processed_map(parts, x: tuple, method: str, post_cfg: dict):
    """(post-processed parts on the input's grid, status) of one map of case inputs `x`; a failed (non-finite) map
    becomes zeros: nothing is removed for it, and its status flags it."""
    parts, status = postprocess(parts, modality_shapes(x), post_cfg, gradcam=is_layer_map(method))
    return ([np.zeros_like(p) for p in parts] if status == STATUS_NONFINITE else parts), status


def processed_inputs_maps(maps_path, method: str, cases: list[str], inputs: list, post_cfg: dict):
    """(case, post-processed map parts, status) of one method's stored maps of the test cases (processed_map)."""
    raw = load_maps(maps_path)
    check_maps(raw, cases, maps_path)
    for case, x in zip(cases, inputs):
        yield case, *processed_map(raw[case], x, method, post_cfg)


def run_feature_removal(task: str, kind: TaskKind, seed: int, methods: list[str], checkpoint, predictions, maps: list,
                        data_dir, cfg: dict, post_cfg: dict, names: list[str], outputs: list[tuple], threads: int = 1,
                        device: str = "auto") -> dict[str, pd.DataFrame]:
    """Feature-removal curves of one model for each method, and the modality sums of its processed maps.

    `maps`: a heatmaps .npz per method; `outputs`: (curves path, sums path) per method. The test set and the model are
    loaded once; each method's files are written as soon as it is done.
    """
    use_threads(threads)
    dev = resolve_device(device)
    cases, labels, inputs = test_set(kind, data_dir, predictions)
    layout = FlatLayout(inputs[0])
    flat_inputs = [layout.flatten(x).numpy() for x in inputs]
    predict = Predictor(load_checkpoint(checkpoint, task=task, family=kind.model), layout, dev, fast=cfg["fast"],
                        compile=cfg.get("compile", False))
    # the predictions of inputs no map changes (unchanged, every voxel replaced): once per case, not per method
    tables, shared = {}, {}
    for method, maps_path, (out_curves, out_sums) in zip(methods, maps, outputs):
        t0 = time.perf_counter()
        flat_maps, sums = [], []
        for case, parts, status in processed_inputs_maps(maps_path, method, cases, inputs, post_cfg):
            flat_maps.append(layout.flatten_map(parts))
            sums.append({"seed": seed, "case": case, "method": method, "status": status,
                         "identical": identical_across_modalities(parts),
                         **{f"mi_{n}": v for n, v in zip(names, modality_sums(parts))}})
        c, _ = removal_curves(predict, layout, cases, flat_inputs, flat_maps, labels, cfg, seed, shared,
                              f"{task} seed {seed} {method} feature removal")
        s = delta_aupc(c)
        log.info("%s %s seed %d: AUPC(H) %.3f AUPC(Hb) %.3f ΔAUPC %.3f (%d cases, %.1f s)", task, method, seed,
                 s["aupc_map"], s["aupc_baseline"], s["delta_aupc"], len(cases), time.perf_counter() - t0)
        table = c.assign(task=task, seed=seed, method=method, metric=cfg["metric"], replacement=cfg["replacement"])
        lead = ["task", "seed", "method", "metric", "replacement"]
        tables[method] = table[lead + [col for col in table.columns if col not in lead]]
        save_csv(out_curves, tables[method])
        save_csv(out_sums, pd.DataFrame(sums))
    return tables


def run_modality_shapley(task: str, kind: TaskKind, seeds: list[int], checkpoints: list, predictions: list, data_dir,
                         cfg: dict, names: list[str], out_subsets, out_phi, threads: int = 1, device: str = "auto"):
    """v(c) on every modality subset and the exact Shapley value of each modality, per model; beyond
    `cfg["max_exact"]` modalities v(c) on the subsets of `cfg["permutations"]` seeded orderings and the sampled
    estimate with its standard error (clinxai.metrics.modality)."""
    use_threads(threads)
    dev = resolve_device(device)
    subsets, phis = [], []
    for seed, ckpt, pred_path in zip(seeds, checkpoints, predictions):
        cases, labels, inputs = test_set(kind, data_dir, pred_path)
        layout = FlatLayout(inputs[0])
        if len(layout.modality_sizes) != len(names):
            raise ClinxaiError(f"{task}: the inputs have {len(layout.modality_sizes)} modalities, expected "
                               f"{len(names)} ({', '.join(names)})")
        predict = Predictor(load_checkpoint(ckpt, task=task, family=kind.model), layout, dev, fast=cfg["fast"],
                        compile=cfg.get("compile", False))
        exact = len(names) <= cfg.get("max_exact", 6)
        perms = None if exact else orderings(len(names), cfg.get("permutations", 200), seed)
        v = subset_performance(predict, layout, [layout.flatten(x).numpy() for x in inputs], labels, cfg["metric"],
                               cfg["batch_size"], None if exact else ordering_subsets(perms))
        game = {tuple(c): p for c, p in zip(v["subset"], v["performance"])}
        phi, se = (shapley_values(game, len(names)), np.zeros(len(names))) if exact else \
            sampled_shapley_values(game, perms)
        v["modalities"] = ["+".join(names[i] for i in c) or "(none)" for c in v["subset"]]
        subsets.append(v.drop(columns="subset").assign(task=task, seed=seed, metric=cfg["metric"]))
        phis += [{"task": task, "seed": seed, "modality": n, "phi": float(p), "metric": cfg["metric"],
                  "estimate": "exact" if exact else f"{len(perms)} orderings", "phi_se": float(e)}
                 for n, p, e in zip(names, phi, se)]
        log.info("%s seed %d: v(all) %.3f, v(none) %.3f, φ = %s", task, seed, v["performance"].iloc[-1],
                 v["performance"].iloc[0], dict(zip(names, np.round(phi, 3))))
    subsets = pd.concat(subsets, ignore_index=True)
    save_csv(out_subsets, subsets[["task", "seed", "modalities", "size", "performance", "metric"]])
    phi = pd.DataFrame(phis)
    save_csv(out_phi, phi)
    return phi


def run_road_removal(task: str, kind: TaskKind, seed: int, methods: list[str], checkpoint, predictions, maps: list,
                     data_dir, cfg: dict, post_cfg: dict, out_path, threads: int = 1,
                     device: str = "auto") -> pd.DataFrame:
    """Feature-removal curves of every method on one model with each of `cfg["replacements"]` (ROAD, and the task's
    replacement unless feature removal's own curves serve), on the same cases (`cfg["max_cases"]` of them, both classes:
    case_subset) and
    baselines: the input of the ranking comparison."""
    use_threads(threads)
    cases, labels, inputs = case_subset(*test_set(kind, data_dir, predictions), cfg.get("max_cases"))
    layout = FlatLayout(inputs[0])
    flat_inputs = [layout.flatten(x).numpy() for x in inputs]
    predict = Predictor(load_checkpoint(checkpoint, task=task, family=kind.model), layout, resolve_device(device),
                        fast=cfg["fast"],
                        compile=cfg.get("compile", False))
    tables, shared = [], {}
    for method, maps_path in zip(methods, maps):
        flat_maps = [layout.flatten_map(parts) for _, parts, _ in
                     processed_inputs_maps(maps_path, method, cases, inputs, post_cfg)]
        for replacement in cfg["replacements"]:
            t0 = time.perf_counter()
            c, _ = removal_curves(predict, layout, cases, flat_inputs, flat_maps, labels,
                                  {**cfg, "replacement": replacement}, seed, shared,
                                  f"{task} seed {seed} {method} removal ({replacement})")
            log.info("%s %s seed %d, %s: ΔAUPC %.3f (%d cases, %.1f s)", task, method, seed, replacement,
                     delta_aupc(c)["delta_aupc"], len(cases), time.perf_counter() - t0)
            tables.append(c.assign(task=task, seed=seed, method=method, metric=cfg["metric"],
                                   replacement=replacement, n_cases=len(cases)))
    table = pd.concat(tables, ignore_index=True)
    lead = ["task", "seed", "method", "metric", "replacement", "n_cases"]
    table = table[lead + [c for c in table.columns if c not in lead]]
    save_csv(out_path, table)
    return table
