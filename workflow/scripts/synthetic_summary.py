"""Rule synthetic_summary: per method, MSFI and msfi_global over all (model, case) pairs."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.analysis.summaries import summarise_msfi
from clinxai.io import save_csv
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    tables = [pd.read_csv(p, dtype={"case": str}) for p in sm.input.tables]
    summary = summarise_msfi(sm.wildcards.task, tables, pd.read_csv(sm.input.accuracy), sm.params.report)
    save_csv(sm.output.summary, summary)
    log.info("\n%s", summary.to_string(index=False))
