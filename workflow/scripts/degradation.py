"""Rules degradation and degradation_<task> (localisation.degradation.group_methods): MoRF, LeRF and random-order
curves of one model for one method or for every method."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.evaluation.degradation import run_degradation
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]):
    sm = snakemake
    task, methods = sm.wildcards.task, sm.params.methods
    outputs = [getattr(sm.output, f"curves_{m}", None) or sm.output.curves for m in methods]
    run_degradation(task, kind_of(sm.config, task), int(sm.wildcards.seed), methods, sm.input.checkpoint,
                    sm.input.predictions, [getattr(sm.input, f"maps_{m}") for m in methods],
                    Path(sm.input.arrays).parent, sm.params.cfg, sm.params.postprocess, outputs, threads=sm.threads,
                    device=sm.config["training"]["device"])
