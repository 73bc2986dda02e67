"""Rule road_removal: feature-removal curves of every method on one model, with the task's replacement and with
ROAD's noisy linear imputation, on the configured subset of test cases."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.evaluation.truthfulness import run_road_removal
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]):
    sm = snakemake
    task, methods = sm.wildcards.task, sm.params.methods
    run_road_removal(task, kind_of(sm.config, task), int(sm.wildcards.seed), methods, sm.input.checkpoint,
                     sm.input.predictions, [getattr(sm.input, f"maps_{m}") for m in methods],
                     Path(sm.input.arrays).parent, sm.params.cfg, sm.params.postprocess, sm.output.curves,
                     threads=sm.threads, device=sm.config["training"]["device"])
