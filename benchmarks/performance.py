"""Performance harness (issue 22): the paper's way of calling captum vs clinxai vs the forward-pass limit.

    python benchmarks/performance.py --scale demo --out results/performance/demo          # ~10 minutes on 2 cores
    python benchmarks/performance.py --scale paper --tasks glioma --cases 1 --budget 60 --out results/performance/paper

For each task, on one model with random weights at the scale's sizes (demo: config/config.yaml; paper:
config/paper.yaml -- GeneNet 16-32-64-128-128-128 / fc 4096 at 4 x 128^3, the knee network with AlexNet widths at
3 views x 32 x 256 x 256, DenseNet121 at 4 x 256 x 256) and the same inputs and method parameters for all three:

- reference: one case per call, captum's default for every batching argument (the paper's code);
- clinxai: `clinxai.attribution.explain` with the config's batching;
- limit: the passes the method needs (forward, or forward + backward for gradient methods; counted from its
  parameters, the supervoxel count and the window grid; tests/test_performance_harness.py checks the counts against
  the samples captum feeds the model) x the best per-sample pass time measured on the model over batch sizes
  (forward passes with BatchNorm folded, in inference mode).

Then feature removal, modality Shapley and one training epoch against their pass limits. Reports per row the
speed-up reference/clinxai, the limit fraction limit/clinxai, the process's peak RSS and (CUDA) the peak allocated
memory, and writes `performance.csv` and `performance.png` under --out. Where a run would exceed --budget seconds
per method, its sample count (steps, samples) is reduced, or Occlusion's stride widened, and the time scaled by the
pass ratio: the row says `extrapolated` and from how many passes. clinxai's Occlusion (incremental inference on a
model family that names its layer chain, the glioma GeneNet; whole windows batched otherwise) costs per window what
the window's size makes it, so there clinxai's time comes from a random sample of the real windows instead. Batch
sizes stay below --max-batch and the memory the rule may use (--mem-mb): faster must not mean out of memory on a
SLURM node (incremental Occlusion's window batch, `incremental_windows`, holds patches, not whole inputs). Timings
depend on the machine: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import copy
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from clinxai.attribution.explain import explain, explainable, incremental  # noqa: E402
from clinxai.attribution.occlusion import window_grid  # noqa: E402
from clinxai.attribution.registry import METHODS, method_params  # noqa: E402
from clinxai.attribution.supervoxels import image_masks, view_masks  # noqa: E402
from clinxai.config import removal_cfg, task_batching, task_methods  # noqa: E402
from clinxai.evaluation.perturbation import removal_curves, subset_performance  # noqa: E402
from clinxai.inference import (FlatLayout, Predictor, channels_last_format, fuse_batchnorm,  # noqa: E402
                               to_channels_last)
from clinxai.logs import filter_known_warnings  # noqa: E402
from clinxai.metrics.modality import all_subsets  # noqa: E402
from clinxai.models import MODEL_FAMILIES, build_model  # noqa: E402
from clinxai.runtime import use_threads  # noqa: E402
from clinxai.tasks import VIEWS, kind_of, task_setting  # noqa: E402

CONFIGS = {"demo": ROOT / "config/config.yaml", "paper": ROOT / "config/paper.yaml"}
# ---- the setting: model, inputs, masks ----
def setting(config: dict, task: str, n_cases: int, seed: int = 0):
    """A model with random weights of the task's family at the config's sizes, n random cases and their masks."""
    kind = kind_of(config, task)
    grid = list(config["data"][task].get("grid") or [config["data"][task]["size"]] * 2)
    channels = list(kind.modalities)
    meta = {"channels": channels, "grid": grid}
    torch.manual_seed(seed)
    model = build_model(kind.model, MODEL_FAMILIES[kind.model].arch(task_setting(config, "training", task)["model"],
                                                                   meta)).eval()
    rng = np.random.default_rng(seed)
    sv = task_setting(config, "heatmaps.supervoxels", task)
    inputs, masks = [], []
    for _ in range(n_cases):
        if kind.layout == VIEWS:
            views = {v: rng.normal(size=grid).astype(np.float32) for v in channels}
            inputs.append(tuple(torch.from_numpy(views[v])[None] for v in channels))
            masks.append(view_masks(views, sv))
        else:
            image = rng.normal(size=(len(channels), *grid)).astype(np.float32)
            inputs.append((torch.from_numpy(image)[None],))
            masks.append(image_masks(image, np.ones(grid, bool), sv))
    return kind, model, inputs, masks


# ---- the pass limit ----
def per_sample_pass(model, example: tuple, backward: bool, max_batch: int, mem_mb: float, device: str,
                    reps: int = 2, training: bool = False) -> tuple[float, int]:
    """(best seconds per sample, batch size) of a forward pass, a forward + backward pass to the inputs (what the
    gradient methods need) or, `training`, a training step's forward + backward to the weights, over batch sizes 1,
    2, 4, ... up to max_batch, stopping where the next size would pass mem_mb (estimated from the measured growth),
    and over the weights' memory layouts (as given, channels-last): the limit is the fastest pass either way."""
    if training:
        net = copy.deepcopy(model).train().to(device)
    else:
        net = explainable(copy.deepcopy(model)).to(device) if backward else fuse_batchnorm(model).to(device)
    best = _per_sample_pass(net, example, backward, max_batch, mem_mb, device, reps, training)
    if channels_last_format(net) is None:
        return best
    return min(best, _per_sample_pass(to_channels_last(net), example, backward, max_batch, mem_mb, device, reps,
                                      training))


