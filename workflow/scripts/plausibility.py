"""Rule plausibility: FP, MSFI and msfi_global of one method's maps on every model of a task, per case."""
import json
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.logs import job_log
from clinxai.plausibility import run_plausibility
from clinxai.attribution.maps import modality_names

with job_log(snakemake.log[0]):
    sm = snakemake
    names = modality_names(sm.wildcards.task, json.loads(Path(sm.input.meta).read_text()))
    run_plausibility(sm.wildcards.task, sm.wildcards.method, sm.params.seeds, sm.input.maps, sm.input.predictions,
                     sm.input.phi, Path(sm.input.arrays).parent, names, sm.params.postprocess,
                     sm.params.phi_normalisation, sm.params.dilation, sm.output.table)
