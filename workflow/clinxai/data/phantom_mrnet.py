"""Procedural knee MRI phantom in MRNet layout (three views, uint8 S x H x W per view) with menisci boxes.

Anatomy is defined analytically in a normalised knee frame (x medial-lateral, y anterior-posterior,
z inferior-superior, all in [-1, 1]): femoral shaft and two condyles, tibial shaft and plateau, articular
cartilage, medial and lateral C-shaped menisci with a wedge profile, a thin joint-fluid layer, soft tissue.
Each view samples the labels on its own slice grid (axial: slices along z, coronal: along y, sagittal: along x)
after a small per-case rotation, so there is no resampling of a voxel volume.

A tear is a thin fluid-filled plane through part of one meniscus (bright on fluid-sensitive views).
Intact menisci sometimes carry intrasubstance degeneration (an intermediate-signal blob that does not
reach the surface), and tears vary in size, so the task is not trivial.

Views mimic MRNet contrasts: axial PD fat-saturated, coronal T1, sagittal PD.
These phantoms demonstrate and test the pipeline; they are not MRNet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ..io import atomic_dir
from .mrnet import VIEWS


LABELS = {"background": 0, "soft": 1, "bone": 2, "cartilage": 3, "meniscus": 4, "fluid": 5, "degeneration": 6}
# Relative intensity of each tissue per view (index = label value).
VIEW_CONTRAST = {
    "axial": np.array([0.0, 0.30, 0.20, 0.55, 0.06, 0.95, 0.35]),  # PD fat-sat: marrow dark, fluid bright
    "coronal": np.array([0.0, 0.50, 0.90, 0.40, 0.05, 0.25, 0.20]),  # T1: marrow bright, fluid grey
    "sagittal": np.array([0.0, 0.45, 0.80, 0.60, 0.08, 0.85, 0.40]),  # PD: fluid bright
}
CONDYLE_X = 0.24  # medial/lateral condyle and meniscus centres
MENISCUS_Z = -0.07
# Slice direction and in-plane axes of each view, as indices into (x, y, z), and the slice range covered.
# MRNet scans are centred on the joint line: the in-plane field of view spans +-fov around it.
VIEW_GEOMETRY = {
    "axial": dict(slice_axis=2, plane=(1, 0), slice_range=(-0.2, 0.1), fov=0.6, centre=(0.0, 0.0)),
    "coronal": dict(slice_axis=1, plane=(2, 0), slice_range=(-0.3, 0.3), fov=0.6, centre=(MENISCUS_Z, 0.0)),
    "sagittal": dict(slice_axis=0, plane=(2, 1), slice_range=(-0.5, 0.5), fov=0.6, centre=(MENISCUS_Z, 0.0)),
}


def _meniscus_masks(x, y, z, p):
    """Boolean masks of the medial (0) and lateral (1) menisci at the given coordinates."""
    masks = []
    for side in (-1, 1):
        cx = side * CONDYLE_X
        rho = np.hypot((x - cx) / p["men_scale"][0], (y / p["men_scale"][1]))
        r_in, r_out = 0.11, 0.21
        frac = np.clip((rho - r_in) / (r_out - r_in), 0, 1)
        half_height = 0.008 + 0.045 * frac  # wedge: thin inner edge, thick periphery
        ring = (rho > r_in) & (rho < r_out) & (np.abs(z - MENISCUS_Z) < half_height)
        # C shape: open towards the intercondylar notch (the midline, x = 0).
        angle = np.arctan2(y, (x - cx) * (-side))
        masks.append(ring & (np.abs(angle) > np.deg2rad(35)))
    return masks


def _knee_labels(x, y, z, p):
    """Tissue label of every point of a normalised knee frame."""
    lab = np.zeros(x.shape, np.uint8)
    soft = (x / 0.9) ** 2 + (y / 0.8) ** 2 < 1
    lab[soft] = LABELS["soft"]
    femur_shaft = (x**2 + (y + 0.05) ** 2 < 0.26**2) & (z > 0.2)
    condyles = np.zeros(x.shape, bool)
    for side in (-1, 1):
        condyles |= ((x - side * CONDYLE_X) / 0.2) ** 2 + (y / 0.3) ** 2 + ((z - 0.16) / 0.2) ** 2 < 1
    femur = femur_shaft | condyles | ((np.abs(x) < 0.3) & (np.abs(y + 0.05) < 0.26) & (z > 0.2))
    tibia = ((x / 0.5) ** 2 + (y / 0.36) ** 2 < 1) & (z < -0.13) & (z > -0.6)
    tibia |= (x**2 + y**2 < 0.28**2) & (z <= -0.6)
    # Cartilage: a shell on the condyles and on the plateau.
    cart = np.zeros(x.shape, bool)
    for side in (-1, 1):
        d = ((x - side * CONDYLE_X) / 0.23) ** 2 + (y / 0.33) ** 2 + ((z - 0.16) / 0.23) ** 2
        cart |= (d < 1) & (z < 0.16)
    cart |= ((x / 0.5) ** 2 + (y / 0.36) ** 2 < 1) & (z >= -0.13) & (z < -0.105)
    fluid = ((x / 0.55) ** 2 + (y / 0.42) ** 2 < 1) & (np.abs(z - MENISCUS_Z) < 0.075 + p["effusion"])
    lab[fluid] = LABELS["fluid"]
    lab[cart & ~femur] = LABELS["cartilage"]
    lab[femur | tibia] = LABELS["bone"]
    medial, lateral = _meniscus_masks(x, y, z, p)
    lab[medial | lateral] = LABELS["meniscus"]
    men = medial if p["lesion_side"] < 0 else lateral
    cx = p["lesion_side"] * CONDYLE_X
    angle = np.arctan2(y, x - cx)
    in_sector = np.abs(np.angle(np.exp(1j * (angle - p["lesion_angle"])))) < p["lesion_extent"]
    if p["tear"]:
        # A thin plane (horizontal or oblique) through the meniscus, reaching its surface.
        # Anchored mid-ring in the affected sector, so every plane orientation cuts the meniscus.
        n, a = p["tear_normal"], p["lesion_angle"]
        offset = (x - cx - 0.16 * np.cos(a)) * n[0] + (y - 0.16 * np.sin(a)) * n[1] + (z - MENISCUS_Z) * n[2]
        lab[men & in_sector & (np.abs(offset - p["tear_offset"]) < p["tear_width"])] = LABELS["fluid"]
    elif p["degeneration"]:
        blob = ((x - cx - 0.16 * np.cos(p["lesion_angle"])) ** 2 + (y - 0.16 * np.sin(p["lesion_angle"])) ** 2
                + (z - MENISCUS_Z) ** 2) < 0.03**2
        lab[men & blob] = LABELS["degeneration"]
    return lab, (medial, lateral)


def _case_params(rng, tear: bool) -> dict:
    normal = rng.normal(size=3)
    normal[2] += 3.0 * rng.choice([0.0, 1.0])  # horizontal tears are the commonest pattern
    normal /= np.linalg.norm(normal)
    return dict(
        tear=tear,
        degeneration=(not tear) and rng.random() < 0.25,
        lesion_side=rng.choice([-1, 1], p=[0.7, 0.3]),  # medial tears dominate in practice
        lesion_angle=rng.uniform(-np.pi, np.pi),
        lesion_extent=rng.uniform(1.0, 2.0),  # radians of the meniscal arc affected
        tear_normal=normal,
        tear_offset=rng.uniform(-0.01, 0.01),
        tear_width=rng.uniform(0.05, 0.08),  # half-width: a 5-8 px cleft at 64 px
        men_scale=rng.uniform(0.92, 1.08, size=2),
        effusion=rng.uniform(0.0, 0.02) + (0.025 * rng.random() if tear else 0.0),  # effusion: a secondary sign
        rotation=rng.normal(0, np.deg2rad(4), size=3),
        scale=rng.uniform(0.92, 1.08),
    )


def _rotation(angles) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _view_coordinates(view: str, shape, p, rng):
    """Knee-frame coordinates (x, y, z) of every voxel of a view's S x H x W grid."""
    geo = VIEW_GEOMETRY[view]
    n_slices, h, w = shape
    lo, hi = geo["slice_range"]
    jitter = rng.uniform(-0.03, 0.03)
    s = np.linspace(lo, hi, n_slices) + jitter
    # In-plane: image rows run from superior/anterior (top) down, as radiological displays do.
    fov, (c_row, c_col) = geo["fov"], geo["centre"]
    rows = c_row + np.linspace(fov, -fov, h)
    cols = c_col + np.linspace(-fov, fov, w)
    grid = np.meshgrid(s, rows, cols, indexing="ij")
    coords = [None, None, None]
    coords[geo["slice_axis"]] = grid[0]
    coords[geo["plane"][0]] = grid[1]
    coords[geo["plane"][1]] = grid[2]
    pts = np.stack([c.ravel() for c in coords]) / p["scale"]
    pts = _rotation(p["rotation"]) @ pts
    return [c.reshape(shape) for c in pts]


