"""Rule merge_heatmaps: join the case shards of one (task, seed, method)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.attribution.run import merge_shards
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    table = merge_shards(sm.input.maps, sm.input.tables, sm.output.maps, sm.output.table)
    log.info("merged %d shards: %d cases", len(sm.input.maps), len(table))
