# The synthetic task (SPEC §4): a tumour GAN trained on BraTS-layout segmentations, the synthetic dataset in the
# prepared layout (so train, heatmaps and the rest run unchanged), ground-truth modality importance from the two
# ground-truth test sets; MSFI of every heatmap against the known features is the plausibility rule's (plausibility.smk)
# with the T1C tumour as mask and this importance as φ, summarised here.


def synthetic_dir(*parts):
    return "/".join([f"{RESULTS}/synthetic", *parts])


GAN_OUTPUTS = {
    "generator": synthetic_dir("gan", "generator.pt"),
    "losses": synthetic_dir("gan", "losses.csv"),
    "samples": synthetic_dir("gan", "samples.png"),
    "check": synthetic_dir("gan", "check.json"),
}
GROUNDTRUTH = synthetic_dir("data", "groundtruth")
SYNTHETIC_TRUTH = {
    "accuracy": synthetic_dir("truthfulness", "groundtruth_accuracy.csv"),
    "phi": synthetic_dir("truthfulness", "modality_importance.csv"),
    "summary": synthetic_dir("truthfulness", "msfi_summary.csv"),
}


rule synthetic_gan:
    input:
        root=data_root("glioma"),
    output:
        generator=GAN_OUTPUTS["generator"],
        losses=GAN_OUTPUTS["losses"],
        samples=report(GAN_OUTPUTS["samples"], caption="../report/gan_samples.rst", category="Synthetic task"),
        check=GAN_OUTPUTS["check"],
    params:
        gan=config["data"]["synthetic"]["gan"],
        device=config["training"]["device"],
    log:
        f"{RESULTS}/logs/synthetic_gan.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic_gan.tsv"
    threads: res("synthetic_gan", "threads")
    resources:
        **rule_resources("synthetic_gan", scale_mem=True),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/synthetic_gan.py"


rule synthetic_data:
    input:
        generator=GAN_OUTPUTS["generator"],
        check=GAN_OUTPUTS["check"],
    output:
        split=synthetic_dir("data", "split.csv"),
        excluded=synthetic_dir("data", "excluded.csv"),
        meta=synthetic_dir("data", "meta.json"),
        arrays=directory(synthetic_dir("data", "arrays")),
        cases=synthetic_dir("data", "cases.csv"),
        groundtruth=directory(GROUNDTRUTH),
    params:
        cfg={k: v for k, v in config["data"]["synthetic"].items() if k not in ("gan", "split_fractions")},
        # its own fractions if set: many training slices, a test set the heatmap methods can afford
        split={**config["split"], "fractions": config["data"]["synthetic"].get("split_fractions")
               or config["split"]["fractions"]},
    log:
        f"{RESULTS}/logs/synthetic_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic_data.tsv"
    threads: res("synthetic_data", "threads")
    resources:
        **rule_resources("synthetic_data", scale_mem=True),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/synthetic_data.py"


rule synthetic_groundtruth:
    input:
        checkpoints=[model_outputs("synthetic", s)["checkpoint"] for s in SEEDS],
        groundtruth=GROUNDTRUTH,
    output:
        accuracy=SYNTHETIC_TRUTH["accuracy"],
        phi=SYNTHETIC_TRUTH["phi"],
    params:
        seeds=SEEDS,
        device=config["training"]["device"],
    log:
        f"{RESULTS}/logs/synthetic_groundtruth.log",
    threads: res("synthetic_groundtruth", "threads")
    resources:
        **rule_resources("synthetic_groundtruth", scale_mem=True),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/synthetic_groundtruth.py"


rule synthetic_summary:
    input:
        tables=lambda wc: [plausibility_table("synthetic", m) for m in task_methods(config, "synthetic")],
        accuracy=SYNTHETIC_TRUTH["accuracy"],
    output:
        summary=SYNTHETIC_TRUTH["summary"],
    params:
        report=config["truthfulness"]["synthetic"]["report"],
    log:
        f"{RESULTS}/logs/synthetic_summary.log",
    threads: res("synthetic_summary", "threads")
    resources:
        **rule_resources("synthetic_summary"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/synthetic_summary.py"
