"""Rule train: one model for a (task, seed)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 - injected by Snakemake
from clinxai.logs import job_log  # noqa: E402
from clinxai.training import train_model  # noqa: E402

with job_log(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    data_dir = sm.input.meta.rsplit("/", 1)[0]
    out = {k: sm.output[k] for k in ("checkpoint", "history", "predictions", "metrics")}
    metrics = train_model(sm.wildcards.task, int(sm.wildcards.seed), data_dir, sm.params.cfg, out,
                          device=sm.params.device, threads=sm.threads)
    log.info("%s seed %s: test %s", sm.wildcards.task, sm.wildcards.seed, metrics["test"])
