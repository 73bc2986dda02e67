# Saliency cards (issue 21): a card per method and task generated from the measurements (seed 004's structure), a
# comparison page per task and the method chooser by the configured priorities. Torch-free and quick.


rule saliency_cards:
    input:
        metrics=STATISTICS["metrics"],
        nemenyi=STATISTICS["nemenyi"],
        per_model=STATISTICS["per_model"],
        timing=timing_tables(),
        informativeness=[informativeness_table(t) for t in PLAUSIBILITY_TASKS],
        versions=f"{RESULTS}/report/versions.csv",
        config=f"{RESULTS}/report/config.yaml",
    output:
        **cards_outputs(),
    log:
        f"{RESULTS}/logs/saliency_cards.log",
    priority: res("saliency_cards", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("saliency_cards", "threads")
    resources:
        **rule_resources("saliency_cards"),
    params:
        tasks=TASKS,
        plausibility_tasks=PLAUSIBILITY_TASKS,
        methods={t: task_methods(config, t) for t in TASKS},
        params={t: task_setting(config, "heatmaps.params", t) for t in TASKS},
        priorities=config["cards"]["priorities"],
        alpha=config["statistics"]["nemenyi_alpha"],
        g5_seconds=config["scorecard"]["G5"]["max_seconds"],
    script:
        "../scripts/saliency_cards.py"
