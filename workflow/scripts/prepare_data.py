"""Rule prepare_data: validate, resize, z-score and split one task's dataset."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.data.prepare import prepare
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task = sm.wildcards.task
    meta = prepare(task, kind_of(sm.config, task).dataset, sm.params.data, sm.params.split, dict(sm.output),
                   threads=sm.threads)
    log.info("prepared %s: %s", task, meta)
