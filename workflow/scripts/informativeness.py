"""Rule informativeness: per method, Spearman of the plausibility score with the predicted probability and the
upper-tailed Mann-Whitney test of right vs wrong predictions (also per predicted class), cases pooled over models."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.io import save_csv
from clinxai.logs import job_log
from clinxai.analysis.stats import informativeness

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    table = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in sm.input.tables], ignore_index=True)
    out = informativeness(table, sm.params.score, sm.params.level).assign(task=sm.wildcards.task)
    save_csv(sm.output.table, out)
    log.info("\n%s", out[["method", "spearman_rho", "mw_p", "mw_marker", "n_right", "n_wrong"]].to_string(index=False))
