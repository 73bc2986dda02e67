"""Rules feature_removal and feature_removal_<task> (truthfulness.group_methods): cumulative feature-removal curves
of one model for one method or for every method."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.data.cases import modality_names, read_meta
from clinxai.evaluation.truthfulness import run_feature_removal
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]):
    sm = snakemake
    task, methods = sm.wildcards.task, sm.params.methods

    def output(kind, method):  # curves_<method> in the grouped rule, curves in the per-method one
        return getattr(sm.output, f"{kind}_{method}", None) or getattr(sm.output, kind)

    data_dir = Path(sm.input.arrays).parent
    maps = [getattr(sm.input, f"maps_{m}") for m in methods]
    run_feature_removal(task, kind_of(sm.config, task), int(sm.wildcards.seed), methods, sm.input.checkpoint,
                        sm.input.predictions, maps, data_dir, sm.params.cfg, sm.params.postprocess,
                        modality_names(read_meta(data_dir)),
                        [(output("curves", m), output("sums", m)) for m in methods], threads=sm.threads,
                        device=sm.config["training"]["device"])
