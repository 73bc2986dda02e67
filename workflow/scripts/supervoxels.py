"""Rule supervoxels: SLIC feature masks of every test case of a task."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.attribution.supervoxels import compute_masks, n_features, save_masks
from clinxai.logs import job_log
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task = sm.wildcards.task
    kind = kind_of(sm.config, task)
    split = pd.read_csv(sm.input.split, dtype={"case": str})
    cases = list(split.loc[split["split"] == "test", "case"])
    masks = compute_masks(kind, Path(sm.input.arrays).parent, cases, sm.params.cfg, workers=sm.threads)
    save_masks(sm.output.masks, masks, kind.layout)
    n = [n_features(m, kind.layout) for m in masks.values()]
    log.info("%s: %d test cases, %d-%d modality-specific features per case", task, len(cases), min(n), max(n))
