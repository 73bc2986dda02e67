# G4 plausibility (SPEC §5): FP, MSFI and msfi_global of every map per (task, method) over all models (one job per
# task with plausibility.group_methods), the informativeness tests per task (Spearman with the predicted
# probability, right vs wrong) and Fig. 5. The ground-truth tasks' truthfulness score (MSFI against their known
# features) comes out of the same rule.


rule plausibility:
    input:
        unpack(lambda wc: task_maps_inputs(wc.task, [wc.method])),
        phi=lambda wc: modality_importance(wc.task),
    output:
        table=plausibility_table("{task}", "{method}"),
    log:
        f"{RESULTS}/logs/plausibility/{{task}}_{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plausibility/{{task}}_{{method}}.tsv"
    wildcard_constraints:
        task=one_of(PLAUSIBILITY_TASKS),
        method=one_of([] if GROUP_PLAUSIBILITY else ALL_METHODS),
    priority: res("plausibility", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("plausibility", "threads")
    resources:
        **rule_resources("plausibility"),
    params:
        methods=lambda wc: [wc.method],
        seeds=lambda wc: seeds_of(wc.task),
        postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
        phi_normalisation=lambda wc: task_setting(config, "plausibility.phi_normalisation", wc.task),
        dilation=lambda wc: mask_dilation(config, wc.task),
    script:
        "../scripts/plausibility.py"


for _task in PLAUSIBILITY_TASKS if GROUP_PLAUSIBILITY else []:

    rule:
        name:
            f"plausibility_{_task}"
        input:
            unpack(lambda wc: task_maps_inputs(wc.task, task_methods(config, wc.task))),
            phi=lambda wc: modality_importance(wc.task),
        output:
            **grouped_tables(plausibility_table, _task),
        log:
            f"{RESULTS}/logs/plausibility/{{task}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/plausibility/{{task}}.tsv"
        wildcard_constraints:
            task=_task,
        priority: res("plausibility", "priority")
        conda:
            "../../envs/stats.yaml"
        threads: res("plausibility", "threads")
        resources:
            **rule_resources("plausibility"),
        params:
            methods=task_methods(config, _task),
            seeds=lambda wc: seeds_of(wc.task),
            postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
            phi_normalisation=lambda wc: task_setting(config, "plausibility.phi_normalisation", wc.task),
            dilation=lambda wc: mask_dilation(config, wc.task),
        script:
            "../scripts/plausibility.py"


rule informativeness:
    input:
        tables=lambda wc: plausibility_tables(wc.task),
    output:
        table=report(
            informativeness_table("{task}"),
            caption="../report/informativeness.rst",
            category="G4 informative plausibility",
            subcategory="{task}",
        ),
    log:
        f"{RESULTS}/logs/informativeness/{{task}}.log",
    priority: res("informativeness", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("informativeness", "threads")
    resources:
        **rule_resources("informativeness"),
    params:
        score=config["plausibility"]["score"],
        level=config["statistics"]["ci_level"],
    script:
        "../scripts/informativeness.py"


rule fig5_right_wrong:
    input:
        tables=lambda wc: plausibility_tables(wc.task),
    output:
        figure=report(
            f"{RESULTS}/{{task}}/figures/fig5_right_wrong.png",
            caption="../report/fig5.rst",
            category="G4 informative plausibility",
            subcategory="{task}",
        ),
    log:
        f"{RESULTS}/logs/fig5/{{task}}.log",
    priority: res("fig5_right_wrong", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("fig5_right_wrong", "threads")
    resources:
        **rule_resources("fig5_right_wrong"),
    params:
        score=config["plausibility"]["score"],
        max_points=config["statistics"]["fig5_max_points"],
    script:
        "../scripts/fig5_right_wrong.py"
