"""Rule synthetic_data: the synthetic glioma slices in the prepared layout, the case table and ground-truth sets."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.data.synthetic import make_synthetic
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    meta = make_synthetic(sm.wildcards.task, sm.input.generator, sm.params.cfg, sm.params.split, dict(sm.output.items()),
                          check_path=sm.input.check)
    log.info("%d cases %s, alignment %s, %.1f s", meta["n_cases"], meta["counts"], meta["alignment"], meta["seconds"])