def _box_mask(masks, shape) -> np.ndarray:
    """Union of the 3-D bounding boxes of each meniscus on a view grid."""
    out = np.zeros(shape, np.uint8)
    for m in masks:
        idx = np.argwhere(m)
        if len(idx):
            lo, hi = idx.min(0), idx.max(0) + 1
            out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
    return out


def generate_case(shape, tear: bool, seed: int):
    """One phantom knee: {view: uint8 S x H x W} and {view: menisci box mask}."""
    rng = np.random.default_rng(seed)
    p = _case_params(rng, tear)
    images, boxes = {}, {}
    for view in VIEWS:
        x, y, z = _view_coordinates(view, shape, p, rng)
        lab, menisci = _knee_labels(x, y, z, p)
        contrast = VIEW_CONTRAST[view] * rng.uniform(0.9, 1.1, size=len(LABELS))
        img = contrast[lab]
        img = ndimage.gaussian_filter(img, sigma=(0, 0.6, 0.6))  # in-plane point-spread
        # Rician-like noise: magnitude of a complex signal with Gaussian noise.
        sd = rng.uniform(0.03, 0.06)
        img = np.hypot(img + rng.normal(0, sd, img.shape), rng.normal(0, sd, img.shape))
        bias = 1 + 0.15 * np.linspace(-1, 1, shape[1])[None, :, None] * rng.uniform(-1, 1)
        img = img * bias
        images[view] = np.clip(img / np.quantile(img, 0.999) * 255, 0, 255).astype(np.uint8)
        boxes[view] = _box_mask(menisci, shape)
    return images, boxes


