"""Rule localisation_summary: the per-case localisation and degradation scores of one task (long format, with each
metric's better direction), DS_c per model and method, and the per-method summary."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.analysis.localisation import (degradation_case_scores, ds_c_table, localisation_case_scores,
                                           method_summary)
from clinxai.io import save_csv
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    curves = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in sm.input.curves], ignore_index=True)
    parts = [degradation_case_scores(curves)]
    if sm.input.maps:
        parts.insert(0, localisation_case_scores(pd.concat([pd.read_csv(p, dtype={"case": str})
                                                            for p in sm.input.maps], ignore_index=True)))
    scores = pd.concat(parts, ignore_index=True)
    ds_c = ds_c_table(scores, sm.params.alpha)
    summary = method_summary(scores, ds_c)
    save_csv(sm.output.scores, scores)
    save_csv(sm.output.ds_c, ds_c)
    save_csv(sm.output.summary, summary)
    log.info("\n%s", summary.pivot_table(index="method", columns="metric", values="mean").round(3).to_string())
