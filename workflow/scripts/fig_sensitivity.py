"""Rule fig_sensitivity: the sensitivity attributes per method, and the cascading-randomisation curves, of a task."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.logs import job_log
from clinxai.report.figures import randomisation_figure, sensitivity_attributes_figure

with job_log(snakemake.log[0]):
    sm = snakemake
    sensitivity_attributes_figure(pd.read_csv(sm.input.scores, dtype={"case": str}), sm.wildcards.task,
                                  sm.output.attributes)
    randomisation_figure(pd.read_csv(sm.input.settings), sm.wildcards.task, sm.output.randomisation)
