"""Reader and validator for the MRNet layout (real data and phantoms alike).

    <root>/{train,valid}/{axial,coronal,sagittal}/NNNN.npy    S x H x W uint8 per view
    <root>/{train,valid}-meniscus.csv                          'case,label' with no header
    <boxes>/{train,valid}/{axial,coronal,sagittal}/NNNN.npy    menisci box mask, same shape as the view (optional)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import ClinxaiError
from .checks import BadCasePolicy, CaseError, check_finite

VIEWS = ("axial", "coronal", "sagittal")
SPLITS = ("train", "valid")


def read_labels(root: Path, split: str) -> dict[str, int]:
    path = root / f"{split}-meniscus.csv"
    if not path.is_file():
        raise ClinxaiError(f"{path} not found: MRNet has {split}-meniscus.csv ('case,label', no header). "
                           "Point data.knee.mrnet_dir at the MRNet-v1.0 folder.")
    table = pd.read_csv(path, header=None, names=["case", "label"], dtype={"case": str})
    if not table["label"].isin([0, 1]).all():
        raise ClinxaiError(f"{path}: labels must be 0 or 1, found {sorted(table['label'].unique().tolist())}.")
    return {f"{int(c):04d}": int(lab) for c, lab in zip(table["case"], table["label"])}


def load_case(root, split: str, case: str, boxes_dir=None):
    """({view: float32 S x H x W}, {view: uint8 box mask} or None) of one validated case."""
    root = Path(root)
    views, boxes = {}, {} if boxes_dir else None
    for view in VIEWS:
        path = root / split / view / f"{case}.npy"
        if not path.is_file():
            raise CaseError(case, path, f"missing {view} view", "Each case needs axial, coronal and sagittal .npy.")
        arr = np.load(path)
        if arr.ndim != 3:
            raise CaseError(case, path, f"{view} view has shape {arr.shape}, expected 3-D (slices x H x W)",
                            "Save each view as a slices x height x width array.")
        check_finite(case, path, arr)
        views[view] = arr.astype(np.float32)
        if boxes_dir:
            bpath = Path(boxes_dir) / split / view / f"{case}.npy"
            if not bpath.is_file():
                raise CaseError(case, bpath, f"missing menisci box mask for the {view} view",
                                "Add the mask, set data.knee.boxes_dir: null to skip plausibility, or exclude.")
            box = np.load(bpath)
            if box.shape != arr.shape:
                raise CaseError(case, bpath, f"box mask shape {box.shape} differs from the {view} view {arr.shape}",
                                "The box mask must be on the view's grid.")
            if not (box > 0).any():
                raise CaseError(case, bpath, "empty menisci box mask", "Fix the annotation or exclude the case.")
            boxes[view] = (box > 0).astype(np.uint8)
    in_plane = {v: a.shape[1:] for v, a in views.items()}
    if len(set(in_plane.values())) != 1:
        raise CaseError(case, root / split, f"views have different in-plane sizes {in_plane}",
                        "MRNet views are all 256 x 256 in-plane; resample the odd view.")
    return views, boxes


def scan(root, policy: BadCasePolicy) -> pd.DataFrame:
    """Labelled cases of both MRNet splits: DataFrame(case, label, source_split)."""
    root = Path(root)
    if not root.is_dir():
        raise ClinxaiError(f"MRNet folder {root} does not exist: set data.knee.mrnet_dir to your MRNet-v1.0 folder.")
    rows = []
    for split in SPLITS:
        labels = read_labels(root, split)
        view_dir = root / split / VIEWS[0]
        on_disk = {p.stem for p in view_dir.glob("*.npy")} if view_dir.is_dir() else set()
        for case in sorted(set(labels) | on_disk):
            if case not in on_disk:
                policy.handle(CaseError(case, view_dir / f"{case}.npy", "label without a case",
                                        f"Add the case's .npy files or remove it from {split}-meniscus.csv."))
            elif case not in labels:
                policy.handle(CaseError(case, view_dir / f"{case}.npy", "case without a label",
                                        f"Add '{int(case)},<0|1>' to {split}-meniscus.csv or remove the files."))
            else:
                rows.append({"case": case, "label": labels[case], "source_split": split})
    if not rows:
        raise ClinxaiError(f"no usable case in {root}")
    return pd.DataFrame(rows)
