"""Rule modality_shapley: v(c) on every modality subset and exact Shapley values, per model of a task."""
import json
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.logs import job_log
from clinxai.truthfulness import modality_names, run_modality_shapley

with job_log(snakemake.log[0]):
    sm = snakemake
    names = modality_names(sm.wildcards.task, json.loads(Path(sm.input.meta).read_text()))
    run_modality_shapley(sm.wildcards.task, sm.params.seeds, sm.input.checkpoints, sm.input.predictions,
                         Path(sm.input.arrays).parent, sm.params.cfg, names, sm.output.subsets, sm.output.phi,
                         threads=sm.threads, device=sm.params.device)
