"""Phantom glioma MRI in BraTS 2020 layout, built from the MNI ICBM152 2009 template that ships in nilearn.

Anatomy: nilearn's grey/white-matter probability maps and brain mask (no network access needed);
CSF = brain mask - GM - WM. Each subject is the template under a random smooth elastic deformation and scale,
resampled onto the BraTS field of view (240 x 240 x 155 mm) at a configurable grid.

Contrasts: textbook signal equations per tissue (partial-volume mixture of tissue signals),
T1C = T1 with a shortened T1 in enhancing tumour. Then per-subject bias field, Rician noise and gamma
contrast jitter with MONAI transforms.

Tumours (BraTS labels: 1 necrotic/non-enhancing core, 2 oedema, 4 enhancing):
- HGG-like: irregular outline, necrotic core, enhancing rim, large oedema.
- LGG-like: rounder, non-enhancing, T2/FLAIR-bright, little oedema.
A small fraction of each grade is atypical (enhancing LGG, non-enhancing HGG) so that grading is not trivial
and a classifier makes some mistakes, as on real data.

These phantoms demonstrate and test the pipeline; they are not BraTS.
"""

from __future__ import annotations

import functools
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from ..io import atomic_dir

BRATS_FOV_MM = np.array([240.0, 240.0, 155.0])
MODALITY_FILES = ("t1", "t1ce", "t2", "flair")

# (T1 ms, T2 ms, proton density); brain tissues as SPEC §1, tumour tissues from the usual 1.5 T ranges.
TISSUES = {
    "wm": (500.0, 70.0, 0.70),
    "gm": (833.0, 83.0, 0.80),
    "csf": (2569.0, 329.0, 1.00),
    "oedema": (1150.0, 160.0, 0.86),
    "necrosis": (2200.0, 300.0, 0.95),
    "tumour": (1050.0, 130.0, 0.85),
    "enhancing": (1000.0, 110.0, 0.85),
}
T1_ENHANCED_MS = 350.0  # gadolinium shortens T1 in enhancing tumour (T1C only)

# Sequence timings in ms. FLAIR TI ~ T1_csf * ln 2 nulls CSF.
SEQUENCES = {
    "t1": dict(kind="se", TR=500.0, TE=12.0),
    "t1ce": dict(kind="se", TR=500.0, TE=12.0),
    "t2": dict(kind="se", TR=4000.0, TE=100.0),
    "flair": dict(kind="ir", TR=9000.0, TE=100.0, TI=1700.0),
}


@dataclass(frozen=True)
class BrainTemplate:
    gm: np.ndarray
    wm: np.ndarray
    mask: np.ndarray
    affine: np.ndarray  # MNI voxel -> world mm
    centre_mm: np.ndarray  # world coordinate of the brain's bounding-box centre


@functools.lru_cache(maxsize=2)
def load_template(resolution: int = 2) -> BrainTemplate:
    """MNI ICBM152 2009 tissue maps from the nilearn wheel (no download)."""
    from nilearn import datasets

    mask_img = datasets.load_mni152_brain_mask(resolution=resolution)
    mask = mask_img.get_fdata(dtype=np.float32) > 0
    gm = datasets.load_mni152_gm_template(resolution=resolution).get_fdata(dtype=np.float32) * mask
    wm = datasets.load_mni152_wm_template(resolution=resolution).get_fdata(dtype=np.float32) * mask
    idx = np.argwhere(mask)
    centre_vox = (idx.min(0) + idx.max(0)) / 2.0
    centre_mm = mask_img.affine[:3, :3] @ centre_vox + mask_img.affine[:3, 3]
    return BrainTemplate(gm=gm, wm=wm, mask=mask.astype(np.float32), affine=mask_img.affine, centre_mm=centre_mm)


def brats_affine(shape) -> np.ndarray:
    """Affine of a grid covering the BraTS field of view, RAS, centred on the origin."""
    spacing = BRATS_FOV_MM / np.asarray(shape, float)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -BRATS_FOV_MM / 2 + spacing / 2
    return affine


def _smooth_field(shape, rng, n_ctrl, std) -> np.ndarray:
    """Smooth random field: Gaussian control points upsampled with cubic splines."""
    ctrl = rng.normal(0.0, std, size=n_ctrl)
    return ndimage.zoom(ctrl, np.asarray(shape) / np.asarray(n_ctrl), order=3, mode="nearest")[
        tuple(slice(0, s) for s in shape)
    ]


