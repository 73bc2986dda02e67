"""Benchmark: seconds per case of every heatmap method, batched as configured vs one case per call.

Run after the demo has trained its models (it reads results/<task>/...):
    python benchmarks/heatmaps.py --task glioma --seed 10 --cases 8 --threads 1 --out results/bench_heatmaps_glioma.csv
Not part of the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import yaml

from clinxai.attribution.explain import explain
from clinxai.attribution.registry import METHODS
from clinxai.data.cases import load_inputs
from clinxai.inference import as_tensors
from clinxai.tasks import kind_of, task_setting
from clinxai.attribution.supervoxels import compute_masks
from clinxai.config import task_batching, task_methods
from clinxai.models import load_checkpoint
from clinxai.runtime import use_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default=None, help="a task of the config (default: its first)")
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    use_threads(args.threads)  # as the heatmaps stage does
    config = yaml.safe_load(Path(args.config).read_text())
    args.task = args.task or config["tasks"][0]
    kind = kind_of(config, args.task)
    root = Path("results") / args.task
    pred = pd.read_csv(root / f"models/seed{args.seed}/predictions.csv", dtype={"case": str}).head(args.cases)
    cases = list(pred["case"])
    model = load_checkpoint(root / f"models/seed{args.seed}/model.pt", task=args.task)
    inputs = [as_tensors(x) for x in load_inputs(kind, root / "data", cases)]
    masks = compute_masks(kind, root / "data", cases, task_setting(config, "heatmaps.supervoxels", args.task))
    rows = []
    for method in task_methods(config, args.task):
        mask_kind = METHODS[method].feature_mask
        ms = [m[mask_kind] for m in masks.values()] if mask_kind else None
        over = task_setting(config, "heatmaps.params", args.task).get(method)
        configured = task_batching(config, args.task)
        for mode, batching in (("configured", configured),
                               ("one_at_a_time", {**configured, "batch_size": 1, "perturbations_per_eval": 1,
                                                  "internal_batch_size": 1, "nt_samples_batch_size": 1})):
            t0 = time.perf_counter()
            explain(model, kind, method, cases, inputs, list(pred["pred"]), ms, args.seed, over, batching)
            rows.append({"task": args.task, "method": method, "mode": mode,
                         "seconds_per_case": (time.perf_counter() - t0) / len(cases), "threads": args.threads})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).pivot(index="method", columns="mode", values="seconds_per_case")
    table["speedup"] = table["one_at_a_time"] / table["configured"]
    print(table.round(3).to_string())
    if args.out:
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