def _per_sample_pass(net, example, backward, max_batch, mem_mb, device, reps, training) -> tuple[float, int]:
    best, best_b, b = math.inf, 1, 1
    base = rss_now_mb()
    while b <= max_batch:
        x = tuple(t.expand(b, *t.shape[1:]).contiguous().to(device) for t in example)
        times = []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            if training:
                net(*x)[:, 0].sum().backward()
                net.zero_grad(set_to_none=True)
            elif backward:  # gradients of the inputs only, as captum takes them (no parameter gradients)
                xs = tuple(t.clone().requires_grad_() for t in x)
                torch.autograd.grad(net(*xs)[:, 0].sum(), xs)
            else:
                with torch.inference_mode():
                    net(*x)
            sync(device)
            times.append(time.perf_counter() - t0)
        per = min(times[1:]) / b  # the first run of a size warms up
        if per < best:
            best, best_b = per, b
        grown = rss_now_mb() - base
        if device.startswith("cuda"):
            grown = max(grown, torch.cuda.max_memory_allocated() / 2**20)
        if grown * 2 > mem_mb or min(times[1:]) > 30:  # the next (doubled) batch would pass the rule's memory
            break
        b *= 2
    return best, best_b


def windows(shape, window, stride) -> int:
    """Occlusion's window positions as captum places them: per axis ceil((size - window) / stride) + 1 (the last
    window is shifted back inside the input)."""
    return math.prod(math.ceil((s - w) / st) + 1 for s, w, st in zip(shape, window, stride))


def passes(method: str, params: dict, kind, inputs: tuple, masks: dict) -> tuple[int, bool]:
    """(passes per case, backward?) a method needs at its parameters: the registry's formula (`Method.passes`) of
    its sample count, its mask's features and its windows."""
    m = METHODS[method]
    mask = masks[m.feature_mask or "specific"]  # ids are consecutive over modalities (views: the last view's max)
    terms = {"samples": params.get(m.count_param, 1) if m.count_param else 1,
             "features": int(np.max(mask[-1] if kind.layout == VIEWS else mask)) + 1, "windows": 0}
    if m.local_window:  # one window grid per knee view
        wins, strides = params["sliding_window_shapes"], params["strides"]
        terms["windows"] = sum(windows(x.shape[1:], wins, strides) for x in inputs)
    count = eval(m.passes, {"__builtins__": {}}, terms)  # noqa: S307 - the registry's own arithmetic
    return int(count), m.family == "gradient"


# ---- timing ----
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rss_mb() -> float:
    """The process's peak resident memory so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mb() -> float:
    """The resident memory now (MB; Linux), for the growth of one batch size."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return rss_mb()


