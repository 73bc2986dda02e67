"""Rule heatmap_timing: seconds per heatmap per case for every method (Table 4), and all map statuses."""
import sys

import pandas as pd

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.analysis.timing import timing_table
from clinxai.io import save_csv
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    tables = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in snakemake.input.tables], ignore_index=True)
    save_csv(snakemake.output.status, tables)
    timing = timing_table(tables)
    save_csv(snakemake.output.timing, timing)
    log.info("\n%s", timing.to_string(index=False))
