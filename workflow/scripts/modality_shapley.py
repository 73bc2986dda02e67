"""Rule modality_shapley: v(c) on every modality subset and exact Shapley values, per model of a task."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.data.cases import modality_names, read_meta
from clinxai.evaluation.truthfulness import run_modality_shapley
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]):
    sm = snakemake
    task, data_dir = sm.wildcards.task, Path(sm.input.arrays).parent
    run_modality_shapley(task, kind_of(sm.config, task), sm.params.seeds, sm.input.checkpoints, sm.input.predictions,
                         data_dir, sm.params.cfg, modality_names(read_meta(data_dir)), sm.output.subsets,
                         sm.output.phi, threads=sm.threads, device=sm.config["training"]["device"])
