"""Rules sensitivity and sensitivity_<task> (sensitivity.group_methods): every sensitivity attribute of one model's
maps, for one method or for every method."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.evaluation.sensitivity import run_sensitivity
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]):
    sm = snakemake
    task, methods, heat = sm.wildcards.task, sm.params.methods, sm.params.heatmaps
    outputs = [getattr(sm.output, f"table_{m}", None) or sm.output.table for m in methods]
    heat_cfg = {"params": heat["params"][task], "batching": heat["batching"], "supervoxels": sm.params.supervoxels}
    run_sensitivity(task, kind_of(sm.config, task), int(sm.wildcards.seed), methods, sm.input.checkpoint,
                    sm.input.predictions, Path(sm.input.arrays).parent, sm.input.masks, sm.params.cfg, heat_cfg,
                    heat["postprocess"], outputs, permuted=sm.input.get("permuted"), threads=sm.threads,
                    device=sm.config["training"]["device"])
