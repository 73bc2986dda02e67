# Heatmaps: supervoxel masks once per task, one job per (task, seed, method) or per case shard of it -- or, with
# heatmaps.group_methods, one job per (task, seed) for all unsharded methods (rule heatmaps_<task>) -- a merge of
# shards, per-method timing (Table 4) and NIfTI/PNG export of chosen cases. All three heatmap rules run one script.


rule supervoxels:
    input:
        split=lambda wc: prepared(wc.task)["split"],
        arrays=lambda wc: prepared(wc.task)["arrays"],
    output:
        masks=f"{RESULTS}/{{task}}/heatmaps/supervoxels.npz",
    log:
        f"{RESULTS}/logs/supervoxels/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/supervoxels/{{task}}.tsv"
    priority: res("supervoxels", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("supervoxels", "threads")
    resources:
        **rule_resources("supervoxels"),
    params:
        cfg=lambda wc: task_setting(config, "heatmaps.supervoxels", wc.task),
    script:
        "../scripts/supervoxels.py"


rule heatmaps:
    input:
        unpack(heatmap_inputs),
    output:
        **heatmap_outputs("{task}", "{seed}", "{method}"),
    log:
        f"{RESULTS}/logs/heatmaps/{{task}}_seed{{seed}}_{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/heatmaps/{{task}}_seed{{seed}}_{{method}}.tsv"
    wildcard_constraints:
        method=one_of([] if GROUP_HEATMAPS else UNSHARDED),
    priority: res("heatmaps", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("heatmaps", "threads")
    resources:
        **rule_resources("heatmaps", scale_mem=True),
    params:
        cfg=heatmap_cfg,
        methods=lambda wc: [wc.method],
        shard=0,
        n_shards=1,
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
            **grouped_heatmap_outputs(_task),
        log:
            f"{RESULTS}/logs/heatmaps/{{task}}_seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/heatmaps/{{task}}_seed{{seed}}.tsv"
        wildcard_constraints:
            task=_task,
        priority: res("heatmaps", "priority")
        conda:
            "../../envs/torch.yaml"
        threads: res("heatmaps", "threads")
        resources:
            **rule_resources("heatmaps", scale_mem=True),
        params:
            cfg=lambda wc: heatmap_cfg(wc, model_methods(wc.task)),
            methods=model_methods(_task),
            shard=0,
            n_shards=1,
        script:
            "../scripts/heatmaps.py"


rule heatmaps_shard:
    input:
        unpack(heatmap_inputs),
    output:
        maps=shard_outputs("npz"),
        table=shard_outputs("csv"),
    log:
        f"{RESULTS}/logs/heatmaps/{{task}}_seed{{seed}}_{{method}}_{{shard}}of{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/heatmaps/{{task}}_seed{{seed}}_{{method}}_{{shard}}of{{n}}.tsv"
    wildcard_constraints:
        method=one_of(SHARDED),
        shard=r"\d+",
        n=r"\d+",
    priority: res("heatmaps", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("heatmaps", "threads")
    resources:
        **rule_resources("heatmaps", scale_mem=True),
    params:
        cfg=heatmap_cfg,
        methods=lambda wc: [wc.method],
        shard=lambda wc: int(wc.shard) - 1,
        n_shards=lambda wc: int(wc.n),
    script:
        "../scripts/heatmaps.py"


rule merge_heatmaps:
    input:
        maps=lambda wc: shard_files(wc, "maps"),
        tables=lambda wc: shard_files(wc, "tables"),
    output:
        **heatmap_outputs("{task}", "{seed}", "{method}"),
    log:
        f"{RESULTS}/logs/heatmaps/{{task}}_seed{{seed}}_{{method}}_merge.log",
    wildcard_constraints:
        method=one_of(SHARDED),
    priority: res("merge_heatmaps", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("merge_heatmaps", "threads")
    resources:
        **rule_resources("merge_heatmaps"),
    script:
        "../scripts/merge_heatmaps.py"


rule heatmap_timing:
    input:
        tables=lambda wc: all_heatmap_tables(wc.task),
    output:
        timing=f"{RESULTS}/{{task}}/heatmaps/timing.csv",
        status=f"{RESULTS}/{{task}}/heatmaps/status.csv",
    log:
        f"{RESULTS}/logs/heatmap_timing/{{task}}.log",
    priority: res("heatmap_timing", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("heatmap_timing", "threads")
    resources:
        **rule_resources("heatmap_timing"),
    script:
        "../scripts/heatmap_timing.py"


rule export_heatmaps:
    input:
        maps=lambda wc: [heatmap_outputs(wc.task, seeds_of(wc.task)[0], m)["maps"] for m in task_methods(config, wc.task)],
        predictions=lambda wc: model_outputs(wc.task, seeds_of(wc.task)[0])["predictions"],
        meta=lambda wc: prepared(wc.task)["meta"],
        arrays=lambda wc: prepared(wc.task)["arrays"],
    output:
        root=directory(f"{RESULTS}/{{task}}/heatmaps/export"),
    log:
        f"{RESULTS}/logs/export_heatmaps/{{task}}.log",
    priority: res("export_heatmaps", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("export_heatmaps", "threads")
    resources:
        **rule_resources("export_heatmaps"),
    params:
        methods=lambda wc: task_methods(config, wc.task),
        cases=config["heatmaps"]["export"]["cases"],
        postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
        seed=lambda wc: seeds_of(wc.task)[0],
    script:
        "../scripts/export_heatmaps.py"
