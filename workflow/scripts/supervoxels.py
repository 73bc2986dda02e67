"""Rule supervoxels: SLIC feature masks of every test case of a task."""
import sys

import pandas as pd

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.attribution.supervoxels import compute_masks, save_masks
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task = sm.wildcards.task
    split = pd.read_csv(sm.input.split, dtype={"case": str})
    cases = list(split.loc[split["split"] == "test", "case"])
    data_dir = sm.input.arrays.rsplit("/", 1)[0]
    masks = compute_masks(task, data_dir, cases, sm.params.cfg, workers=sm.threads)
    save_masks(sm.output.masks, masks, task)
    n = [int((m["specific"] if task != "knee" else m["specific"][-1]).max()) + 1 for m in masks.values()]
    log.info("%s: %d test cases, %d-%d modality-specific features per case", task, len(cases), min(n), max(n))
