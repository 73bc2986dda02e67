"""Rules heatmaps / heatmaps_shard: one method on (a shard of) one model's test cases."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.attribution.run import run_heatmaps
from clinxai.logs import job_log

with job_log(snakemake.log[0]):
    sm = snakemake
    run_heatmaps(sm.wildcards.task, int(sm.wildcards.seed), sm.wildcards.method, sm.input.checkpoint,
                 sm.input.predictions, sm.input.arrays.rsplit("/", 1)[0], sm.input.masks, sm.params.cfg,
                 sm.output.maps, sm.output.table, shard=sm.params.shard, n_shards=sm.params.n_shards,
                 threads=sm.threads, device=sm.params.device)
