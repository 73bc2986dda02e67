# Generated tasks (the synthetic kind, SPEC §4): a tumour GAN trained on the BraTS-layout segmentations of another
# task's data, the dataset in the prepared layout (so train, heatmaps and the rest run unchanged), ground-truth
# modality importance from the two ground-truth test sets; MSFI of every heatmap against the known features is the
# plausibility rule's (plausibility.smk) with the T1C tumour as mask and this importance as φ, summarised here.


rule synthetic_gan:
    input:
        root=lambda wc: data_root(config, source_task(config, wc.task), RESULTS),
        manifest=lambda wc: input_manifest(source_task(config, wc.task)),
    output:
        generator=gan_outputs("{task}")["generator"],
        losses=gan_outputs("{task}")["losses"],
        samples=report(gan_outputs("{task}")["samples"], caption="../report/gan_samples.rst", category="Synthetic task"),
        check=gan_outputs("{task}")["check"],
    log:
        f"{RESULTS}/logs/synthetic_gan/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic_gan/{{task}}.tsv"
    wildcard_constraints:
        task=one_of(GENERATED_TASKS),
    priority: res("synthetic_gan", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("synthetic_gan", "threads")
    resources:
        **rule_resources("synthetic_gan", scale_mem=True),
    params:
        gan=lambda wc: config["data"][wc.task]["gan"],
    script:
        "../scripts/synthetic_gan.py"


rule synthetic_data:
    input:
        generator=gan_outputs("{task}")["generator"],
        check=gan_outputs("{task}")["check"],
    output:
        split=prepared("{task}")["split"],
        excluded=prepared("{task}")["excluded"],
        meta=prepared("{task}")["meta"],
        arrays=directory(prepared("{task}")["arrays"]),
        cases=f"{RESULTS}/{{task}}/data/cases.csv",
        groundtruth=directory(groundtruth_sets("{task}")),
    log:
        f"{RESULTS}/logs/synthetic_data/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic_data/{{task}}.tsv"
    wildcard_constraints:
        task=one_of(GENERATED_TASKS),
    priority: res("synthetic_data", "priority")
    conda:
        "../../envs/data.yaml"
    threads: res("synthetic_data", "threads")
    resources:
        **rule_resources("synthetic_data", scale_mem=True),
    params:
        cfg=lambda wc: synthetic_data_cfg(wc.task),
        split=lambda wc: synthetic_split(wc.task),
    script:
        "../scripts/synthetic_data.py"


rule synthetic_groundtruth:
    input:
        checkpoints=lambda wc: models_of(wc.task, "checkpoint"),
        groundtruth=groundtruth_sets("{task}"),
    output:
        accuracy=groundtruth_outputs("{task}")["accuracy"],
        phi=groundtruth_outputs("{task}")["phi"],
    log:
        f"{RESULTS}/logs/synthetic_groundtruth/{{task}}.log",
    wildcard_constraints:
        task=one_of(GENERATED_TASKS),
    priority: res("synthetic_groundtruth", "priority")
    conda:
        "../../envs/torch.yaml"
    threads: res("synthetic_groundtruth", "threads")
    resources:
        **rule_resources("synthetic_groundtruth", scale_mem=True),
    params:
        seeds=lambda wc: seeds_of(wc.task),
    script:
        "../scripts/synthetic_groundtruth.py"


rule synthetic_summary:
    input:
        tables=lambda wc: plausibility_tables(wc.task),
        accuracy=groundtruth_outputs("{task}")["accuracy"],
    output:
        summary=groundtruth_outputs("{task}")["summary"],
    log:
        f"{RESULTS}/logs/synthetic_summary/{{task}}.log",
    wildcard_constraints:
        task=one_of(GENERATED_TASKS),
    priority: res("synthetic_summary", "priority")
    conda:
        "../../envs/stats.yaml"
    threads: res("synthetic_summary", "threads")
    resources:
        **rule_resources("synthetic_summary"),
    params:
        report=GROUNDTRUTH_METRIC,
    script:
        "../scripts/synthetic_summary.py"
