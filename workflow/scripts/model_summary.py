"""Rule model_summary: test accuracy and AUC per seed, and their mean +- std."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 - injected by Snakemake
from clinxai.io import save_csv  # noqa: E402
from clinxai.logs import job_log  # noqa: E402
from clinxai.training import summarise_models  # noqa: E402

with job_log(snakemake.log[0]) as log:  # noqa: F821
    table = summarise_models(snakemake.input.metrics)  # noqa: F821
    save_csv(snakemake.output.table, table)  # noqa: F821
    log.info("\n%s", table.to_string(index=False))
