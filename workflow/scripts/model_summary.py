"""Rule model_summary: test accuracy and AUC per seed, and their mean +- std."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.analysis.summaries import summarise_models
from clinxai.io import save_csv
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    table = summarise_models(snakemake.input.metrics)
    save_csv(snakemake.output.table, table)
    log.info("\n%s", table.to_string(index=False))
