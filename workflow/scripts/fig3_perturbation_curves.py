"""Rule fig3_perturbation_curves: Fig. 3 of the paper for one task."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.report.figures import fig3_perturbation_curves
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    curves = pd.concat([pd.read_csv(p) for p in sm.input.curves], ignore_index=True)
    drawn = fig3_perturbation_curves(curves, pd.read_csv(sm.input.delta_aupc), sm.wildcards.task, sm.output.figure)
    log.info("drawn:\n%s", drawn.to_string(index=False))
