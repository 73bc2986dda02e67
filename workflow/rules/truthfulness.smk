# G3 truthfulness (SPEC §4): feature-removal curves per (task, seed, method), modality Shapley values per task,
# then ΔAUPC and MI correlation tables and Fig. 3, for the tasks whose kind has feature removal.
#
# One feature_removal job covers one method on one model -- or, with truthfulness.group_methods, every method on one
# model (rule feature_removal_<task>): one process per model pays the imports, the model and the test set once.


rule feature_removal:
    input:
        unpack(lambda wc: model_maps_inputs(wc, [wc.method])),
    output:
        **removal_outputs("{task}", "{seed}", "{method}"),
    log:
        f"{RESULTS}/logs/feature_removal/{{task}}_seed{{seed}}_{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/feature_removal/{{task}}_seed{{seed}}_{{method}}.tsv"
    wildcard_constraints:
        task=one_of(REMOVAL_TASKS),
        method=one_of([] if GROUP_REMOVAL else ALL_METHODS),
    priority: res("feature_removal", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("feature_removal", "threads")
    resources:
        **rule_resources("feature_removal", scale_mem=True),
    params:
        cfg=lambda wc: removal_cfg(config, wc.task),
        postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
        methods=lambda wc: [wc.method],
    script:
        "../scripts/feature_removal.py"


for _task in REMOVAL_TASKS if GROUP_REMOVAL else []:

    rule:
        name:
            f"feature_removal_{_task}"
        input:
            unpack(lambda wc: model_maps_inputs(wc, task_methods(config, wc.task))),
        output:
            **grouped_removal_outputs(_task),
        log:
            f"{RESULTS}/logs/feature_removal/{{task}}_seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/feature_removal/{{task}}_seed{{seed}}.tsv"
        wildcard_constraints:
            task=_task,
        priority: res("feature_removal", "priority")
        conda:
            "../../envs/torch.yaml"
        threads: res("feature_removal", "threads")
        resources:
            **rule_resources("feature_removal", scale_mem=True),
        params:
            cfg=lambda wc: removal_cfg(config, wc.task),
            postprocess=lambda wc: task_postprocess_cfg(config, wc.task),
            methods=task_methods(config, _task),
        script:
            "../scripts/feature_removal.py"


rule modality_shapley:
    input:
        checkpoints=lambda wc: models_of(wc.task, "checkpoint"),
        predictions=lambda wc: models_of(wc.task, "predictions"),
        meta=lambda wc: prepared(wc.task)["meta"],
        arrays=lambda wc: prepared(wc.task)["arrays"],
    output:
        **shapley_outputs("{task}"),
    log:
        f"{RESULTS}/logs/modality_shapley/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/modality_shapley/{{task}}.tsv"
    wildcard_constraints:
        task=one_of(REMOVAL_TASKS),
    priority: res("modality_shapley", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("modality_shapley", "threads")
    resources:
        **rule_resources("modality_shapley", scale_mem=True),
    params:
        seeds=lambda wc: seeds_of(wc.task),
        cfg=lambda wc: shapley_cfg(wc.task),
    script:
        "../scripts/modality_shapley.py"


rule truthfulness_summary:
    input:
        curves=lambda wc: all_removal_outputs(wc.task, "curves"),
        sums=lambda wc: all_removal_outputs(wc.task, "sums"),
        phi=lambda wc: shapley_outputs(wc.task)["phi"],
        meta=lambda wc: prepared(wc.task)["meta"],
    output:
        **truthfulness_outputs("{task}"),
    log:
        f"{RESULTS}/logs/truthfulness_summary/{{task}}.log",
    wildcard_constraints:
        task=one_of(REMOVAL_TASKS),
    priority: res("truthfulness_summary", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("truthfulness_summary", "threads")
    resources:
        **rule_resources("truthfulness_summary"),
    script:
        "../scripts/truthfulness_summary.py"


rule fig3_perturbation_curves:
    input:
        curves=lambda wc: all_removal_outputs(wc.task, "curves"),
        delta_aupc=lambda wc: truthfulness_outputs(wc.task)["delta_aupc"],
    output:
        figure=report(
            f"{RESULTS}/{{task}}/figures/fig3_perturbation_curves.png",
            caption="../report/fig3.rst",
            category="G3 truthfulness",
            subcategory="{task}",
        ),
    log:
        f"{RESULTS}/logs/fig3/{{task}}.log",
    wildcard_constraints:
        task=one_of(REMOVAL_TASKS),
    priority: res("fig3_perturbation_curves", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("fig3_perturbation_curves", "threads")
    resources:
        **rule_resources("fig3_perturbation_curves"),
    script:
        "../scripts/fig3_perturbation_curves.py"
