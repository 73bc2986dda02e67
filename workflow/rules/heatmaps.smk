# Heatmaps: supervoxel masks once per task, one job per (task, seed, method) or per case shard of it -- or, with
# heatmaps.group_methods, one job per (task, seed) for all unsharded methods (rule heatmaps_<task>) -- a merge of
# shards, per-method timing (Table 4) and NIfTI/PNG export of chosen cases.

from clinxai.config import task_methods, task_postprocess_cfg


def n_shards(method):
    return int(config["heatmaps"]["shards"].get(method, 1))


def methods_regex(methods):
    """Wildcard pattern of exactly these methods; one that never matches when there are none."""
    return "|".join(methods) if methods else "(?!x)x"


ALL_METHODS = sorted({m for t in TASKS for m in task_methods(config, t)})
SHARDED = [m for m in ALL_METHODS if n_shards(m) > 1]
UNSHARDED = [m for m in ALL_METHODS if n_shards(m) == 1]
# One process per model pays the imports (torch, captum, MONAI: ~5 s) once instead of once per method; the price is
# that editing one method's parameters reruns every method of that task.
GROUP_HEATMAPS = config["heatmaps"].get("group_methods", False)


def model_methods(task):
    """The methods one heatmaps_<task> job computes: the task's unsharded ones."""
    return [m for m in task_methods(config, task) if n_shards(m) == 1]


def heatmap_outputs(task, seed, method):
    root = f"{RESULTS}/{task}/heatmaps/seed{seed}"
    return {"maps": f"{root}/{method}.npz", "table": f"{root}/{method}.csv"}


def heatmap_inputs(wc):
    return {
        "checkpoint": model_outputs(wc.task, wc.seed)["checkpoint"],
        "predictions": model_outputs(wc.task, wc.seed)["predictions"],
        "meta": prepared(wc.task)["meta"],
        "arrays": prepared(wc.task)["arrays"],
        "masks": f"{RESULTS}/{wc.task}/heatmaps/supervoxels.npz",
    }


def heatmap_cfg(wc, methods=None):
    """Only what one job uses, so editing another method's parameters or the export does not rerun it."""
    hm = config["heatmaps"]
    methods = methods or [wc.method]
    return {
        "params": {wc.task: {m: hm["params"].get(wc.task, {}).get(m, {}) for m in methods}},
        "batching": hm["batching"],
        # for the status column (all-zero after post-processing); this task's smoothing only
        "postprocess": task_postprocess_cfg(hm["postprocess"], wc.task),
    }


HEATMAP_PARAMS = dict(
    cfg=heatmap_cfg,
    device=config["training"]["device"],
)


