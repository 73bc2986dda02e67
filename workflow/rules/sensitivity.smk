# Sensitivity (issue 19): per model (sensitivity.seeds) and method -- or every method of a model in one job with
# sensitivity.group_methods -- maps recomputed under scanner shifts, noise, randomised layers, the other class,
# other seeds and the hyperparameter grid; per task the per-case scores, summaries and figures.


rule sensitivity:
    input:
        unpack(sensitivity_inputs),
    output:
        table=sensitivity_output("{task}", "{seed}", "{method}"),
    log:
        f"{RESULTS}/logs/sensitivity/{{task}}_seed{{seed}}_{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sensitivity/{{task}}_seed{{seed}}_{{method}}.tsv"
    wildcard_constraints:
        method=one_of([] if GROUP_SENSITIVITY else ALL_METHODS),
    priority: res("sensitivity", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("sensitivity", "threads")
    resources:
        **rule_resources("sensitivity", scale_mem=True),
    params:
        cfg=lambda wc: sensitivity_cfg(config, wc.task),
        heatmaps=lambda wc: heatmap_cfg(wc),
        supervoxels=lambda wc: task_setting(config, "heatmaps.supervoxels", wc.task),
        methods=lambda wc: [wc.method],
    script:
        "../scripts/sensitivity.py"


for _task in TASKS if GROUP_SENSITIVITY else []:

    rule:
        name:
            f"sensitivity_{_task}"
        input:
            unpack(sensitivity_inputs),
        output:
            **grouped_sensitivity_outputs(_task),
        log:
            f"{RESULTS}/logs/sensitivity/{{task}}_seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/sensitivity/{{task}}_seed{{seed}}.tsv"
        wildcard_constraints:
            task=_task,
        priority: res("sensitivity", "priority")
        conda:
            "../../envs/torch.yaml"
        threads: res("sensitivity", "threads")
        resources:
            **rule_resources("sensitivity", scale_mem=True),
        params:
            cfg=lambda wc: sensitivity_cfg(config, wc.task),
            heatmaps=lambda wc: heatmap_cfg(wc, task_methods(config, wc.task)),
            supervoxels=lambda wc: task_setting(config, "heatmaps.supervoxels", wc.task),
            methods=task_methods(config, _task),
        script:
            "../scripts/sensitivity.py"


rule sensitivity_summary:
    input:
        tables=lambda wc: all_sensitivity_outputs(wc.task),
    output:
        scores=sensitivity_outputs("{task}")["scores"],
        summary=report(
            sensitivity_outputs("{task}")["summary"],
            caption="../report/sensitivity.rst",
            category=SENSITIVITY_CATEGORY,
            subcategory="{task}",
        ),
        settings=sensitivity_outputs("{task}")["settings"],
        findings=report(
            sensitivity_outputs("{task}")["findings"],
            caption="../report/sensitivity_findings.rst",
            category=SENSITIVITY_CATEGORY,
            subcategory="{task}",
        ),
        hyperparameters=sensitivity_outputs("{task}")["hyperparameters"],
    log:
        f"{RESULTS}/logs/sensitivity_summary/{{task}}.log",
    priority: res("sensitivity_summary", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("sensitivity_summary", "threads")
    resources:
        **rule_resources("sensitivity_summary"),
    script:
        "../scripts/sensitivity_summary.py"


rule fig_sensitivity:
    input:
        scores=sensitivity_outputs("{task}")["scores"],
        settings=sensitivity_outputs("{task}")["settings"],
    output:
        attributes=report(
            sensitivity_figures("{task}")["attributes"],
            caption="../report/sensitivity_figures.rst",
            category=SENSITIVITY_CATEGORY,
            subcategory="{task}",
        ),
        randomisation=report(
            sensitivity_figures("{task}")["randomisation"],
            caption="../report/sensitivity_figures.rst",
            category=SENSITIVITY_CATEGORY,
            subcategory="{task}",
        ),
    log:
        f"{RESULTS}/logs/fig_sensitivity/{{task}}.log",
    priority: res("fig_sensitivity", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("fig_sensitivity", "threads")
    resources:
        **rule_resources("fig_sensitivity"),
    script:
        "../scripts/fig_sensitivity.py"
