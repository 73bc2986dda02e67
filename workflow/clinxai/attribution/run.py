"""One heatmaps job: a method on (a shard of) one model's test cases; writes raw maps and a per-case table."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import torch

from .. import ClinxaiError
from ..data.cases import load_inputs, modality_shapes
from ..inference import as_tensors, resolve_device
from ..io import save_csv
from ..models import load_checkpoint
from ..runtime import use_threads
from ..tasks import TaskKind
from .explain import explain
from .maps import load_maps, save_maps
from .postprocess import STATUS_OK, is_layer_map, map_status, postprocess
from .registry import METHODS
from .supervoxels import load_masks

log = logging.getLogger("clinxai.heatmaps")


def shard_cases(cases: list[str], shard: int, n_shards: int) -> list[str]:
    """Contiguous, near-equal shards (contiguous keeps FeaturePermutation's case batches together)."""
    return [str(c) for c in np.array_split(np.asarray(cases, dtype=object), n_shards)[shard]]


def run_heatmaps(task: str, kind: TaskKind, seed: int, methods: list[str], checkpoint, predictions, data_dir,
                 masks_path, cfg: dict, outputs: list[tuple], shard: int = 0, n_shards: int = 1, threads: int = 1,
                 device: str = "auto") -> dict[str, pd.DataFrame]:
    """One or several methods on (a shard of) one model's test cases: the imports, model and inputs are loaded once.

    `outputs`: (maps path, table path) per method. Each method's files are written as soon as it is done. `cfg`:
    params (per task and method), batching, and the task's postprocess settings (clinxai.config.task_postprocess_cfg).
    """
    use_threads(threads)
    dev = resolve_device(device)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ClinxaiError(f"unknown heatmap method(s) {', '.join(map(repr, unknown))}; known: {', '.join(METHODS)}")
    pred = pd.read_csv(predictions, dtype={"case": str})
    cases = shard_cases(list(pred["case"]), shard, n_shards)
    pred = pred.set_index("case").loc[cases]
    model = load_checkpoint(checkpoint, task=task, family=kind.model)
    inputs = [as_tensors(x) for x in load_inputs(kind, data_dir, cases)]
    masks: dict[str, list] = {}  # per supervoxel kind, loaded on first use
    tables = {}
    for method, (out_maps, out_table) in zip(methods, outputs):
        mask_kind = METHODS[method].feature_mask
        if mask_kind and mask_kind not in masks:
            masks[mask_kind] = [load_masks(masks_path, c, mask_kind, kind.layout) for c in cases]
        log.info("%s seed %d %s: %d cases (shard %d/%d) on %s, %d threads", task, seed, method, len(cases),
                 shard + 1, n_shards, dev, torch.get_num_threads())
        # a fresh copy per method: no hook or in-place setting of one method can reach the next
        tables[method] = _explain_and_save(task, kind, seed, method, copy.deepcopy(model), pred, cases, inputs,
                                           masks.get(mask_kind), cfg, dev, out_maps, out_table)
    return tables


def _explain_and_save(task, kind, seed, method, model, pred, cases, inputs, masks, cfg, dev, out_maps, out_table):
    m = METHODS[method]
    overrides = (cfg.get("params") or {}).get(task, {}).get(method)
    batching = cfg["batching"]
    used: list = []
    maps, seconds = explain(model, kind, method, cases, inputs, [int(p) for p in pred["pred"]], masks, seed,
                            overrides, batching, dev, used)
    post_cfg = cfg["postprocess"]
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
                     "batch_size": batching.get("batch_size") if m.batches_cases(batching.get("fast", True)) else 1,
                     "perturbations_per_eval": batching.get("perturbations_per_eval") if m.family == "perturbation" else "",
                     "implementation": used[0] if used else "",
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
