"""Rules feature_removal and feature_removal_<task> (truthfulness.group_methods): cumulative feature-removal curves
of one model for one method or for every method."""
import json
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.logs import job_log
from clinxai.truthfulness import modality_names, run_feature_removal

with job_log(snakemake.log[0]):
    sm = snakemake
    methods = sm.params.methods

    def output(kind, method):  # curves_<method> in the grouped rule, curves in the per-method one
        return getattr(sm.output, f"{kind}_{method}", None) or getattr(sm.output, kind)

    names = modality_names(sm.wildcards.task, json.loads(Path(sm.input.meta).read_text()))
    maps = [getattr(sm.input, f"maps_{m}") for m in methods]
    run_feature_removal(sm.wildcards.task, int(sm.wildcards.seed), methods, sm.input.checkpoint,
                        sm.input.predictions, maps, Path(sm.input.arrays).parent, sm.params.cfg, sm.params.postprocess,
                        names,
                        [(output("curves", m), output("sums", m)) for m in methods], threads=sm.threads,
                        device=sm.params.device)
