"""Rule fig5_right_wrong: Fig. 5, the plausibility score of right and wrong predictions per method."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.report.figures import fig5_right_wrong
from clinxai.logs import job_log

with job_log(snakemake.log[0]):
    sm = snakemake
    table = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in sm.input.tables], ignore_index=True)
    fig5_right_wrong(table, sm.wildcards.task, sm.params.score, sm.output.figure, sm.params.max_points)