rule supervoxels:
    input:
        split=lambda wc: prepared(wc.task)["split"],
        arrays=lambda wc: prepared(wc.task)["arrays"],
    output:
        masks=f"{RESULTS}/{{task}}/heatmaps/supervoxels.npz",
    params:
        cfg=lambda wc: config["heatmaps"]["supervoxels"][wc.task],
    log:
        f"{RESULTS}/logs/supervoxels/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/supervoxels/{{task}}.tsv"
    threads: res("supervoxels", "threads")
    resources:
        mem_mb=res("supervoxels", "mem_mb"),
        runtime=res("supervoxels", "runtime"),
        gpu=res("supervoxels", "gpu"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/supervoxels.py"


rule heatmaps:
    input:
        unpack(heatmap_inputs),
    output:
        **heatmap_outputs("{task}", "{seed}", "{method}"),
    wildcard_constraints:
        method=methods_regex([] if GROUP_HEATMAPS else UNSHARDED),
    params:
        **HEATMAP_PARAMS,
        shard=0,
        n_shards=1,
    log:
        f"{RESULTS}/logs/heatmaps/{{task}}_seed{{seed}}_{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/heatmaps/{{task}}_seed{{seed}}_{{method}}.tsv"
    threads: res("heatmaps", "threads")
    resources:
        mem_mb=lambda wc, attempt: res("heatmaps", "mem_mb") * attempt,
        runtime=res("heatmaps", "runtime"),
        gpu=res("heatmaps", "gpu"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heatmaps.py"


for _task in TASKS if GROUP_HEATMAPS else []:
    if not model_methods(_task):
        continue

    rule:
        name:
            f"heatmaps_{_task}"
        input:
            unpack(heatmap_inputs),
        output:
            **{f"{k}_{m}": p for m in model_methods(_task) for k, p in heatmap_outputs("{task}", "{seed}", m).items()},
        wildcard_constraints:
            task=_task,
        params:
            cfg=lambda wc: heatmap_cfg(wc, model_methods(wc.task)),
            methods=model_methods(_task),
            device=config["training"]["device"],
        log:
            f"{RESULTS}/logs/heatmaps/{{task}}_seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/heatmaps/{{task}}_seed{{seed}}.tsv"
        threads: res("heatmaps", "threads")
        resources:
            mem_mb=lambda wc, attempt: res("heatmaps", "mem_mb") * attempt,
            runtime=res("heatmaps", "runtime"),
            gpu=res("heatmaps", "gpu"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/heatmaps_model.py"


rule heatmaps_shard:
    input:
        unpack(heatmap_inputs),
    output:
        maps=f"{RESULTS}/{{task}}/heatmaps/seed{{seed}}/shards/{{method}}_{{shard}}of{{n}}.npz",
        table=f"{RESULTS}/{{task}}/heatmaps/seed{{seed}}/shards/{{method}}_{{shard}}of{{n}}.csv",
    wildcard_constraints:
        method=methods_regex(SHARDED),
        shard=r"\d+",
        n=r"\d+",
    params:
        **HEATMAP_PARAMS,
        shard=lambda wc: int(wc.shard) - 1,
        n_shards=lambda wc: int(wc.n),
    log:
        f"{RESULTS}/logs/heatmaps/{{task}}_seed{{seed}}_{{method}}_{{shard}}of{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/heatmaps/{{task}}_seed{{seed}}_{{method}}_{{shard}}of{{n}}.tsv"
    threads: res("heatmaps", "threads")
    resources:
        mem_mb=lambda wc, attempt: res("heatmaps", "mem_mb") * attempt,
        runtime=res("heatmaps", "runtime"),
        gpu=res("heatmaps", "gpu"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heatmaps.py"


def shard_files(wc, kind):
    n = n_shards(wc.method)
    ext = "npz" if kind == "maps" else "csv"
    return [f"{RESULTS}/{wc.task}/heatmaps/seed{wc.seed}/shards/{wc.method}_{i}of{n}.{ext}" for i in range(1, n + 1)]


rule merge_heatmaps:
    input:
        maps=lambda wc: shard_files(wc, "maps"),
        tables=lambda wc: shard_files(wc, "tables"),
    output:
        **heatmap_outputs("{task}", "{seed}", "{method}"),
    wildcard_constraints:
        method=methods_regex(SHARDED),
    log:
        f"{RESULTS}/logs/heatmaps/{{task}}_seed{{seed}}_{{method}}_merge.log",
    threads: res("merge_heatmaps", "threads")
    resources:
        **rule_resources("merge_heatmaps"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/merge_heatmaps.py"


def all_heatmap_tables(task):
    return [heatmap_outputs(task, s, m)["table"] for s in SEEDS for m in task_methods(config, task)]


rule heatmap_timing:
    input:
        tables=lambda wc: all_heatmap_tables(wc.task),
    output:
        timing=f"{RESULTS}/{{task}}/heatmaps/timing.csv",
        status=f"{RESULTS}/{{task}}/heatmaps/status.csv",
    log:
        f"{RESULTS}/logs/heatmap_timing/{{task}}.log",
    threads: res("heatmap_timing", "threads")
    resources:
        **rule_resources("heatmap_timing"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heatmap_timing.py"


rule export_heatmaps:
    input:
        maps=lambda wc: [heatmap_outputs(wc.task, SEEDS[0], m)["maps"] for m in task_methods(config, wc.task)],
        predictions=lambda wc: model_outputs(wc.task, SEEDS[0])["predictions"],
        meta=lambda wc: prepared(wc.task)["meta"],
        arrays=lambda wc: prepared(wc.task)["arrays"],
    output:
        root=directory(f"{RESULTS}/{{task}}/heatmaps/export"),
    params:
        methods=lambda wc: task_methods(config, wc.task),
        cases=config["heatmaps"]["export"]["cases"],
        postprocess=lambda wc: task_postprocess_cfg(config["heatmaps"]["postprocess"], wc.task),
        seed=SEEDS[0],
    log:
        f"{RESULTS}/logs/export_heatmaps/{{task}}.log",
    threads: res("export_heatmaps", "threads")
    resources:
        mem_mb=res("export_heatmaps", "mem_mb"),
        runtime=res("export_heatmaps", "runtime"),
        gpu=res("export_heatmaps", "gpu"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/export_heatmaps.py"
