# Training: one model per (task, seed), then mean +- std over the seeds.


def model_outputs(task, seed):
    root = f"{RESULTS}/{task}/models/seed{seed}"
    return {
        "checkpoint": f"{root}/model.pt",
        "history": f"{root}/history.csv",
        "predictions": f"{root}/predictions.csv",
        "metrics": f"{root}/metrics.json",
    }


def train_inputs(wc):
    inputs = {k: prepared(wc.task)[k] for k in ("split", "meta", "arrays")}
    pretrained = config["training"][wc.task]["model"]["pretrained"]
    if pretrained:
        inputs["pretrained"] = pretrained
    return inputs


rule train:
    input:
        unpack(train_inputs),
    output:
        **model_outputs("{task}", "{seed}"),
    params:
        cfg=lambda wc: config["training"][wc.task],
        device=config["training"]["device"],
    log:
        f"{RESULTS}/logs/train/{{task}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{task}}_seed{{seed}}.tsv"
    threads: res("train", "threads")
    resources:
        mem_mb=lambda wc, attempt: res("train", "mem_mb") * attempt,
        runtime=res("train", "runtime"),
        gpu=res("train", "gpu"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train.py"


rule model_summary:
    input:
        metrics=lambda wc: [model_outputs(wc.task, s)["metrics"] for s in SEEDS],
    output:
        table=f"{RESULTS}/{{task}}/models/summary.csv",
    log:
        f"{RESULTS}/logs/model_summary/{{task}}.log",
    threads: res("model_summary", "threads")
    resources:
        **rule_resources("model_summary"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/model_summary.py"
