# Statistics across methods (SPEC §6): per task and metric the method means, Friedman + Nemenyi, the
# "significantly better than the others" mark and critical-difference diagrams; Kendall τ-b between rankings.


rule method_statistics:
    input:
        delta_aupc=[truthfulness_outputs(t)["delta_aupc"] for t in REMOVAL_TASKS],
        mi_correlation=[truthfulness_outputs(t)["mi_correlation"] for t in REMOVAL_TASKS],
        plausibility=[p for t in PLAUSIBILITY_TASKS for p in plausibility_tables(t)],
        localisation_scores=[localisation_outputs(t)["scores"] for t in TASKS],
        ds_c=[localisation_outputs(t)["ds_c"] for t in TASKS],
        sensitivity_scores=[sensitivity_outputs(t)["scores"] for t in TASKS],
    output:
        metrics=STATISTICS["metrics"],
        friedman=report(STATISTICS["friedman"], caption="../report/friedman.rst", category=STATS_CATEGORY),
        nemenyi=STATISTICS["nemenyi"],
        per_model=STATISTICS["per_model"],
        kendall=report(STATISTICS["kendall"], caption="../report/kendall.rst", category=STATS_CATEGORY),
        cd_plots=report(
            f"{RESULTS}/figures/critical_difference.png", caption="../report/cd_plots.rst", category=STATS_CATEGORY
        ),
        cd_localisation=report(
            f"{RESULTS}/figures/critical_difference_localisation.png",
            caption="../report/cd_plots.rst",
            category=LOCALISATION_CATEGORY,
        ),
        cd_sensitivity=report(
            f"{RESULTS}/figures/critical_difference_sensitivity.png",
            caption="../report/cd_plots.rst",
            category=SENSITIVITY_CATEGORY,
        ),
    log:
        f"{RESULTS}/logs/method_statistics.log",
    priority: res("method_statistics", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("method_statistics", "threads")
    resources:
        **rule_resources("method_statistics"),
    params:
        tasks=TASK_RECORDS,
        synthetic_metric=GROUNDTRUTH_METRIC,
        score=config["plausibility"]["score"],
        alpha=config["statistics"]["nemenyi_alpha"],
        cd_alpha=config["statistics"]["cd_alpha"],
        max_missing=config["statistics"]["max_missing"],
    script:
        "../scripts/method_statistics.py"
