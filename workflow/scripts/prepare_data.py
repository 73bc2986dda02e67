"""Rule prepare_data: validate, resize, z-score and split one task's dataset."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 - injected by Snakemake
from clinxai.data.prepare import prepare  # noqa: E402
from clinxai.logs import job_log  # noqa: E402

with job_log(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    meta = prepare(sm.wildcards.task, sm.params.data, sm.params.split, dict(sm.output), threads=sm.threads)
    log.info("prepared %s: %s", sm.wildcards.task, meta)
