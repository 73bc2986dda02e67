"""Rule phantom_mrnet: an MRNet-layout knee phantom with menisci boxes."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 - injected by Snakemake
from clinxai.data.phantom_mrnet import write_phantom_mrnet  # noqa: E402
from clinxai.logs import job_log  # noqa: E402

with job_log(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params.phantom  # noqa: F821
    labels = write_phantom_mrnet(snakemake.output.root, p["n_train"], p["n_valid"], p["tear_fraction"],  # noqa: F821
                                 p["shape"], p["seed"])
    log.info("wrote %d knees (%d tears) to %s", len(labels), int(labels.sum()), snakemake.output.root)  # noqa: F821
