"""Rules plausibility and plausibility_<task> (plausibility.group_methods): FP, MSFI and msfi_global of one
method's maps, or of every method's, on every model of a task, per case."""
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
    names, masks_of = modality_names(read_meta(data_dir)), {}  # each case's masks built once for every method
    for method in sm.params.methods:
        maps = getattr(sm.input, f"maps_{method}")
        out = getattr(sm.output, f"table_{method}", None) or sm.output.table
        run_plausibility(task, kind_of(sm.config, task), method, sm.params.seeds, maps, sm.input.predictions,
                         sm.input.phi, data_dir, names, sm.params.postprocess, sm.params.phi_normalisation,
                         sm.params.dilation, out, masks_of)
