"""The degradation stage (issue 20, torch): MoRF and LeRF curves of every method's maps on one model (seed 002
§4.4.1), against random orderings of the same voxels; the scores DS and DS_c are computed from these curves,
torch-free, in clinxai.analysis.localisation.

Per case the voxels (modalities pooled) are ranked by the post-processed positive map, ties in a seeded random order
that is the same for every method of a model (key: the case), and removed in `steps` equal steps: most relevant
first (MoRF), least relevant first (LeRF) and in `random_orderings` random orders (seeded per model, case and draw,
as feature removal's baselines are). q is the probability of the explained class (the predicted one, which the maps
explain). The unperturbed input, the input with every voxel removed (the same for MoRF, LeRF and random orders)
and the random orderings do not depend on the map: computed once per case and model and shared by the methods of a
job, unless the replacement itself depends on the map (`sampled`).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from ..inference import Batcher, FlatLayout, Predictor, resolve_device
from ..io import save_csv
from ..metrics.coherence import ranking
from ..metrics.degradation import removal_step
from ..metrics.removal import MAP_DEPENDENT, PERMUTATIONS
from ..models import load_checkpoint
from ..progress import Progress
from ..runtime import use_threads
from ..tasks import TaskKind
from .perturbation import Perturber
from .truthfulness import case_subset, processed_inputs_maps, test_set

log = logging.getLogger("clinxai.degradation")


def degradation_curves(predict, layout: FlatLayout, cases: list[str], inputs: list[np.ndarray],
                       maps: list[np.ndarray], explained: np.ndarray, cfg: dict, seed: int, method: str,
                       shared: dict | None = None) -> pd.DataFrame:
    """Long table (case, curve, draw, step, fraction, prob) of one method's maps: curve morf, lerf or random.

    `predict(flat B x N tensor) -> (prob B x classes, pred)`; `explained`: the class each case's map explains; `cfg`: steps,
    random_orderings, perturbation (a replacement: blur, road, zero, ...) and its parameters, batch_size.
    `shared`: {key: {"p0", "full", "random"}} filled here and reused by later calls on the same model.
    """
    m, draws, how = cfg["steps"], cfg["random_orderings"], cfg["perturbation"]
    shared = {} if shared is None else shared
    batcher = Batcher(predict, cfg["batch_size"])
    plans = []
    progress = Progress(len(cases), f"{method} degradation", log)
    for c, (case, x, flat_map) in enumerate(zip(cases, inputs, maps)):
        n = len(x)
        order = ranking(np.asarray(flat_map, np.float64), seed, str(case))
        rows = [removal_step(order, m), removal_step(order[::-1], m)]
        key = (case, method) if how in MAP_DEPENDENT else case
        new = key not in shared
        if new:
            rows += [removal_step(PERMUTATIONS.get(seed, case, d + 1, n), m) for d in range(draws)]
        # items (curve row, step): MoRF and LeRF 1..m-1, and for a new key the unperturbed input (0, 0), the fully
        # perturbed one (0, m: the same for every curve and method) and the random orders' steps 1..m-1
        items = [(0, i) for i in range(1, m)] + [(1, i) for i in range(1, m)]
        if new:
            items += [(0, 0), (0, m)] + [(2 + d, i) for d in range(draws) for i in range(1, m)]
        perturber = Perturber(x, flat_map, layout, how, cfg, seed, case)
        steps = torch.from_numpy(np.stack(rows))
        for start in range(0, len(items), cfg["batch_size"]):
            chunk = items[start:start + cfg["batch_size"]]
            batcher.add(perturber.batch(steps, [r for r, _ in chunk], [i for _, i in chunk]),
                        [(c, r, i) for r, i in chunk])
        plans.append((key, new, n))
        progress.update()  # perturbed inputs queued; the batcher runs them as batches fill
    batcher.flush()
    prob = {}
    for (c, r, i), p, _ in batcher.results:
        # two classes: from class 1's probability, as before multi-class tasks (the same floats)
        prob[(c, r, i)] = (float(p[1]) if explained[c] == 1 else 1.0 - float(p[1])) if len(p) == 2 \
            else float(p[explained[c]])
    out = []
    for c, (case, (key, new, n)) in enumerate(zip(cases, plans)):
        if new:
            shared[key] = {"p0": prob[(c, 0, 0)], "full": prob[(c, 0, m)],
                           "random": [[prob[(c, 2 + d, i)] for i in range(1, m)] for d in range(draws)]}
        s = shared[key]
        fractions = np.round(np.arange(m + 1) * n / m) / n
        curves = [("morf", 0, [prob[(c, 0, i)] for i in range(1, m)]),
                  ("lerf", 0, [prob[(c, 1, i)] for i in range(1, m)])]
        curves += [("random", d + 1, s["random"][d]) for d in range(draws)]
        for name, draw, mid in curves:
            for i, q in enumerate([s["p0"], *mid, s["full"]]):
                out.append({"case": case, "curve": name, "draw": draw, "step": i, "fraction": float(fractions[i]),
                            "prob": q})
    return pd.DataFrame(out)


def run_degradation(task: str, kind: TaskKind, seed: int, methods: list[str], checkpoint, predictions, maps: list,
                    data_dir, cfg: dict, post_cfg: dict, outputs: list, threads: int = 1,
                    device: str = "auto") -> dict[str, pd.DataFrame]:
    """MoRF / LeRF / random-order curves of one model for each method; the test set (or `cfg["max_cases"]` of its
    cases, both classes: case_subset) and the model are loaded once; each method's file is written as soon as it is
    done."""
    use_threads(threads)
    cases, labels, inputs = case_subset(*test_set(kind, data_dir, predictions), cfg.get("max_cases"))
    pred = pd.read_csv(predictions, dtype={"case": str}).set_index("case")
    layout = FlatLayout(inputs[0])
    flat_inputs = [layout.flatten(x).numpy() for x in inputs]
    explained = pred.loc[cases, "pred"].to_numpy(int)
    predict = Predictor(load_checkpoint(checkpoint, task=task, family=kind.model), layout, resolve_device(device),
                        fast=cfg["fast"],
                        compile=cfg.get("compile", False))
    tables, shared = {}, {}
    for method, maps_path, out in zip(methods, maps, outputs):
        t0 = time.perf_counter()
        processed = list(processed_inputs_maps(maps_path, method, cases, inputs, post_cfg))
        flat_maps = [layout.flatten_map(parts) for _, parts, _ in processed]
        curves = degradation_curves(predict, layout, cases, flat_inputs, flat_maps, explained, cfg, seed, method,
                                    shared)
        info = pd.DataFrame({"case": cases, "label": labels, "pred": explained,
                             "status": [status for _, _, status in processed]})
        table = curves.merge(info, on="case").assign(task=task, seed=seed, method=method,
                                                     perturbation=cfg["perturbation"])
        lead = ["task", "seed", "method", "case", "label", "pred", "status", "perturbation"]
        tables[method] = table[lead + [c for c in table.columns if c not in lead]]
        save_csv(out, tables[method])
        ds = table.pivot_table(index=["case", "step"], columns="curve", values="prob", aggfunc="mean")
        log.info("%s %s seed %d: mean LeRF - MoRF %.3f over %d cases (%.1f s)", task, method, seed,
                 float((ds["lerf"] - ds["morf"]).mean()), len(cases), time.perf_counter() - t0)
    return tables
