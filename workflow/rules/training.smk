# Training: one model per (task, seed) -- or, for a task with a supplied model (data.<task>.model), its checkpoints
# checked and stored in the same place -- then mean +- std over the seeds.


rule train:
    input:
        unpack(train_inputs),
    output:
        **model_outputs("{task}", "{seed}"),
    log:
        f"{RESULTS}/logs/train/{{task}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{task}}_seed{{seed}}.tsv"
    wildcard_constraints:
        task=one_of(TRAINED_TASKS),
    priority: res("train", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("train", "threads")
    resources:
        **rule_resources("train", scale_mem=True),
    params:
        cfg=lambda wc: task_setting(config, "training", wc.task),
    script:
        "../scripts/train.py"


rule import_model:
    input:
        unpack(import_inputs),
    output:
        **model_outputs("{task}", "{seed}"),
    log:
        f"{RESULTS}/logs/import_model/{{task}}_seed{{seed}}.log",
    wildcard_constraints:
        task=one_of(SUPPLIED_TASKS),
    priority: res("import_model", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("import_model", "threads")
    resources:
        **rule_resources("import_model"),
    params:
        model=lambda wc: supplied_model(config, wc.task),
    script:
        "../scripts/import_model.py"


rule model_summary:
    input:
        metrics=lambda wc: models_of(wc.task, "metrics"),
    output:
        table=f"{RESULTS}/{{task}}/models/summary.csv",
    log:
        f"{RESULTS}/logs/model_summary/{{task}}.log",
    priority: res("model_summary", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("model_summary", "threads")
    resources:
        **rule_resources("model_summary"),
    script:
        "../scripts/model_summary.py"


rule train_permuted:
    input:
        unpack(train_inputs),
    output:
        **permuted_model_outputs("{task}", "{seed}"),
    log:
        f"{RESULTS}/logs/train_permuted/{{task}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_permuted/{{task}}_seed{{seed}}.tsv"
    wildcard_constraints:
        task=one_of(TRAINED_TASKS),
    priority: res("train", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("train", "threads")
    resources:
        **rule_resources("train", scale_mem=True),
    params:
        cfg=lambda wc: task_setting(config, "training", wc.task),
    script:
        "../scripts/train.py"
