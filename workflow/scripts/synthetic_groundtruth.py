"""Rule synthetic_groundtruth: each model's accuracy on the "T1C" and "FLAIR" sets -> modality importance."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.evaluation.groundtruth import run_groundtruth
from clinxai.logs import job_log

with job_log(snakemake.log[0]):
    sm = snakemake
    run_groundtruth(sm.wildcards.task, sm.params.seeds, sm.input.checkpoints, sm.input.groundtruth,
                    sm.output.accuracy, sm.output.phi, threads=sm.threads, device=sm.config["training"]["device"])
