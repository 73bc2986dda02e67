"""Rule localisation: RMA, RRA, VxAP, MaxF1, AUROC and the pointing game of one method's maps on every model of a
task, per case, pooled over modalities and per modality (long format)."""
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
    table = run_localisation(task, kind_of(sm.config, task), sm.wildcards.method, sm.params.seeds, sm.input.maps,
                             sm.input.predictions, data_dir, modality_names(read_meta(data_dir)),
                             sm.params.postprocess, sm.params.dilation, sm.output.table)
    pooled = table[table["modality"] == "all"].groupby("metric")["value"].mean()
    log.info("%s %s, pooled means over %d maps:\n%s", task, sm.wildcards.method, table["case"].size // max(1, len(
        table["metric"].unique())), pooled.to_string())
