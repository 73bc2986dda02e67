"""Rules train (one model for a (task, seed)) and train_permuted (the same on permuted labels: the data-randomisation
test's model)."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.logs import job_log
from clinxai.tasks import kind_of
from clinxai.training import train_model

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task = sm.wildcards.task
    out = {k: sm.output[k] for k in ("checkpoint", "history", "predictions", "metrics")}
    permute = sm.rule == "train_permuted"
    metrics = train_model(task, kind_of(sm.config, task), int(sm.wildcards.seed), Path(sm.input.meta).parent,
                          sm.params.cfg, out, device=sm.config["training"]["device"], threads=sm.threads,
                          permute_labels=permute)
    log.info("%s seed %s%s: test %s", task, sm.wildcards.seed, ", permuted labels" * permute, metrics["test"])