def _warp_template(template: BrainTemplate, shape, rng, elastic_mm: float):
    """Sample GM, WM and mask of one random subject onto the output grid."""
    out_affine = brats_affine(shape)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"))
    world = np.tensordot(out_affine[:3, :3], grid, axes=1) + out_affine[:3, 3, None, None, None]
    scale = rng.uniform(0.88, 1.0)  # brains differ in size; 1.0 just fits the BraTS z extent
    shift = rng.normal(0.0, 3.0, size=3)
    mni_world = world / scale + (template.centre_mm + shift)[:, None, None, None]
    for axis in range(3):
        mni_world[axis] += _smooth_field(shape, rng, (5, 5, 4), elastic_mm)
    inv = np.linalg.inv(template.affine)
    vox = np.tensordot(inv[:3, :3], mni_world, axes=1) + inv[:3, 3, None, None, None]
    sample = functools.partial(ndimage.map_coordinates, coordinates=vox, order=1, mode="constant", cval=0.0)
    mask = sample(template.mask) > 0.5
    gm = np.clip(sample(template.gm), 0, 1) * mask
    wm = np.clip(sample(template.wm), 0, 1) * mask
    total = np.maximum(gm + wm, 1.0)
    gm, wm = gm / total, wm / total
    csf = np.clip(1.0 - gm - wm, 0, 1) * mask
    return {"gm": gm, "wm": wm, "csf": csf}, mask


def _tumour_labels(shape, spacing, fractions, mask, grade: str, rng) -> np.ndarray:
    """BraTS-convention label map (0, 1, 2, 4) for one tumour placed in white matter."""
    hgg = grade == "HGG"
    radius = rng.uniform(18, 30) if hgg else rng.uniform(14, 24)  # mm
    dist_to_edge = ndimage.distance_transform_edt(mask, sampling=spacing)
    candidates = np.argwhere((fractions["wm"] > 0.5) & (dist_to_edge > radius * 0.9))
    if len(candidates) == 0:
        candidates = np.argwhere(dist_to_edge >= dist_to_edge.max() * 0.8)
    centre = candidates[rng.integers(len(candidates))]
    axes = radius * rng.uniform(0.8, 1.2, size=3)
    coords = np.ogrid[tuple(slice(0, s) for s in shape)]
    r = np.sqrt(sum(((c - centre[i]) * spacing[i] / axes[i]) ** 2 for i, c in enumerate(coords)))
    noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma=6.0 / spacing)
    noise /= noise.std() + 1e-8
    # Irregularity: how much the smooth noise bends the outline. HGG-like outlines are ragged.
    irregular = hgg or rng.random() < 0.1
    alpha = rng.uniform(0.25, 0.4) if irregular else rng.uniform(0.03, 0.1)
    core = (r + alpha * noise < 1.0) & mask
    oedema_extent = rng.uniform(1.5, 2.0) if hgg else rng.uniform(1.1, 1.35)
    oedema = (r + 0.5 * alpha * noise < oedema_extent) & mask & ~core & (fractions["csf"] < 0.6)
    labels = np.zeros(shape, np.uint8)
    labels[oedema] = 2
    enhancing = rng.random() < (0.9 if hgg else 0.15)  # atypical cases make grading non-trivial
    if not enhancing:
        labels[core] = 1
    elif hgg:
        necrotic = core & (r + alpha * noise < rng.uniform(0.45, 0.65))
        labels[core] = 4
        labels[necrotic] = 1
    else:  # patchy enhancement in an otherwise non-enhancing LGG-like tumour
        labels[core] = 1
        patch = core & (noise > 1.0)
        labels[patch] = 4
    if not core.any():  # the tumour always exists, even when the random centre sits on a thin gyrus
        labels[tuple(centre)] = 1
    return labels


def _signal(t1, t2, pd, seq) -> np.ndarray:
    if seq["kind"] == "se":
        return pd * (1 - np.exp(-seq["TR"] / t1)) * np.exp(-seq["TE"] / t2)
    return pd * np.abs(1 - 2 * np.exp(-seq["TI"] / t1) + np.exp(-seq["TR"] / t1)) * np.exp(-seq["TE"] / t2)


def sequence_reference(name: str) -> float:
    """A sequence's fixed intensity scale: the signal of its brightest healthy tissue."""
    return max(float(_signal(*TISSUES[t], SEQUENCES[name])) for t in ("wm", "gm", "csf"))


