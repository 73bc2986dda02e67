"""Rule train_permuted: the data-randomisation test's model of a task, trained on permuted labels."""
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
    metrics = train_model(task, kind_of(sm.config, task), int(sm.wildcards.seed), Path(sm.input.meta).parent,
                          sm.params.cfg, out, device=sm.config["training"]["device"], threads=sm.threads,
                          permute_labels=True)
    log.info("%s seed %s, permuted labels: test %s", task, sm.wildcards.seed, metrics["test"])
