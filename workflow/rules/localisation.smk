# Localisation and degradation (issue 20): threshold-free and coherence scores of every map against the clinical
# masks (per task and method, or per task with localisation.group_methods), MoRF / LeRF curves per model (per
# method, or every method in one job with localisation.degradation.group_methods), feature removal rerun with
# ROAD's imputation on a subset, and per task the per-case scores, DS_c, the ROAD ranking comparison and the mean
# MoRF / LeRF curves.


rule localisation:
    input:
        unpack(lambda wc: task_maps_inputs(wc.task, [wc.method])),
    output:
        table=localisation_table("{task}", "{method}"),
    log:
        f"{RESULTS}/logs/localisation/{{task}}_{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/localisation/{{task}}_{{method}}.tsv"
    wildcard_constraints:
        task=one_of(PLAUSIBILITY_TASKS),
        method=one_of([] if GROUP_LOCALISATION else ALL_METHODS),
    priority: res("localisation", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("localisation", "threads")
    resources:
        **rule_resources("localisation"),
    params:
        methods=lambda wc: [wc.method],
        seeds=lambda wc: seeds_of(wc.task),
        postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
        dilation=lambda wc: mask_dilation(config, wc.task),
    script:
        "../scripts/localisation.py"


for _task in PLAUSIBILITY_TASKS if GROUP_LOCALISATION else []:

    rule:
        name:
            f"localisation_{_task}"
        input:
            unpack(lambda wc: task_maps_inputs(wc.task, task_methods(config, wc.task))),
        output:
            **grouped_tables(localisation_table, _task),
        log:
            f"{RESULTS}/logs/localisation/{{task}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/localisation/{{task}}.tsv"
        wildcard_constraints:
            task=_task,
        priority: res("localisation", "priority")
        conda:
            "../../envs/stats.yaml"
        threads: res("localisation", "threads")
        resources:
            **rule_resources("localisation"),
        params:
            methods=task_methods(config, _task),
            seeds=lambda wc: seeds_of(wc.task),
            postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
            dilation=lambda wc: mask_dilation(config, wc.task),
        script:
            "../scripts/localisation.py"


rule degradation:
    input:
        unpack(lambda wc: model_maps_inputs(wc, [wc.method])),
    output:
        curves=degradation_output("{task}", "{seed}", "{method}"),
    log:
        f"{RESULTS}/logs/degradation/{{task}}_seed{{seed}}_{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/degradation/{{task}}_seed{{seed}}_{{method}}.tsv"
    wildcard_constraints:
        method=one_of([] if GROUP_DEGRADATION else ALL_METHODS),
    priority: res("degradation", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("degradation", "threads")
    resources:
        **rule_resources("degradation", scale_mem=True),
    params:
        cfg=lambda wc: degradation_cfg(config, wc.task),
        postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
        methods=lambda wc: [wc.method],
    script:
        "../scripts/degradation.py"


for _task in TASKS if GROUP_DEGRADATION else []:

    rule:
        name:
            f"degradation_{_task}"
        input:
            unpack(lambda wc: model_maps_inputs(wc, task_methods(config, wc.task))),
        output:
            **grouped_degradation_outputs(_task),
        log:
            f"{RESULTS}/logs/degradation/{{task}}_seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/degradation/{{task}}_seed{{seed}}.tsv"
        wildcard_constraints:
            task=_task,
        priority: res("degradation", "priority")
        conda:
            "../../envs/torch.yaml"
        threads: res("degradation", "threads")
        resources:
            **rule_resources("degradation", scale_mem=True),
        params:
            cfg=lambda wc: degradation_cfg(config, wc.task),
            postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
            methods=task_methods(config, _task),
        script:
            "../scripts/degradation.py"


rule road_removal:
    input:
        unpack(lambda wc: model_maps_inputs(wc, task_methods(config, wc.task))),
    output:
        curves=road_curves("{task}", "{seed}"),
    log:
        f"{RESULTS}/logs/road_removal/{{task}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/road_removal/{{task}}_seed{{seed}}.tsv"
    wildcard_constraints:
        task=one_of(REMOVAL_TASKS),
    priority: res("road_removal", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("road_removal", "threads")
    resources:
        **rule_resources("road_removal", scale_mem=True),
    params:
        cfg=lambda wc: road_cfg(config, wc.task),
        postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
        methods=lambda wc: task_methods(config, wc.task),
    script:
        "../scripts/road_removal.py"


rule road_comparison:
    input:
        unpack(road_inputs),
    output:
        comparison=road_outputs("{task}")["comparison"],
        kendall=report(
            road_outputs("{task}")["kendall"],
            caption="../report/road.rst",
            category=LOCALISATION_CATEGORY,
            subcategory="{task}",
        ),
    log:
        f"{RESULTS}/logs/road_comparison/{{task}}.log",
    wildcard_constraints:
        task=one_of(REMOVAL_TASKS),
    priority: res("road_comparison", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("road_comparison", "threads")
    resources:
        **rule_resources("road_comparison"),
    script:
        "../scripts/road_comparison.py"


rule localisation_summary:
    input:
        unpack(localisation_summary_inputs),
    output:
        scores=localisation_outputs("{task}")["scores"],
        ds_c=localisation_outputs("{task}")["ds_c"],
        summary=report(
            localisation_outputs("{task}")["summary"],
            caption="../report/localisation.rst",
            category=LOCALISATION_CATEGORY,
            subcategory="{task}",
        ),
    log:
        f"{RESULTS}/logs/localisation_summary/{{task}}.log",
    priority: res("localisation_summary", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("localisation_summary", "threads")
    resources:
        **rule_resources("localisation_summary"),
    params:
        alpha=config["localisation"]["degradation"]["alpha"],
    script:
        "../scripts/localisation_summary.py"


rule fig_degradation_curves:
    input:
        curves=lambda wc: all_degradation_outputs(wc.task),
    output:
        figure=report(
            f"{RESULTS}/{{task}}/figures/degradation_curves.png",
            caption="../report/degradation_curves.rst",
            category=LOCALISATION_CATEGORY,
            subcategory="{task}",
        ),
    log:
        f"{RESULTS}/logs/fig_degradation_curves/{{task}}.log",
    priority: res("fig_degradation_curves", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("fig_degradation_curves", "threads")
    resources:
        **rule_resources("fig_degradation_curves"),
    script:
        "../scripts/fig_degradation_curves.py"
