# G3 truthfulness (SPEC §4): feature-removal curves per (task, seed, method), modality Shapley values per task,
# then ΔAUPC and MI correlation tables and Fig. 3.
#
# One feature_removal job covers one method on one model -- or, with truthfulness.group_methods, every method on one
# model (rule feature_removal_<task>): one process per model pays the imports, the model and the test set once.

from clinxai.config import removal_cfg

GROUP_REMOVAL = config["truthfulness"].get("group_methods", False)


def truth_dir(task):
    return f"{RESULTS}/{task}/truthfulness"


def removal_outputs(task, seed, method):
    return {
        "curves": f"{truth_dir(task)}/removal/seed{seed}/{method}.csv",
        "sums": f"{truth_dir(task)}/modality_sums/seed{seed}/{method}.csv",
    }


def all_removal_outputs(task, key):
    return [removal_outputs(task, s, m)[key] for s in SEEDS for m in task_methods(config, task)]


def shapley_outputs(task):
    return {"subsets": f"{truth_dir(task)}/shapley_subsets.csv", "phi": f"{truth_dir(task)}/shapley.csv"}


def truthfulness_outputs(task):
    return {
        "delta_aupc": f"{truth_dir(task)}/delta_aupc.csv",
        "mi_correlation": f"{truth_dir(task)}/mi_correlation.csv",
        "summary": f"{truth_dir(task)}/summary.csv",
    }


def models_of(task, key):
    return [model_outputs(task, s)[key] for s in SEEDS]


def removal_inputs(wc, methods):
    return {
        "checkpoint": model_outputs(wc.task, wc.seed)["checkpoint"],
        "predictions": model_outputs(wc.task, wc.seed)["predictions"],
        "meta": prepared(wc.task)["meta"],
        "arrays": prepared(wc.task)["arrays"],
        **{f"maps_{m}": heatmap_outputs(wc.task, wc.seed, m)["maps"] for m in methods},
    }


REMOVAL_PARAMS = dict(
    cfg=lambda wc: removal_cfg(config["truthfulness"], wc.task),
    postprocess=lambda wc: task_postprocess_cfg(config["heatmaps"]["postprocess"], wc.task),
    device=config["training"]["device"],
)


rule feature_removal:
    input:
        unpack(lambda wc: removal_inputs(wc, [wc.method])),
    output:
        **removal_outputs("{task}", "{seed}", "{method}"),
    wildcard_constraints:
        task="|".join(REMOVAL_TASKS) or "(?!x)x",
        method=methods_regex([] if GROUP_REMOVAL else ALL_METHODS),
    params:
        **REMOVAL_PARAMS,
        methods=lambda wc: [wc.method],
    log:
        f"{RESULTS}/logs/feature_removal/{{task}}_seed{{seed}}_{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/feature_removal/{{task}}_seed{{seed}}_{{method}}.tsv"
    threads: res("feature_removal", "threads")
    resources:
        mem_mb=lambda wc, attempt: res("feature_removal", "mem_mb") * attempt,
        runtime=res("feature_removal", "runtime"),
        gpu=res("feature_removal", "gpu"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/feature_removal.py"


for _task in REMOVAL_TASKS if GROUP_REMOVAL else []:

    rule:
        name:
            f"feature_removal_{_task}"
        input:
            unpack(lambda wc: removal_inputs(wc, task_methods(config, wc.task))),
        output:
            **{f"{k}_{m}": p for m in task_methods(config, _task) for k, p in removal_outputs("{task}", "{seed}", m).items()},
        wildcard_constraints:
            task=_task,
        params:
            **REMOVAL_PARAMS,
            methods=task_methods(config, _task),
        log:
            f"{RESULTS}/logs/feature_removal/{{task}}_seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/feature_removal/{{task}}_seed{{seed}}.tsv"
        threads: res("feature_removal", "threads")
        resources:
            mem_mb=lambda wc, attempt: res("feature_removal", "mem_mb") * attempt,
            runtime=res("feature_removal", "runtime"),
            gpu=res("feature_removal", "gpu"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/feature_removal.py"


rule modality_shapley:
    input:
        checkpoints=lambda wc: models_of(wc.task, "checkpoint"),
        predictions=lambda wc: models_of(wc.task, "predictions"),
        meta=lambda wc: prepared(wc.task)["meta"],
        arrays=lambda wc: prepared(wc.task)["arrays"],
    wildcard_constraints:
        task="glioma|knee",
    output:
        **shapley_outputs("{task}"),
    params:
        seeds=SEEDS,
        cfg=lambda wc: {k: removal_cfg(config["truthfulness"], wc.task)[k] for k in ("metric", "batch_size", "fast")},
        device=config["training"]["device"],
    log:
        f"{RESULTS}/logs/modality_shapley/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/modality_shapley/{{task}}.tsv"
    threads: res("modality_shapley", "threads")
    resources:
        mem_mb=lambda wc, attempt: res("modality_shapley", "mem_mb") * attempt,
        runtime=res("modality_shapley", "runtime"),
        gpu=res("modality_shapley", "gpu"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/modality_shapley.py"


rule truthfulness_summary:
    input:
        curves=lambda wc: all_removal_outputs(wc.task, "curves"),
        sums=lambda wc: all_removal_outputs(wc.task, "sums"),
        phi=lambda wc: shapley_outputs(wc.task)["phi"],
        meta=lambda wc: prepared(wc.task)["meta"],
    wildcard_constraints:
        task="glioma|knee",
    output:
        **truthfulness_outputs("{task}"),
    log:
        f"{RESULTS}/logs/truthfulness_summary/{{task}}.log",
    threads: res("truthfulness_summary", "threads")
    resources:
        **rule_resources("truthfulness_summary"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/truthfulness_summary.py"


rule fig3_perturbation_curves:
    input:
        curves=lambda wc: all_removal_outputs(wc.task, "curves"),
        delta_aupc=lambda wc: truthfulness_outputs(wc.task)["delta_aupc"],
    wildcard_constraints:
        task="glioma|knee",
    output:
        figure=report(
            f"{RESULTS}/{{task}}/figures/fig3_perturbation_curves.png",
            caption="../report/fig3.rst",
            category="G3 truthfulness",
            subcategory="{task}",
        ),
    log:
        f"{RESULTS}/logs/fig3/{{task}}.log",
    threads: res("fig3_perturbation_curves", "threads")
    resources:
        **rule_resources("fig3_perturbation_curves"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/fig3_perturbation_curves.py"
