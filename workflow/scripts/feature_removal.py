"""Rule feature_removal: one method's cumulative feature-removal curves on every model of a task."""
import json
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.logs import job_log
from clinxai.truthfulness import modality_names, run_feature_removal

with job_log(snakemake.log[0]):
    sm = snakemake
    names = modality_names(sm.wildcards.task, json.loads(Path(sm.input.meta).read_text()))
    run_feature_removal(sm.wildcards.task, sm.wildcards.method, sm.params.seeds, sm.input.checkpoints,
                        sm.input.predictions, sm.input.maps, Path(sm.input.arrays).parent, sm.params.cfg,
                        sm.params.postprocess, names, sm.output.curves, sm.output.sums, threads=sm.threads,
                        device=sm.params.device)
