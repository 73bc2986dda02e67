# The paper's tables (results/tables), the guidelines scorecard and the run's record for the HTML report
# (`snakemake --report results/report.html`, or the README's demo command, which ends with it).


rule tables:
    input:
        metrics=STATISTICS["metrics"],
        informativeness=[informativeness_table(t) for t in PLAUSIBILITY_TASKS],
        timing=timing_tables(),
    output:
        **{f"{name}_{k}": v for name in TABLE_CAPTIONS for k, v in table_report(name).items()},
    log:
        f"{RESULTS}/logs/tables.log",
    priority: res("tables", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("tables", "threads")
    resources:
        **rule_resources("tables"),
    params:
        tasks=TASK_RECORDS,
        synthetic_metric=GROUNDTRUTH_METRIC,
    script:
        "../scripts/tables.py"


rule scorecard:
    input:
        metrics=STATISTICS["metrics"],
        informativeness=[informativeness_table(t) for t in PLAUSIBILITY_TASKS],
        timing=timing_tables(),
    output:
        csv=report(f"{RESULTS}/tables/scorecard.csv", caption="../report/scorecard.rst", category="Scorecard"),
        md=f"{RESULTS}/tables/scorecard.md",
        figure=report(f"{RESULTS}/figures/scorecard.png", caption="../report/scorecard.rst", category="Scorecard"),
    log:
        f"{RESULTS}/logs/scorecard.log",
    priority: res("scorecard", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("scorecard", "threads")
    resources:
        **rule_resources("scorecard"),
    params:
        tasks=TASK_RECORDS,
        rules=config["scorecard"],
        synthetic_metric=GROUNDTRUTH_METRIC,
    script:
        "../scripts/scorecard.py"


rule run_info:
    output:
        versions=report(f"{RESULTS}/report/versions.csv", caption="../report/run_info.rst", category="Run"),
        config=report(f"{RESULTS}/report/config.yaml", caption="../report/run_info.rst", category="Run"),
    log:
        f"{RESULTS}/logs/run_info.log",
    priority: res("run_info", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("run_info", "threads")
    resources:
        **rule_resources("run_info"),
    params:
        config=config,
    script:
        "../scripts/run_info.py"


# A folder (index.html + one file per case) cannot go into the one-file HTML report: workflow.rst links it.
rule case_viewer:
    input:
        unpack(viewer_inputs),
    output:
        root=directory(f"{RESULTS}/{{task}}/viewer"),
    log:
        f"{RESULTS}/logs/case_viewer/{{task}}.log",
    priority: res("case_viewer", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("case_viewer", "threads")
    resources:
        **rule_resources("case_viewer"),
    params:
        seeds=lambda wc: seeds_of(wc.task),
        methods=lambda wc: task_methods(config, wc.task),
        cases=config["heatmaps"]["export"]["cases"],
        max_side=config["heatmaps"]["export"].get("viewer_max_side"),
        postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
        dilation=lambda wc: mask_dilation(config, wc.task),
        has_mask=lambda wc: wc.task in PLAUSIBILITY_TASKS,
        phantom=lambda wc: is_simulated(wc.task),
        title=lambda wc: task_title(config, wc.task),
    script:
        "../scripts/case_viewer.py"
