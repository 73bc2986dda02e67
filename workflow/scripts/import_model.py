"""Rule import_model: one checkpoint of the user's own model (data.<task>.model) checked against the prepared task
and stored like a trained model's."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.logs import job_log
from clinxai.plugin import import_model
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task = sm.wildcards.task
    out = {k: sm.output[k] for k in ("checkpoint", "history", "predictions", "metrics")}
    metrics = import_model(task, kind_of(sm.config, task), int(sm.wildcards.seed), Path(sm.input.meta).parent,
                           sm.params.model, out, device=sm.config["training"]["device"])
    log.info("%s model %s (%s): test %s", task, sm.wildcards.seed, metrics["supplied"], metrics["test"])
