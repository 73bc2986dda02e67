"""Rule plausibility: FP, MSFI and msfi_global of one method's maps on every model of a task, per case."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.data.cases import modality_names, read_meta
from clinxai.evaluation.plausibility import run_plausibility
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]):
    sm = snakemake
    task, data_dir = sm.wildcards.task, Path(sm.input.arrays).parent
    run_plausibility(task, kind_of(sm.config, task), sm.wildcards.method, sm.params.seeds, sm.input.maps,
                     sm.input.predictions, sm.input.phi, data_dir, modality_names(read_meta(data_dir)),
                     sm.params.postprocess, sm.params.phi_normalisation, sm.params.dilation, sm.output.table)
