"""Rule synthetic_gan: train the tumour GAN on BraTS-layout tumour slices; generator, losses, samples, check."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.data.tumour_gan import run_gan
from clinxai.inference import resolve_device
from clinxai.logs import job_log

with job_log(snakemake.log[0]):
    sm = snakemake
    run_gan(sm.input.root, sm.params.gan, dict(sm.output.items()), device=resolve_device(sm.config["training"]["device"]),
            threads=sm.threads)
