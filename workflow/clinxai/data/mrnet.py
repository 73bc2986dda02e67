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
from .checks import BadCasePolicy, CaseError, check_finite, check_not_blank, check_voxel_type, unreadable

VIEWS = ("axial", "coronal", "sagittal")
SPLITS = ("train", "valid")


def read_labels(root: Path, split: str) -> dict[str, int]:
    path = root / f"{split}-meniscus.csv"
    if not path.is_file():
        raise ClinxaiError(f"{path} not found: MRNet has {split}-meniscus.csv ('case,label', no header). "
                           "Point data.<task>.mrnet_dir at the MRNet-v1.0 folder.")
    try:
        table = pd.read_csv(path, header=None, names=["case", "label"], dtype=str, skip_blank_lines=True)
    except Exception as err:
        raise ClinxaiError(f"{path} cannot be read as CSV ({type(err).__name__}: {str(err)[:160]}); MRNet label "
                           "files hold 'case,label' rows.") from err
    labels, lines = {}, {}
    for i, (case, label) in enumerate(zip(table["case"], table["label"]), start=1):
        case, label = str(case).strip(), str(label).strip()
        if not case.isdigit() or label not in ("0", "1"):
            hint = ("remove the header line: MRNet label files have none" if i == 1 and not case.isdigit()
                    else "each row is '<case number>,<0|1>'")
            raise ClinxaiError(f"{path} row {i}: {case!r},{label!r} is not a case number and a 0/1 label; {hint}.")
        key = f"{int(case):04d}"
        if key in labels:
            raise ClinxaiError(f"{path}: case {key} is listed on rows {lines[key]} and {i}"
                               f"{' with different labels' if labels[key] != int(label) else ''}. Keep one row.")
        labels[key], lines[key] = int(label), i
    return labels


def load_case(root, split: str, case: str, boxes_dir=None):
    """({view: float32 S x H x W}, {view: uint8 box mask} or None) of one validated case."""
    root = Path(root)
    views, boxes = {}, {} if boxes_dir else None
    for view in VIEWS:
        path = root / split / view / f"{case}.npy"
        if not path.is_file():
            raise CaseError(case, path, f"missing {view} view", "Each case needs axial, coronal and sagittal .npy.")
        arr = _load(case, path)
        if arr.ndim != 3:
            raise CaseError(case, path, f"{view} view has shape {arr.shape}, expected 3-D (slices x H x W)",
                            "Save each view as a slices x height x width array.")
        check_finite(case, path, arr)
        check_not_blank(case, path, f"{view} view", arr)
        views[view] = arr.astype(np.float32)
        if boxes_dir:
            bpath = Path(boxes_dir) / split / view / f"{case}.npy"
            if not bpath.is_file():
                raise CaseError(case, bpath, f"missing menisci box mask for the {view} view",
                                "Add the mask, set data.<task>.boxes_dir: null to skip plausibility, or exclude.")
            box = _load(case, bpath, image=False)
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


def _load(case: str, path: Path, image: bool = True) -> np.ndarray:
    """One .npy file; unreadable files (truncated, pickled objects, no permission) are case errors."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:
        raise unreadable(case, path, err) from err
    if image:
        check_voxel_type(case, path, arr)
    return arr


def scan(root, policy: BadCasePolicy) -> pd.DataFrame:
    """Labelled cases of both MRNet splits: DataFrame(case, label, source_split)."""
    root = Path(root)
    if not root.is_dir():
        raise ClinxaiError(f"MRNet folder {root} does not exist: set data.<task>.mrnet_dir to your MRNet-v1.0 folder.")
    rows, seen = [], {}
    for split in SPLITS:
        labels = read_labels(root, split)
        both = sorted(set(labels) & set(seen))
        if both:  # one arrays/<case>.npz would hold two cases with possibly two labels, in train and test
            raise ClinxaiError(f"case {both[0]} is in both {seen[both[0]]} and {root / f'{split}-meniscus.csv'}"
                               f"{f' (and {len(both) - 1} more)' if len(both) > 1 else ''}: MRNet case numbers must be "
                               "unique across train and valid. Renumber or remove one of them.")
        seen.update({c: root / f"{split}-meniscus.csv" for c in labels})
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
