"""Rule export_heatmaps: NIfTI per method and modality with the source affine, and Fig. 2-style PNG montages."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.logs import job_log
from clinxai.report.export import export_heatmaps
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task = sm.wildcards.task
    maps = dict(zip(sm.params.methods, sm.input.maps))
    written = export_heatmaps(task, kind_of(sm.config, task), maps, sm.input.predictions, Path(sm.input.arrays).parent,
                              sm.input.meta, sm.params.cases, sm.params.postprocess, sm.output.root)
    log.info("wrote %d files", written)
