"""A small DCGAN that learns irregular (HGG-like) tumour outlines for the synthetic task (SPEC §4).

The paper used a pretrained tumour-synthesis GAN whose weights are not public, so the pipeline trains its own on
2-D tumour masks: axial slices of the tumour core of HGG cases in a BraTS-layout folder (the user's BraTS, or the
phantom BraTS the workflow builds). Each slice is cropped to its bounding box, padded to a square and resized to
`size` x `size`, so the GAN learns shapes, not positions or sizes.

A sample is valid when it is a tumour: not empty, not touching the border, and one main connected component.
Samples are judged against round shapes by circularity 4*pi*area / perimeter^2 (1 for a disc).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from torch import nn

from .. import ClinxaiError
from ..runtime import use_threads

log = logging.getLogger("clinxai.tumour_gan")


# --- training masks -------------------------------------------------------------------------------------------

def crop_to_square(mask: np.ndarray, size: int, margin: float = 0.1) -> np.ndarray:
    """The mask's bounding box, padded to a centred square with `margin` on each side, resized to size x size."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    side = int(np.ceil(max(hi - lo) * (1 + 2 * margin))) + 2
    canvas = np.zeros((side, side), np.float32)
    off = (side - (hi - lo)) // 2
    canvas[off[0]:off[0] + hi[0] - lo[0], off[1]:off[1] + hi[1] - lo[1]] = mask[lo[0]:hi[0], lo[1]:hi[1]]
    from skimage.transform import resize

    return resize(canvas, (size, size), order=1, anti_aliasing=False) > 0.5


def brats_tumour_masks(root, size: int, grades=("HGG",), labels=(1, 4), min_area: int = 30,
                       max_cases: int | None = None) -> np.ndarray:
    """N x size x size boolean masks: axial slices of the tumour (seg labels `labels`) of cases of `grades`."""
    import nibabel as nib

    from .brats import GRADES, _find, read_labels

    root = Path(root)
    wanted = {GRADES[g] for g in grades}
    cases = sorted(c for c, y in read_labels(root).items() if y in wanted)[:max_cases]
    masks = []
    for case in cases:
        path = _find(root / case, case, "seg")
        if path is None:
            raise ClinxaiError(f"case {case}: no seg file in {root / case}; the tumour GAN trains on BraTS "
                               "segmentations. Add it or remove the case from name_mapping.csv.")
        seg = np.rint(np.asarray(nib.load(path).dataobj, dtype=np.float32)).astype(np.uint8)
        core = np.isin(seg, labels)
        for z in range(core.shape[-1]):
            sl = core[..., z]
            if sl.sum() >= min_area:
                masks.append(crop_to_square(sl, size))
    if not masks:
        raise ClinxaiError(f"{root}: no axial tumour slice of {'/'.join(grades)} cases with at least {min_area} "
                           f"voxels of labels {list(labels)}; lower synthetic.gan.min_area or check the segs.")
    return np.stack(masks)


# --- the GAN --------------------------------------------------------------------------------------------------

def _widths(size: int, width: int) -> list[int]:
    """Channel widths of the 4 x 4 -> size x size pyramid (halving per doubling), or an error for a bad size."""
    n = int(np.log2(size)) - 2
    if size < 16 or 2 ** (n + 2) != size:
        raise ClinxaiError(f"synthetic.gan.size = {size}: the tumour GAN needs a power of two from 16 (32 or 64).")
    return [width * 2 ** (n - 1 - i) for i in range(n)]


