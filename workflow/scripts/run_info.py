"""Rule run_info: the package versions, machine and configuration of this run, for the report."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.io import save_csv
from clinxai.logs import job_log
from clinxai.provenance import run_versions, save_config

with job_log(snakemake.log[0]) as log:
    versions = run_versions()
    save_csv(snakemake.output.versions, versions)
    save_config(snakemake.params.config, snakemake.output.config)
    log.info("\n%s", versions.to_string(index=False))
