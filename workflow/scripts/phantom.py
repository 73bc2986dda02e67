"""Rules phantom_brats and phantom_mrnet: a phantom dataset in a real dataset's on-disk layout."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.data.phantoms import write_phantom
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    summary = write_phantom(sm.params.dataset, sm.output.root, sm.params.phantom, workers=sm.threads)
    log.info("wrote %s to %s", summary, sm.output.root)
