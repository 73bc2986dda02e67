"""Rule heatmaps_<task> (heatmaps.group_methods): every unsharded method on one model's test cases in one job."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.attribution.run import run_heatmaps_model
from clinxai.logs import job_log

with job_log(snakemake.log[0]):
    sm = snakemake
    methods = sm.params.methods
    run_heatmaps_model(sm.wildcards.task, int(sm.wildcards.seed), methods, sm.input.checkpoint, sm.input.predictions,
                       sm.input.arrays.rsplit("/", 1)[0], sm.input.masks, sm.params.cfg,
                       [(getattr(sm.output, f"maps_{m}"), getattr(sm.output, f"table_{m}")) for m in methods],
                       threads=sm.threads, device=sm.params.device)