def _contrasts(fractions, labels, rng) -> dict[str, np.ndarray]:
    """Partial-volume signal mixture of every tissue, per sequence."""
    tumour_tissue = {1: "tumour", 2: "oedema", 4: "enhancing"}
    # Necrosis: the label-1 voxels inside an enhancing rim (HGG core) are fluid-like.
    has_rim = (labels == 4).sum() > (labels == 1).sum() * 0.5
    frac = dict(fractions)
    lesion = labels > 0
    for key in ("gm", "wm", "csf"):
        frac[key] = np.where(lesion, 0.0, frac[key])
    for label, name in tumour_tissue.items():
        tissue = "necrosis" if (label == 1 and has_rim) else name
        frac[tissue] = frac.get(tissue, 0.0) + (labels == label).astype(np.float32)
    jitter = {name: rng.uniform(0.95, 1.05, size=2) for name in TISSUES}
    images = {}
    for seq_name, seq in SEQUENCES.items():
        out = np.zeros(labels.shape, np.float32)
        for tissue, f in frac.items():
            if np.isscalar(f):
                continue
            t1, t2, pd = TISSUES[tissue]
            t1, t2 = t1 * jitter[tissue][0], t2 * jitter[tissue][1]
            if seq_name == "t1ce" and tissue == "enhancing":
                t1 = T1_ENHANCED_MS
            out += f * _signal(t1, t2, pd, seq)
        images[seq_name] = out
    return images


def _intensity_augment(images: dict, mask: np.ndarray, seed: int) -> dict:
    """Scanner variety: bias field, Rician noise and gamma contrast jitter (MONAI transforms)."""
    from monai.transforms import RandAdjustContrast, RandBiasField, RandRicianNoise

    transforms = [
        RandBiasField(degree=3, coeff_range=(0.05, 0.2), prob=1.0),
        RandAdjustContrast(gamma=(0.85, 1.15), prob=1.0),
        RandRicianNoise(prob=1.0, std=0.03, relative=True, sample_std=False),
    ]
    for i, t in enumerate(transforms):
        t.set_random_state(seed + i)
    out = {}
    for name, img in images.items():
        # A fixed scale per sequence (brightest healthy tissue), so tumour signal does not rescale the brain.
        x = (img / sequence_reference(name))[None]
        for t in transforms:
            x = np.asarray(t(x))
        out[name] = np.clip(x[0], 0, None) * mask  # skull-stripped, as BraTS
    return out


def generate_subject(shape, grade: str, seed: int, elastic_mm: float = 4.0):
    """One phantom subject: dict of four contrasts (float32), seg labels (uint8) and the affine."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    spacing = BRATS_FOV_MM / np.asarray(shape)
    fractions, mask = _warp_template(load_template(), shape, rng, elastic_mm)
    labels = _tumour_labels(shape, spacing, fractions, mask, grade, rng)
    images = _contrasts(fractions, labels, rng)
    images = _intensity_augment(images, mask, seed=int(rng.integers(2**31 - 1)))
    return images, labels, brats_affine(shape)


def subject_id(index: int) -> str:
    return f"BraTS20_Training_{index:03d}"


def _write_subject(args) -> None:
    case_dir, sid, grade, shape, seed = args
    images, labels, affine = generate_subject(shape, grade, seed)
    case_dir.mkdir()
    for name in MODALITY_FILES:
        scaled = np.round(images[name] * 1000).astype(np.int16)  # BraTS ships integer volumes
        nib.save(nib.Nifti1Image(scaled, affine), case_dir / f"{sid}_{name}.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), case_dir / f"{sid}_seg.nii.gz")


def write_phantom_brats(out_dir, n_cases: int, hgg_fraction: float, shape, seed: int,
                        workers: int = 1) -> pd.DataFrame:
    """Write `n_cases` subjects in BraTS 2020 training layout plus name_mapping.csv; return the mapping.

    Each subject has its own seed drawn from `seed`, so the output does not depend on `workers`.
    """
    rng = np.random.default_rng(seed)
    n_hgg = int(round(n_cases * hgg_fraction))
    grades = np.array(["HGG"] * n_hgg + ["LGG"] * (n_cases - n_hgg))
    rng.shuffle(grades)
    subject_seeds = rng.integers(0, 2**31 - 1, size=n_cases)
    shape = tuple(int(s) for s in shape)
    ids = [subject_id(i) for i in range(1, n_cases + 1)]
    with atomic_dir(out_dir) as tmp:
        jobs = [(tmp / sid, sid, g, shape, int(s)) for sid, g, s in zip(ids, grades, subject_seeds)]
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                list(pool.map(_write_subject, jobs))
        else:
            for job in jobs:
                _write_subject(job)
        mapping = pd.DataFrame({"Grade": grades, "BraTS_2020_subject_ID": ids})
        # The real file's columns; the phantom has no earlier-challenge IDs.
        for year in ("2019", "2018", "2017", "2016"):
            mapping[f"BraTS_{year}_subject_ID"] = pd.NA
        cols = ["Grade"] + [f"BraTS_{y}_subject_ID" for y in ("2019", "2018", "2017", "2016", "2020")]
        mapping = mapping[cols]
        mapping.to_csv(Path(tmp) / "name_mapping.csv", index=False)
    return mapping
