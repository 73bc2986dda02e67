"""The synthetic glioma dataset (SPEC §4, paper §4.3.3): the tumour's shape is the label, and which modality shows
the label-aligned shape is controlled, so the model's decision rule is known.

Each case is a 2-D axial slice of the MNI phantom brain (four channels FLAIR, T1, T1C, T2) with one tumour pasted
inside the brain. Every case has one irregular shape I (a GAN sample) and one round shape R, at the same place and
size. Class 1 (HGG-like) is irregular, class 0 (LGG-like) round:
- T1C shows the label's shape (I for 1, R for 0) with probability `t1c_alignment` (1.0), else the other one;
- FLAIR shows the label's shape with probability `flair_alignment` (0.7), else the other one;
- T1 and T2 always show I, so they carry no label information.
The plausibility mask of a case is its T1C tumour (the only modality whose tumour always matches the label).

Two ground-truth test sets show tumours without brain: "T1C" (T1C aligned, FLAIR anti-aligned) and "FLAIR" (the
reverse). A model's accuracy on them says how much it relies on each modality (paper: 0.99 and 0).
Optionally a fraction of the training cases (`tumour_only_fraction`, 0 in the paper) is drawn the same way but
without brain, so that the ground-truth items are not out of distribution for a small model trained from scratch;
their shapes follow the same design, so they add no preference for either modality.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from .. import ClinxaiError
from ..io import atomic_dir, save_csv, save_json
from .phantom_brats import (SEQUENCES, T1_ENHANCED_MS, TISSUES, _intensity_augment, _signal, _smooth_field, load_template,
                            sequence_reference)
from .prepare import zscore
from .split import stratified_split
from .tumour_gan import is_valid, load_generator, main_component, round_mask, sample_masks, shape_stats

CHANNELS = ("FLAIR", "T1", "T1C", "T2")  # SPEC §1 order of the synthetic task
SEQUENCE_OF = {"FLAIR": "flair", "T1": "t1", "T1C": "t1ce", "T2": "t2"}
GROUND_TRUTH_SETS = ("T1C", "FLAIR")


def brain_slice(size: int, fov_mm: float, rng: np.random.Generator, elastic_mm: float = 3.0):
    """Tissue fractions (gm, wm, csf) and brain mask of one random axial slice of the MNI phantom, size x size.

    A slice from the central band (brain area >= 80 % of the largest), scaled, rotated, shifted and elastically
    deformed, sampled over a `fov_mm` square field of view.
    """
    t = load_template(2)
    area = t.mask.sum((0, 1))
    band = np.flatnonzero(area >= 0.8 * area.max())
    z = int(rng.choice(band))
    voxel_mm = float(abs(t.affine[0, 0]))
    idx = np.argwhere(t.mask[:, :, z] > 0)
    centre = (idx.min(0) + idx.max(0)) / 2.0 + rng.normal(0, 1.0, 2)
    scale = rng.uniform(0.9, 1.05)
    angle = np.deg2rad(rng.uniform(-10, 10))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij")).reshape(2, -1).astype(float)
    mm = (grid - (size - 1) / 2) * (fov_mm / size)
    vox = (rot @ mm) / (scale * voxel_mm) + centre[:, None]
    vox = vox.reshape(2, size, size)
    for axis in range(2):
        vox[axis] += _smooth_field((size, size), rng, (5, 5), elastic_mm / voxel_mm)
    coords = np.concatenate([vox, np.full((1, size, size), z, float)])
    sample = lambda a: ndimage.map_coordinates(a, coords, order=1, mode="constant", cval=0.0)  # noqa: E731
    mask = sample(t.mask) > 0.5
    gm, wm = np.clip(sample(t.gm), 0, 1) * mask, np.clip(sample(t.wm), 0, 1) * mask
    total = np.maximum(gm + wm, 1.0)
    gm, wm = gm / total, wm / total
    return {"gm": gm, "wm": wm, "csf": np.clip(1 - gm - wm, 0, 1) * mask}, mask


def place(shape_mask: np.ndarray, side: int, centre, size: int) -> np.ndarray:
    """A size x size mask with `shape_mask` resized to side x side, centred at `centre` (inside the image)."""
    from skimage.transform import resize

    small = resize(shape_mask.astype(np.float32), (side, side), order=1, anti_aliasing=True) > 0.5
    out = np.zeros((size, size), bool)
    r0, c0 = int(centre[0]) - side // 2, int(centre[1]) - side // 2
    out[r0:r0 + side, c0:c0 + side] = small
    return out


def tumour_site(brain: np.ndarray, side: int, rng: np.random.Generator):
    """A centre where a side x side box lies inside the brain (deepest points if none does)."""
    depth = ndimage.distance_transform_edt(brain)
    ok = np.argwhere(depth > side * 0.6)
    if len(ok) == 0:
        ok = np.argwhere(depth >= depth.max() * 0.9)
    c = ok[rng.integers(len(ok))]
    half = side // 2
    return np.clip(c, half, brain.shape[0] - side + half)


def tumour_signal(channel: str) -> float:
    """Signal of the tumour tissue in one sequence: FLAIR/T2 bright, T1 dark, T1C enhancing."""
    t1, t2, pd_ = TISSUES["enhancing" if channel == "T1C" else "tumour"]
    if channel == "T1C":
        t1 = T1_ENHANCED_MS
    return float(_signal(t1, t2, pd_, SEQUENCES[SEQUENCE_OF[channel]]))


def channel_shapes(label: int, irregular: np.ndarray, round_: np.ndarray, t1c_aligned: bool,
                   flair_aligned: bool) -> dict[str, np.ndarray]:
    """The tumour shape each channel shows for one case (see the module docstring)."""
    shape_of = {1: irregular, 0: round_}
    return {"FLAIR": shape_of[label if flair_aligned else 1 - label], "T1": irregular,
            "T1C": shape_of[label if t1c_aligned else 1 - label], "T2": irregular}


def brain_case(label: int, irregular, round_, t1c_aligned: bool, flair_aligned: bool, cfg: dict, rng):
    """(raw 4 x size x size image scaled like the phantom BraTS, brain mask, per-channel tumour masks)."""
    size = cfg["size"]
    fractions, brain = brain_slice(size, cfg["fov_mm"], rng)
    side = int(round(rng.uniform(*cfg["tumour_size"]) * size))
    centre = tumour_site(brain, side, rng)
    shapes = channel_shapes(label, irregular, round_, t1c_aligned, flair_aligned)
    masks = {c: place(s, side, centre, size) & brain for c, s in shapes.items()}
    images = {}
    for c in CHANNELS:
        seq = SEQUENCES[SEQUENCE_OF[c]]
        img = sum(f * _signal(*TISSUES[t], seq) for t, f in fractions.items())
        images[SEQUENCE_OF[c]] = np.where(masks[c], tumour_signal(c), img).astype(np.float32)
    # bias field, Rician noise, gamma; images are scaled by the brightest healthy tissue of each sequence
    aug = _intensity_augment(images, brain, seed=int(rng.integers(2**31 - 1)))
    image = np.stack([aug[SEQUENCE_OF[c]] for c in CHANNELS])
    return image, brain, np.stack([masks[c] for c in CHANNELS])


def tumour_only(masks: np.ndarray, stats: np.ndarray, rng, noise: float = 0.03) -> np.ndarray:
    """A ground-truth item: each channel's tumour at the intensity a typical normalised case gives it, on a flat
    background (0 = the mean brain intensity after z-scoring). `stats`: per channel (mean, std) of raw brain
    intensities over the training cases."""
    out = np.zeros(masks.shape, np.float32)
    for c, ch in enumerate(CHANNELS):
        raw = tumour_signal(ch) / sequence_reference(SEQUENCE_OF[ch]) * (1 + noise * rng.standard_normal(masks.shape[1:]))
        out[c] = np.where(masks[c], (raw - stats[c, 0]) / stats[c, 1], 0.0)
    return out


def draw_design(n: int, t1c_alignment: float, flair_alignment: float, rng: np.random.Generator):
    """Balanced labels in random order, and per case whether T1C and FLAIR show the label's shape (Bernoulli)."""
    labels = rng.permutation(np.arange(n) % 2)
    return labels, rng.random(n) < t1c_alignment, rng.random(n) < flair_alignment


