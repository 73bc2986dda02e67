"""Rule export_heatmaps: NIfTI per method and modality with the source affine, and Fig. 2-style PNG montages."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.attribution.export import export_heatmaps
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    written = export_heatmaps(sm.wildcards.task, dict(zip(sm.params.methods, sm.input.maps)), sm.input.predictions,
                              sm.input.arrays.rsplit("/", 1)[0], sm.input.meta, sm.params.cases, sm.params.postprocess,
                              sm.output.root)
    log.info("wrote %d files", written)