def timed(fn, device: str, repeats: int = 1) -> float:
    """Seconds of fn(), the fastest of `repeats` runs."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def scaled(method: str, params: dict, factor: float, shape) -> dict:
    """Parameters with the sample count (or Occlusion's window count, by a wider stride) cut by about `factor`;
    `shape`: one input tensor's shape without the batch (Occlusion's windows stay inside it)."""
    out = dict(params)
    count = METHODS[method].count_param
    if count:
        out[count] = max(1, int(params[count] / factor))
    elif METHODS[method].local_window:  # a wider stride (and window: captum wants stride <= window); a pass costs the same
        k = factor ** (1 / (len(params["strides"]) - 1))
        strides = [params["strides"][0]] + [max(1, int(round(s * k))) for s in params["strides"][1:]]
        out["strides"] = tuple(min(s, n) for s, n in zip(strides, shape))
        out["sliding_window_shapes"] = tuple(min(max(w, s), n) for w, s, n in
                                             zip(params["sliding_window_shapes"], out["strides"], shape))
    return out


def prepared(fast, case: list[torch.Tensor], baselines: list[torch.Tensor] | None = None):
    """The unoccluded pass of incremental Occlusion on one case, and a function (view, starts, ends) -> the logits
    of those windows occluded with `baselines` (default: the input itself; a window's cost does not depend on it)."""
    baselines = baselines or case
    if len(case) > 1:  # views: clinxai.attribution.occlusion_slices
        state = fast.prepare(case)
        return lambda v, s, e: fast.occluded_logits(v, case[v], baselines[v], state, s, e)
    acts, baseline = fast.prepare(case[0], baselines[0])
    return lambda v, s, e: fast.occluded_logits(case[0], baseline, s, e, acts)


def incremental_seconds(fast, inputs: list[tuple], params: dict, n_sample: int, device: str) -> float:
    """Seconds per case of incremental Occlusion at the real window, from randomly chosen batches of its windows (per
    view for the knee network): the unoccluded pass plus the sample's time scaled to every window (a window's cost
    depends on its size, so a wider stride would not do)."""
    total = 0.0
    for case in inputs:
        case = [t.to(device) for t in case]
        with torch.inference_mode():
            t0 = time.perf_counter()
            evaluate = prepared(fast, case)
            sync(device)
            total += time.perf_counter() - t0
            for v, x in enumerate(case):
                starts, ends = window_grid(x.shape[1:], params["sliding_window_shapes"], params["strides"])
                # whole batches of consecutive windows, as a run takes them (they share slices and box sizes)
                blocks = np.random.default_rng(v).permutation(-(-len(starts) // fast.batch))
                blocks = [np.arange(b * fast.batch, min((b + 1) * fast.batch, len(starts)))
                          for b in blocks[:max(1, -(-n_sample // fast.batch))]]
                t1 = time.perf_counter()
                summed, covered = torch.zeros_like(x[0]), torch.zeros_like(x[0])  # the attribution's bookkeeping too
                for block in blocks:
                    s, e = starts[block], ends[block]
                    fast.accumulate(summed, covered, s, e, evaluate(v, s, e)[:, 0])
                sync(device)
                total += (time.perf_counter() - t1) * len(starts) / sum(len(b) for b in blocks)
    return total / len(inputs)


def method_rows(config, task, kind, model, inputs, masks, args, limit_fwd, limit_bwd) -> list[dict]:
    rows = []
    batching = task_batching(config, task)
    # one case per call, captum's defaults, captum's classes on the model as given
    reference = {"batch_size": 1, "permutation_batch": len(inputs), "fast": False}
    for method in task_methods(config, task):
        over = task_setting(config, "heatmaps.params", task).get(method) or {}
        params = method_params(method, kind.layout, over)
        n_pass, backward = passes(method, params, kind, inputs[0], masks[0])
        per = limit_bwd if backward else limit_fwd
        factor = max(1.0, n_pass * per[0] * 4 / args.budget)  # the reference runs up to ~4x the limit
        used = scaled(method, params, factor, inputs[0][0].shape[1:]) if factor > 1 else params
        used_passes = passes(method, used, kind, inputs[0], masks[0])[0] if factor > 1 else n_pass
        ratio = n_pass / used_passes
        kind_masks = [m[METHODS[method].feature_mask] for m in masks] if METHODS[method].feature_mask else None
        targets = [0] * len(inputs)
        row = {"scale": args.scale, "task": task, "method": method, "passes": n_pass,
               "pass": "fwd+bwd" if backward else "fwd", "per_pass_s": per[0], "best_batch": per[1],
               "limit_s": n_pass * per[0],
               "extrapolated": f"from {used_passes} passes" if ratio > 1 else ""}
        cases = [f"c{i}" for i in range(len(inputs))]
        fast = incremental(METHODS[method], explainable(copy.deepcopy(model)).to(args.device), kind, batching,
                           tuple(t.to(args.device) for t in inputs[0])) if METHODS[method].local_window else None
        for name, batch in (("reference", reference), ("clinxai", batching)):
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            if name == "clinxai" and fast is not None and ratio > 1:
                n_sample = max(used_passes, 2 * fast.batch)
                row["clinxai_s"] = incremental_seconds(fast, inputs, params, n_sample, args.device)
                row["extrapolated"] += f"; clinxai from {n_sample} sampled windows"
                continue
            # explain's own per-case times: the attribution calls, not its untimed warm-up pass or the model copy;
            # the best of --repeats runs (a shared machine only ever adds time), as the limit's passes
            row[f"{name}_s"] = min(sum(explain(copy.deepcopy(model), kind, method, cases, inputs, targets, kind_masks,
                                               10, used, batch, args.device)[1])
                                   for _ in range(args.repeats)) / len(inputs) * ratio
        row["speedup"] = row["reference_s"] / row["clinxai_s"]
        row["limit_fraction"] = row["limit_s"] / row["clinxai_s"]
        row["peak_rss_mb"] = rss_mb()
        if args.device.startswith("cuda"):
            row["cuda_max_mb"] = torch.cuda.max_memory_allocated() / 2**20
        rows.append(row)
        print(f"{task:10s} {method:22s} passes {n_pass:7d}  ref {row['reference_s']:8.3f}s  clinxai "
              f"{row['clinxai_s']:8.3f}s  limit {row['limit_s']:8.3f}s  ({row['limit_fraction']:.0%} of limit) "
              f"{row['extrapolated']}", flush=True)
    return rows


def stage_rows(config, task, kind, model, inputs, args, limit_fwd, limit_train) -> list[dict]:
    """Feature removal of one map per case, modality Shapley and one training epoch against their pass limits."""
    rows = []
    layout = FlatLayout(inputs[0])
    flat = [layout.flatten(x).numpy() for x in inputs]
    labels = np.arange(len(inputs)) % 2
    # compiled (truthfulness.compile): the first call compiles, the best of --repeats leaves that out
    predict = Predictor(model, layout, args.device, fast=True, compile=bool(config["truthfulness"].get("compile")))
    if kind.removal:
        cfg = removal_cfg(config, task)
        rng = np.random.default_rng(0)
        # signed maps: about half the voxels positive, as most methods' processed maps are; a map positive
        # everywhere (SmoothGrad's) shares its last step's input between its curves, one without any none
        maps = [(rng.random(layout.n) - 0.5).astype(np.float32) for _ in inputs]
        n_items = len(inputs) * (1 + (1 + cfg["baselines"]) * cfg["n_steps"])
        seconds = timed(lambda: removal_curves(predict, layout, [f"c{i}" for i in range(len(inputs))], flat, maps,
                                               labels, cfg, 10), args.device, args.repeats)
        rows.append({"method": "feature removal", "passes": n_items // len(inputs), "pass": "fwd",
                     "clinxai_s": seconds / len(inputs), "limit_s": n_items * limit_fwd[0] / len(inputs)})
        n_sub = len(all_subsets(len(layout.modality_sizes)))
        seconds = timed(lambda: subset_performance(predict, layout, flat, labels, cfg["metric"], cfg["batch_size"]),
                        args.device, args.repeats)
        rows.append({"method": "modality Shapley", "passes": n_sub, "pass": "fwd", "clinxai_s": seconds / len(inputs),
                     "limit_s": n_sub * limit_fwd[0]})
    train = task_setting(config, "training", task)["train"]
    net = copy.deepcopy(model).train().to(args.device)
    if train.get("channels_last", True):  # as clinxai.training trains
        to_channels_last(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = tuple(torch.cat([c[k] for c in inputs]).to(args.device) for k in range(len(inputs[0])))
    y = torch.as_tensor(labels, device=args.device)
    b = min(train["batch_size"], len(inputs)) if len(inputs) > 1 else 2
    if len(inputs) == 1:
        x, y = tuple(torch.cat([t, t]) for t in x), torch.cat([y, 1 - y])

    def epoch():
        for start in range(0, len(y), b):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(*(t[start:start + b] for t in x)), y[start:start + b]).backward()
            opt.step()

    epoch()  # warm-up
    seconds = timed(epoch, args.device, args.repeats)
    rows.append({"method": "training epoch", "passes": len(y), "pass": "train step", "clinxai_s": seconds / len(y),
                 "limit_s": limit_train[0]})
    for r in rows:
        r.update({"scale": args.scale, "task": task, "limit_fraction": r["limit_s"] / r["clinxai_s"],
                  "peak_rss_mb": rss_mb()})
        print(f"{task:10s} {r['method']:22s} clinxai {r['clinxai_s']:8.3f}s per case  limit {r['limit_s']:8.3f}s "
              f"({r['limit_fraction']:.0%})", flush=True)
    return rows


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = table[table["reference_s"].notna()] if "reference_s" in table else table
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(methods) + 1.5))
    labels = [f"{r.task} {r.method}" for r in methods.itertuples()]
    ax.barh(labels, methods["limit_fraction"], color="tab:blue", label="limit / clinxai")
    ax.axvline(0.8, color="k", ls="--", lw=1, label="target 80 %")
    ax.set_xlabel("fraction of the forward-pass limit reached (1 = at the limit)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=list(CONFIGS), default="demo")
    ap.add_argument("--tasks", nargs="+", default=None, help="default: the config's tasks with a model of their own")
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds a method's reference run may take")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs of each method and setting, the fastest counts (default: 3 at the demo's sizes, 1 at "
                         "the paper's)")
    ap.add_argument("--mem-mb", type=float, default=None, help="default: the heatmaps rule's resources.mem_mb")
    ap.add_argument("--methods", nargs="*", default=None, help="a subset of the methods")
    ap.add_argument("--no-stages", action="store_true", help="heatmap methods only (no removal, Shapley, training)")
    ap.add_argument("--compile", choices=["config", "on", "off"], default="config",
                    help="torch.compile for the forward-only model (heatmaps.batching.compile, truthfulness.compile): "
                         "as the config says, or on / off for both")
    ap.add_argument("--out", type=Path, default=Path("results/performance"))
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (3 if args.scale == "demo" else 1)
    use_threads(args.threads)  # as every torch stage does (threads, the allocator keeping freed memory)
    filter_known_warnings()
    config = yaml.safe_load(CONFIGS[args.scale].read_text())
    if args.methods:
        config["heatmaps"]["methods"] = args.methods
    if args.compile != "config":  # both stages, and over a task's own value
        config["heatmaps"]["batching"]["compile"] = config["truthfulness"]["compile"] = args.compile == "on"
        for own in (config["heatmaps"]["batching"].get("per_task") or {}).values():
            if own:
                own.pop("compile", None)
    mem = args.mem_mb or config["resources"].get("heatmaps", config["resources"]["default"])["mem_mb"]
    rows = []
    for task in args.tasks or config["tasks"]:
        kind, model, inputs, masks = setting(config, task, args.cases)
        limit_fwd = per_sample_pass(model, inputs[0], False, args.max_batch, mem, args.device)
        limit_bwd = per_sample_pass(model, inputs[0], True, args.max_batch, mem, args.device)
        print(f"{task}: per-sample pass {limit_fwd[0]:.4f} s forward (batch {limit_fwd[1]}), {limit_bwd[0]:.4f} s "
              f"forward + backward (batch {limit_bwd[1]})", flush=True)
        rows += method_rows(config, task, kind, model, inputs, masks, args, limit_fwd, limit_bwd)
        if args.no_stages:
            continue
        b = min(task_setting(config, "training", task)["train"]["batch_size"], args.max_batch)
        limit_train = per_sample_pass(model, inputs[0], True, max(2, b), mem, args.device, training=True)
        rows += stage_rows(config, task, kind, model, inputs, args, limit_fwd, limit_train)
    table = pd.DataFrame(rows)
    heat = table[table["reference_s"].notna()]
    for task, g in heat.groupby("task"):
        total = {"scale": args.scale, "task": task, "method": "all heatmap methods",
                 "reference_s": g["reference_s"].sum(), "clinxai_s": g["clinxai_s"].sum(), "limit_s": g["limit_s"].sum()}
        total["speedup"] = total["reference_s"] / total["clinxai_s"]
        total["limit_fraction"] = total["limit_s"] / total["clinxai_s"]
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "performance.csv", index=False)
    plot(table[table["method"] != "all heatmap methods"], args.out / "performance.png")
    cols = ["task", "method", "passes", "pass", "reference_s", "clinxai_s", "limit_s", "speedup", "limit_fraction",
            "extrapolated"]
    print(table[[c for c in cols if c in table]].round(4).to_string(index=False))
    print(f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"peak RSS {rss_mb():.0f} MB; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