class Generator(nn.Module):
    """DCGAN generator: latent vector -> 1 x size x size in [-1, 1] (stride-2 transposed convs after 4 x 4)."""

    def __init__(self, latent: int = 32, width: int = 16, size: int = 64):
        super().__init__()
        w = _widths(size, width)
        layers = [nn.ConvTranspose2d(latent, w[0], 4, 1, 0, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(True)]
        for a, b in zip(w, w[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(w[-1], 1, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent, self.width, self.size = latent, width, size

    def forward(self, z):
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """DCGAN discriminator with spectral normalisation instead of BatchNorm: 1 x 64 x 64 -> one logit.

    Spectral norm keeps the discriminator from overpowering the generator on a few hundred masks (with BatchNorm it
    wins within a hundred iterations and the generator collapses to noise).
    """

    def __init__(self, width: int = 16, size: int = 64):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        w = _widths(size, width)[::-1]
        layers, c_in = [], 1
        for b in w:
            layers += [sn(nn.Conv2d(c_in, b, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            c_in = b
        layers += [sn(nn.Conv2d(w[-1], 1, 4, 1, 0)), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)[:, 0]


def _init(m):
    if isinstance(m, nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips and 90-degree rotations: a tumour's outline has no preferred orientation."""
    k = int(torch.randint(4, (1,), generator=gen))
    x = torch.rot90(x, k, dims=(2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        x = torch.flip(x, dims=(3,))
    return x


def _noisy(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=gen).to(x.device) if sigma > 0 else x


def train_gan(masks: np.ndarray, cfg: dict, seed: int, device="cpu") -> tuple[Generator, pd.DataFrame]:
    """Train the DCGAN on N x 64 x 64 masks; cfg: iterations, batch_size, lr, latent, width. Returns G and losses."""
    size = masks.shape[-1]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    g = Generator(cfg["latent"], cfg["width"], size).to(device)
    d = Discriminator(cfg["width"], size).to(device)
    g.apply(_init)
    d.apply(_init)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg["lr"] * cfg.get("d_lr_ratio", 0.5), betas=(0.5, 0.999))
    softplus = nn.functional.softplus
    # Soft edges: exactly binary reals let the discriminator win at once on pixel statistics alone.
    soft = np.stack([ndimage.gaussian_filter(m.astype(np.float32), cfg.get("edge_sigma", 1.0)) for m in masks])
    data = torch.from_numpy(soft * 2 - 1)[:, None]
    bs = min(cfg["batch_size"], len(data))
    rows, t0 = [], time.perf_counter()
    for it in range(1, cfg["iterations"] + 1):
        real = _augment(data[torch.randint(len(data), (bs,), generator=gen)], gen).to(device)
        z = torch.randn(bs, g.latent, generator=gen).to(device)
        fake = g(z)
        opt_d.zero_grad(set_to_none=True)
        # Instance noise, annealed to 0 over the first half: real and fake masks overlap early, so the discriminator
        # cannot separate them perfectly and the generator keeps receiving gradients.
        sigma = cfg.get("instance_noise", 0.3) * max(0.0, 1 - 2 * it / cfg["iterations"])
        loss_d = (softplus(-d(_noisy(real, sigma, gen))).mean()
                  + softplus(d(_noisy(fake.detach(), sigma, gen))).mean())
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        loss_g = softplus(-d(_noisy(fake, sigma, gen))).mean()  # non-saturating generator loss
        loss_g.backward()
        opt_g.step()
        rows.append({"iteration": it, "loss_d": loss_d.item(), "loss_g": loss_g.item()})
        if it % max(1, cfg["iterations"] // 10) == 0:
            log.info("iteration %5d  loss D %.3f  loss G %.3f  (%.0f s)", it, loss_d.item(), loss_g.item(),
                     time.perf_counter() - t0)
    return g.eval().cpu(), pd.DataFrame(rows)


@torch.no_grad()
def sample_masks(g: Generator, n: int, seed: int) -> np.ndarray:
    """n boolean size x size masks from the generator (tanh output > 0), seeded."""
    z = torch.randn(n, g.latent, generator=torch.Generator().manual_seed(seed))
    return (g.eval()(z)[:, 0] > 0).numpy()


def save_generator(path, g: Generator) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: the archive holds no temporary name
        torch.save({"latent": g.latent, "width": g.width, "size": g.size, "state_dict": g.state_dict()}, fh)


def load_generator(path) -> Generator:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        g = Generator(ckpt["latent"], ckpt["width"], ckpt["size"])
        g.load_state_dict(ckpt["state_dict"])
    except Exception as err:
        raise ClinxaiError(f"tumour generator {path} cannot be read ({type(err).__name__}: {str(err)[:200]}); "
                           "delete it and rerun rule synthetic_gan.") from err
    return g.eval()


# --- shape checks ---------------------------------------------------------------------------------------------

def circularity(mask: np.ndarray) -> float:
    """4*pi*area / perimeter^2 of the mask (1 for a disc, lower for ragged outlines); NaN when empty."""
    from skimage.measure import perimeter_crofton

    area = float(mask.sum())
    if area == 0:
        return float("nan")
    p = perimeter_crofton(mask, directions=4)
    return float(min(1.0, 4 * np.pi * area / p**2)) if p > 0 else float("nan")


def shape_stats(mask: np.ndarray) -> dict:
    """Area fraction, components, share of the largest component, border contact and circularity of one mask."""
    labels, n = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())[1:] if n else np.array([0])
    border = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    return {"area_fraction": float(mask.mean()), "components": int(n),
            "main_share": float(sizes.max() / max(sizes.sum(), 1)), "touches_border": border,
            "circularity": circularity(main_component(mask)) if n else float("nan")}


def main_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component with its holes filled."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask.astype(bool)
    keep = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return ndimage.binary_fill_holes(keep)


def is_valid(stats: dict, min_area: float = 0.02, min_main_share: float = 0.9) -> bool:
    return (stats["area_fraction"] >= min_area and stats["main_share"] >= min_main_share
            and not stats["touches_border"])


def round_mask(size: int, rng: np.random.Generator, wobble: float = 0.04) -> np.ndarray:
    """A round (LGG-like) tumour: an ellipse of aspect 0.8-1 with a faintly wobbly outline, centred."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    angle = rng.uniform(0, np.pi)
    a = size * 0.38
    b = a * rng.uniform(0.8, 1.0)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    theta = np.arctan2(v, u)
    k = rng.integers(3, 6)
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2) * (1 + wobble * np.sin(k * theta + rng.uniform(0, 2 * np.pi)))
    return r < 1.0


def check_samples(samples: np.ndarray, n_round: int = 200, seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Validity, variety and irregularity of GAN samples against round shapes (the class-0 tumours).

    Varied: the mean IoU between pairs of valid samples (their main components) is low, so the GAN did not collapse
    onto one shape. Irregular: the median circularity of valid samples is below 90 % of the round shapes'.
    """
    table = pd.DataFrame([shape_stats(s) for s in samples])
    table["valid"] = [is_valid(r) for r in table.to_dict("records")]
    valid = samples[table["valid"].to_numpy()]
    rng = np.random.default_rng(seed)
    round_circ = np.array([circularity(round_mask(samples.shape[-1], rng)) for _ in range(n_round)])
    ious = []
    mains = [main_component(s) for s in valid[:60]]
    for i in range(len(mains)):
        for j in range(i + 1, len(mains)):
            inter, union = (mains[i] & mains[j]).sum(), (mains[i] | mains[j]).sum()
            ious.append(inter / union if union else 1.0)
    circ = table.loc[table["valid"], "circularity"]
    summary = {
        "n_samples": len(samples),
        "valid_fraction": float(table["valid"].mean()),
        "non_empty_fraction": float((table["area_fraction"] > 0).mean()),
        "one_main_component_fraction": float((table["main_share"] >= 0.9).mean()),
        "median_area_fraction": float(table["area_fraction"].median()),
        "median_circularity": float(circ.median()) if len(circ) else float("nan"),
        "round_median_circularity": float(np.median(round_circ)),
        "mean_pairwise_iou": float(np.mean(ious)) if ious else float("nan"),
    }
    # a clear margin: round shapes checked against round shapes must not pass as irregular by chance
    summary["irregular"] = bool(summary["median_circularity"] < 0.9 * summary["round_median_circularity"])
    summary["varied"] = bool(summary["mean_pairwise_iou"] < 0.85)
    summary["passed"] = bool(summary["valid_fraction"] >= 0.5 and summary["irregular"] and summary["varied"])
    return summary, table


def sample_grid_png(path, samples: np.ndarray, valid: np.ndarray, n: int = 64) -> None:
    """An 8 x 8 grid of samples; invalid ones framed in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    k = min(n, len(samples))
    cols = 8
    rows = int(np.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= k:
            ax.axis("off")
            continue
        ax.imshow(samples[i], cmap="gray", vmin=0, vmax=1)
        for s in ax.spines.values():
            s.set_color("tab:green" if valid[i] else "tab:red")
            s.set_linewidth(2)
    fig.suptitle("GAN tumour samples (green: valid, red: rejected)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def run_gan(root, cfg: dict, out: dict, device: str = "cpu", threads: int = 1) -> dict:
    """Rule synthetic_gan: masks from `root`, training, and the generator, loss log, sample grid and check."""
    from ..io import save_csv, save_json

    use_threads(threads)
    start = time.perf_counter()
    masks = brats_tumour_masks(root, cfg["size"], cfg["grades"], cfg["labels"], cfg["min_area"], cfg["max_cases"])
    log.info("%d tumour slices of %s cases from %s", len(masks), "/".join(cfg["grades"]), root)
    g, losses = train_gan(masks, cfg, cfg["seed"], device)
    save_generator(out["generator"], g)
    save_csv(out["losses"], losses)
    samples = sample_masks(g, cfg["n_check"], cfg["seed"] + 1)
    summary, table = check_samples(samples, seed=cfg["seed"])
    real, _ = check_samples(masks[np.random.default_rng(0).permutation(len(masks))[:cfg["n_check"]]], seed=cfg["seed"])
    summary.update({"n_training_masks": len(masks), "training_masks": {k: real[k] for k in (
        "valid_fraction", "median_circularity", "mean_pairwise_iou")},
        "iterations": cfg["iterations"], "size": cfg["size"], "seconds": round(time.perf_counter() - start, 1),
        "device": str(device)})
    sample_grid_png(out["samples"], samples, table["valid"].to_numpy())
    save_json(out["check"], summary)
    log.info("GAN samples: %.0f%% valid, median circularity %.2f (round shapes %.2f), mean pairwise IoU %.2f",
             100 * summary["valid_fraction"], summary["median_circularity"], summary["round_median_circularity"],
             summary["mean_pairwise_iou"])
    return summary
