"""Rules heatmaps, heatmaps_<task> (heatmaps.group_methods) and heatmaps_shard: one method, or every unsharded
method, on (a shard of) one model's test cases."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.attribution.run import run_heatmaps
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]):
    sm = snakemake
    task, methods = sm.wildcards.task, sm.params.methods

    def output(key, method):  # maps_<method> in the grouped rule, maps in the per-method ones
        return getattr(sm.output, f"{key}_{method}", None) or getattr(sm.output, key)

    run_heatmaps(task, kind_of(sm.config, task), int(sm.wildcards.seed), methods, sm.input.checkpoint,
                 sm.input.predictions, Path(sm.input.arrays).parent, sm.input.masks, sm.params.cfg,
                 [(output("maps", m), output("table", m)) for m in methods], shard=sm.params.shard,
                 n_shards=sm.params.n_shards, threads=sm.threads, device=sm.config["training"]["device"])