def write_phantom_mrnet(out_dir, n_train: int, n_valid: int, tear_fraction: float, shape, seed: int):
    """Write train/valid cases in MRNet layout, `{split}-meniscus.csv`, and `boxes/{split}/{view}/NNNN.npy`."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    n = n_train + n_valid
    n_tear = int(round(n * tear_fraction))
    labels = np.array([1] * n_tear + [0] * (n - n_tear))
    rng.shuffle(labels)
    seeds = rng.integers(0, 2**31 - 1, size=n)
    with atomic_dir(out_dir) as tmp:
        tmp = Path(tmp)
        for split, cases in (("train", range(0, n_train)), ("valid", range(n_train, n))):
            rows = []
            for i in cases:
                images, boxes = generate_case(shape, bool(labels[i]), int(seeds[i]))
                case = f"{i:04d}"
                for view in VIEWS:
                    for root, arr in ((tmp / split / view, images[view]), (tmp / "boxes" / split / view, boxes[view])):
                        root.mkdir(parents=True, exist_ok=True)
                        np.save(root / f"{case}.npy", arr)
                rows.append((i, int(labels[i])))
            # MRNet's label files have no header; case ids are written without zero padding.
            pd.DataFrame(rows).to_csv(tmp / f"{split}-meniscus.csv", header=False, index=False)
    return labels
