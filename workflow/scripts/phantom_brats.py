"""Rule phantom_brats: a BraTS 2020-layout phantom dataset."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 - injected by Snakemake
from clinxai.data.phantom_brats import write_phantom_brats  # noqa: E402
from clinxai.logs import job_log  # noqa: E402

with job_log(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params.phantom  # noqa: F821
    mapping = write_phantom_brats(snakemake.output.root, p["n_cases"], p["hgg_fraction"], p["shape"], p["seed"],
                                 workers=snakemake.threads)  # noqa: F821
    log.info("wrote %d cases (%s) to %s", len(mapping), mapping["Grade"].value_counts().to_dict(),
             snakemake.output.root)  # noqa: F821
