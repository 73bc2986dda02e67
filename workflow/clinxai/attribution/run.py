"""One heatmaps job: a method on (a shard of) one model's test cases; writes raw maps and a per-case table."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import ClinxaiError
from ..inference import resolve_device
from ..config import task_postprocess_cfg
from ..io import save_csv
from ..models import load_checkpoint
from .explain import explain
from .maps import KNEE_VIEWS, load_maps, save_maps  # noqa: F401 - load_maps re-exported
from .postprocess import STATUS_OK, is_layer_map, map_status, postprocess
from .registry import METHODS
from .supervoxels import load_masks

log = logging.getLogger("clinxai.heatmaps")


def load_inputs(task: str, data_dir, cases) -> list[tuple[torch.Tensor, ...]]:
    """Model inputs per case, each a tuple of 1 x ... tensors."""
    out = []
    for case in cases:
        with np.load(Path(data_dir) / "arrays" / f"{case}.npz") as z:
            keys = KNEE_VIEWS if task == "knee" else ("image",)
            out.append(tuple(torch.from_numpy(z[k].astype(np.float32))[None] for k in keys))
    return out


def modality_shapes(x: tuple[torch.Tensor, ...]) -> list[tuple[int, ...]]:
    """Spatial shape of each modality of one case's inputs: channels of one tensor, or one per knee view."""
    if len(x) > 1:
        return [tuple(t.shape[1:]) for t in x]
    return [tuple(x[0].shape[2:])] * x[0].shape[1]


def shard_cases(cases: list[str], shard: int, n_shards: int) -> list[str]:
    """Contiguous, near-equal shards (contiguous keeps FeaturePermutation's case batches together)."""
    return [str(c) for c in np.array_split(np.asarray(cases, dtype=object), n_shards)[shard]]


def run_heatmaps(task: str, seed: int, method: str, checkpoint, predictions, data_dir, masks_path, cfg: dict,
                 out_maps, out_table, shard: int = 0, n_shards: int = 1, threads: int = 1,
                 device: str = "auto") -> pd.DataFrame:
    """Explain the predicted class of every test case in the shard with one method."""
    return run_heatmaps_model(task, seed, [method], checkpoint, predictions, data_dir, masks_path, cfg,
                              [(out_maps, out_table)], shard, n_shards, threads, device)[method]


def run_heatmaps_model(task: str, seed: int, methods: list[str], checkpoint, predictions, data_dir, masks_path,
                       cfg: dict, outputs: list[tuple], shard: int = 0, n_shards: int = 1, threads: int = 1,
                       device: str = "auto") -> dict[str, pd.DataFrame]:
    """Several methods on (a shard of) one model's test cases: the imports, model and inputs are loaded once.

    `outputs`: (maps path, table path) per method. Each method's files are written as soon as it is done.
    """
    torch.set_num_threads(max(1, threads))
    dev = resolve_device(device)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ClinxaiError(f"unknown heatmap method(s) {', '.join(map(repr, unknown))}; known: {', '.join(METHODS)}")
    pred = pd.read_csv(predictions, dtype={"case": str})
    cases = shard_cases(list(pred["case"]), shard, n_shards)
    pred = pred.set_index("case").loc[cases]
    model = load_checkpoint(checkpoint, task=task)
    inputs = load_inputs(task, data_dir, cases)
    masks: dict[str, list] = {}  # per supervoxel kind, loaded on first use
    tables = {}
    for method, (out_maps, out_table) in zip(methods, outputs):
        kind = METHODS[method].feature_mask
        if kind and kind not in masks:
            masks[kind] = [load_masks(masks_path, c, kind, task) for c in cases]
        log.info("%s seed %d %s: %d cases (shard %d/%d) on %s, %d threads", task, seed, method, len(cases),
                 shard + 1, n_shards, dev, torch.get_num_threads())
        # a fresh copy per method: no hook or in-place setting of one method can reach the next
        tables[method] = _explain_and_save(task, seed, method, copy.deepcopy(model), pred, cases, inputs,
                                           masks.get(kind), cfg, dev, out_maps, out_table)
    return tables


def _explain_and_save(task, seed, method, model, pred, cases, inputs, masks, cfg, dev, out_maps, out_table):
    m = METHODS[method]
    overrides = (cfg.get("params") or {}).get(task, {}).get(method)
    batching = cfg["batching"]
    maps, seconds = explain(model, task, method, cases, inputs, [int(p) for p in pred["pred"]], masks, seed,
                            overrides, batching, dev)
    post_cfg = task_postprocess_cfg(cfg["postprocess"], task)
    import captum

    rows = []
    for case, parts, sec, x in zip(cases, maps, seconds, inputs):
        raw = map_status(parts)
        status = raw if raw != STATUS_OK else postprocess(parts, modality_shapes(x), post_cfg,
                                                          gradcam=is_layer_map(method))[1]
        if status != STATUS_OK:
            log.warning("%s %s: map is %s (kept and flagged)", case, method, status)
        rows.append({"case": case, "label": int(pred.loc[case, "label"]), "pred": int(pred.loc[case, "pred"]),
                     "method": method, "seed": seed, "status": status, "raw_status": raw, "seconds": sec,
                     "device": dev, "threads": torch.get_num_threads(),
                     "batch_size": batching.get("batch_size") if m.batch_of_cases and not m.sampled else 1,
                     "perturbations_per_eval": batching.get("perturbations_per_eval") if m.family == "perturbation" else "",
                     "captum": captum.__version__, "torch": torch.__version__})
    save_maps(out_maps, dict(zip(cases, maps)))
    table = pd.DataFrame(rows)
    save_csv(out_table, table)
    log.info("%s done: %.3f s per case on average; map status counts %s", method, table["seconds"].mean(),
             table["status"].value_counts().to_dict())
    return table


def merge_shards(map_paths, table_paths, out_maps, out_table) -> pd.DataFrame:
    maps: dict = {}
    for p in map_paths:
        maps.update(load_maps(p))
    table = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in table_paths], ignore_index=True)
    save_maps(out_maps, maps)
    save_csv(out_table, table)
    return table
