"""Rules localisation and localisation_<task> (localisation.group_methods): RMA, RRA, VxAP, MaxF1, AUROC and the
pointing game of one method's maps, or of every method's, on every model of a task, per case, pooled over
modalities and per modality (long format)."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.data.cases import modality_names, read_meta
from clinxai.evaluation.localisation import run_localisation
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task, data_dir = sm.wildcards.task, Path(sm.input.arrays).parent
    names, masks_of = modality_names(read_meta(data_dir)), {}  # each case's masks built once for every method
    for method in sm.params.methods:
        maps = getattr(sm.input, f"maps_{method}")
        out = getattr(sm.output, f"table_{method}", None) or sm.output.table
        table = run_localisation(task, kind_of(sm.config, task), method, sm.params.seeds, maps, sm.input.predictions,
                                 data_dir, names, sm.params.postprocess, sm.params.dilation, out, masks_of)
        pooled = table[table["modality"] == "all"].groupby("metric")["value"].mean()
        log.info("%s %s, pooled means over %d maps:\n%s", task, method, table["case"].size // max(1, len(
            table["metric"].unique())), pooled.to_string())