def draw_shapes(generator, n: int, seed: int) -> tuple[np.ndarray, float]:
    """n valid irregular shapes from the GAN (invalid samples are rejected and redrawn) and the valid fraction."""
    shapes, drawn = [], 0
    while len(shapes) < n:
        batch = sample_masks(generator, max(64, 2 * (n - len(shapes))), seed + drawn)
        drawn += len(batch)
        shapes += [main_component(m) for m in batch if is_valid(shape_stats(m))]
        if drawn > 40 * n + 640:
            raise ClinxaiError(f"the tumour GAN gives too few valid samples ({len(shapes) / drawn:.0%}); train it "
                               "longer (data.<task>.gan.iterations) and rerun rule synthetic_gan.")
    return np.stack(shapes[:n]), len(shapes) / drawn


def require_passed_check(check_path) -> None:
    """Stop before building data from a GAN whose samples failed the check (its outputs stay for diagnosis)."""
    import json

    check = json.loads(Path(check_path).read_text())
    if not check.get("passed"):
        raise ClinxaiError(f"the tumour GAN's samples fail the check in {check_path} (valid "
                           f"{check.get('valid_fraction', 0):.0%}, irregular {check.get('irregular')}, varied "
                           f"{check.get('varied')}); see samples.png next to it. Train longer "
                           "(data.<task>.gan.iterations) or give it more masks, then rerun rule synthetic_gan.")


