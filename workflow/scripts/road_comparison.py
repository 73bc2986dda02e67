"""Rule road_comparison: ΔAUPC per method with the task's replacement and with ROAD, and Kendall τ-b between the
two method rankings."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.analysis.localisation import road_comparison
from clinxai.io import save_csv
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    curves = pd.concat([pd.read_csv(p) for p in sm.input.curves], ignore_index=True)
    if sm.input.removal:  # feature removal's own curves are the comparison's own-replacement side
        own = pd.concat([pd.read_csv(p) for p in sm.input.removal], ignore_index=True)
        own = own[~own["replacement"].isin(curves["replacement"])]  # a task that removes with ROAD already
        curves = pd.concat([curves, own.assign(n_cases=curves["n_cases"].max())], ignore_index=True)
    summary, kendall = road_comparison(curves)
    save_csv(sm.output.comparison, summary)
    save_csv(sm.output.kendall, kendall)
    log.info("\n%s\n%s", summary.to_string(index=False), kendall.to_string(index=False))
