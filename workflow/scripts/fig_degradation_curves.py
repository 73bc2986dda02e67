"""Rule fig_degradation_curves: mean MoRF, LeRF and random-order curves per method for one task."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.logs import job_log
from clinxai.report.figures import degradation_curves_figure

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    curves = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in sm.input.curves], ignore_index=True)
    means = degradation_curves_figure(curves, sm.wildcards.task, sm.output.figure)
    log.info("mean curves:\n%s", means.round(3).to_string())