def make_synthetic(task: str, generator_path, cfg: dict, split_cfg: dict, out: dict, check_path=None) -> dict:
    """Write a synthetic-kind task in the prepared layout (split, meta, excluded, arrays/) plus the case table
    (alignment of every case) and the two ground-truth sets. `cfg`: the task's `data.<task>` config section."""
    start = time.perf_counter()
    if check_path is not None:
        require_passed_check(check_path)
    rng = np.random.default_rng(cfg["seed"])
    n, n_gt = int(cfg["n_cases"]), int(cfg["n_groundtruth"])
    generator = load_generator(generator_path)
    irregular, valid_fraction = draw_shapes(generator, n + n_gt, cfg["seed"])
    labels, t1c_aligned, flair_aligned = draw_design(n, cfg["t1c_alignment"], cfg["flair_alignment"], rng)
    cases = [f"synth_{i:04d}" for i in range(n)]
    split = stratified_split(pd.DataFrame({"case": cases, "label": labels}), split_cfg["fractions"],
                             split_cfg["seed"])
    split_of = dict(zip(split["case"], split["split"]))
    train = [c for c in cases if split_of[c] == "train"]
    only_rng = np.random.default_rng(cfg["seed"] + 2)  # its own stream: the brain cases do not change with it
    n_only = int(round(cfg.get("tumour_only_fraction", 0.0) * len(train)))
    tumour_only_cases = set(only_rng.choice(train, n_only, replace=False)) if n_only else set()
    raw_stats, deferred = [], {}
    affine = np.diag([cfg["fov_mm"] / cfg["size"]] * 2 + [1.0, 1.0])
    with atomic_dir(out["arrays"]) as arrays_dir:
        for i, case in enumerate(cases):
            round_ = round_mask(generator.size, rng)
            image, brain, masks = brain_case(int(labels[i]), irregular[i], round_, bool(t1c_aligned[i]),
                                             bool(flair_aligned[i]), cfg, rng)
            if split_of[case] == "train":
                raw_stats.append([(image[c][brain].mean(), image[c][brain].std()) for c in range(len(CHANNELS))])
            if case in tumour_only_cases:  # written below, once the training statistics are known
                deferred[case] = (brain, masks)
                continue
            np.savez(Path(arrays_dir) / f"{case}.npz", image=zscore(image, brain, case, arrays_dir),
                     brain=brain.astype(np.uint8),
                     seg=masks[CHANNELS.index("T1C")].astype(np.uint8), masks=masks.astype(np.uint8), affine=affine)
        stats = np.mean(np.array(raw_stats), axis=0)  # channel x (mean, std)
        for case, (brain, masks) in deferred.items():
            np.savez(Path(arrays_dir) / f"{case}.npz", image=tumour_only(masks, stats, only_rng),
                     brain=brain.astype(np.uint8),
                     seg=masks[CHANNELS.index("T1C")].astype(np.uint8), masks=masks.astype(np.uint8), affine=affine)
    table = pd.DataFrame({"case": cases, "label": labels, "t1c_aligned": t1c_aligned, "flair_aligned": flair_aligned,
                          "tumour_only": [c in tumour_only_cases for c in cases],
                          "split": [split_of[c] for c in cases]})
    save_csv(out["cases"], table)
    with atomic_dir(out["groundtruth"]) as gt_dir:
        gt_rng = np.random.default_rng(cfg["seed"] + 1)
        gt_labels = gt_rng.permutation(np.arange(n_gt) % 2)
        for name in GROUND_TRUTH_SETS:
            items, masks_all = [], []
            for j in range(n_gt):
                size, y = cfg["size"], int(gt_labels[j])
                side = int(round(gt_rng.uniform(*cfg["tumour_size"]) * size))
                centre = np.full(2, size // 2) + gt_rng.integers(-size // 8, size // 8 + 1, 2)
                shapes = channel_shapes(y, irregular[n + j], round_mask(generator.size, gt_rng),
                                        t1c_aligned=name == "T1C", flair_aligned=name == "FLAIR")
                masks = np.stack([place(shapes[c], side, centre, size) for c in CHANNELS])
                items.append(tumour_only(masks, stats, gt_rng))
                masks_all.append(masks)
            np.savez(Path(gt_dir) / f"{name}.npz", image=np.stack(items), label=gt_labels,
                     masks=np.stack(masks_all).astype(np.uint8))
    save_csv(out["excluded"], pd.DataFrame(columns=["case", "file", "problem", "fix"]))
    save_csv(out["split"], split)
    counts = split.groupby(["split", "label"]).size().unstack(fill_value=0)
    meta = {
        "task": task, "channels": list(CHANNELS), "grid": [cfg["size"], cfg["size"]], "root": str(generator_path),
        "n_cases": n, "n_excluded": 0, "n_groundtruth": n_gt,
        "counts": {s: {str(k): int(v) for k, v in row.items()} for s, row in counts.iterrows()},
        "alignment": {"t1c": float(t1c_aligned.mean()), "flair": float(flair_aligned.mean())},
        "n_tumour_only_train": n_only,
        "gan_valid_fraction": valid_fraction, "normalisation": {"channels": list(CHANNELS), "mean_std": stats.tolist()},
        "seconds": round(time.perf_counter() - start, 2),
    }
    save_json(out["meta"], meta)
    return meta
