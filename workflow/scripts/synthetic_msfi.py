"""Rule synthetic_msfi: FP, MSFI and msfi_global of one method's maps on every synthetic model."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.logs import job_log
from clinxai.synthetic_truth import run_msfi

with job_log(snakemake.log[0]):
    sm = snakemake
    run_msfi(sm.wildcards.method, sm.params.seeds, sm.input.maps, sm.input.predictions, sm.input.phi,
             Path(sm.input.arrays).parent, sm.params.postprocess, sm.params.phi_normalisation, sm.output.table)
