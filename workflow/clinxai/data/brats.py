"""Reader and validator for the BraTS 2020 training layout (real data and phantoms alike).

    <root>/name_mapping.csv                      columns Grade (LGG/HGG) and BraTS_2020_subject_ID
    <root>/BraTS20_Training_NNN/BraTS20_Training_NNN_{t1,t1ce,t2,flair,seg}.nii[.gz]
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .. import ClinxaiError
from .checks import BadCasePolicy, CaseError, check_finite, check_not_blank, check_voxel_type, unreadable

MODALITIES = ("t1", "t1ce", "t2", "flair")  # channel order of the glioma task: T1, T1C, T2, FLAIR
CHANNEL_NAMES = ("T1", "T1C", "T2", "FLAIR")
GRADES = {"LGG": 0, "HGG": 1}
SEG_LABELS = {0, 1, 2, 4}
MAPPING = "name_mapping.csv"


def read_labels(root: Path) -> dict[str, int]:
    path = root / MAPPING
    if not path.is_file():
        raise ClinxaiError(f"{path} not found: a BraTS 2020 training folder has name_mapping.csv with columns "
                           "'Grade' and 'BraTS_2020_subject_ID'. Point data.<task>.brats_dir at that folder.")
    try:
        table = pd.read_csv(path, dtype=str)
    except Exception as err:  # empty, binary or unreadable
        raise ClinxaiError(f"{path} cannot be read as CSV ({type(err).__name__}: {str(err)[:160]}); restore the "
                           "BraTS name_mapping.csv.") from err
    missing = {"Grade", "BraTS_2020_subject_ID"} - set(table.columns)
    if missing:
        raise ClinxaiError(f"{path} lacks column(s) {sorted(missing)}; found {list(table.columns)}.")
    ids = table["BraTS_2020_subject_ID"].fillna("").str.strip()
    for i, (case, grade) in enumerate(zip(ids, table["Grade"])):
        if grade not in GRADES:  # line i + 2: the header is line 1
            raise ClinxaiError(f"{path} line {i + 2}: case {case or '(no id)'} has Grade {grade!r}; expected LGG or "
                               "HGG. Fix the row.")
        if not case:
            raise ClinxaiError(f"{path} line {i + 2}: no BraTS_2020_subject_ID. Fill it in or remove the row.")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        case = dup.iloc[0]
        lines = [str(i + 2) for i in dup.index[dup == case]]
        grades = sorted(set(table.loc[dup.index[dup == case], "Grade"]))
        raise ClinxaiError(f"{path}: case {case} is listed on lines {' and '.join(lines)} (grades {', '.join(grades)})"
                           ". Keep one row per case.")
    return dict(zip(ids, table["Grade"].map(GRADES).astype(int)))


def _find(case_dir: Path, case: str, name: str) -> Path | None:
    for suffix in (".nii.gz", ".nii"):
        p = case_dir / f"{case}_{name}{suffix}"
        if p.is_file():
            return p
    return None


def case_files(case_dir: Path, require_seg: bool = True) -> dict[str, Path]:
    """Paths of the four modalities and the seg of one case; raises CaseError on missing or extra files."""
    case = case_dir.name
    files = {}
    for name in MODALITIES + ("seg",):
        p = _find(case_dir, case, name)
        if p is None and (name != "seg" or require_seg):
            raise CaseError(case, case_dir / f"{case}_{name}.nii.gz", f"missing {name} file",
                            "Every case needs t1, t1ce, t2, flair and seg NIfTI files named <case>_<modality>.nii.gz.")
        if p is not None:
            files[name] = p
    known = set(files.values())
    extra = sorted(p.name for p in case_dir.iterdir() if p.name.endswith((".nii", ".nii.gz")) and p not in known)
    if extra:
        raise CaseError(case, case_dir / extra[0], f"unexpected NIfTI file(s) {extra}",
                        "Remove or rename them: each case folder holds exactly one file per modality and a seg.")
    return files


def load_case(case_dir: Path, require_seg: bool = True):
    """(image C x X x Y x Z float32, seg uint8 or None, affine) of one validated case."""
    case_dir = Path(case_dir)
    case = case_dir.name
    files = case_files(case_dir, require_seg)
    images = {name: _read(case, files[name], name) for name in (*MODALITIES, "seg") if name in files}
    ref = images[MODALITIES[0]][0]
    channels = []
    for name in MODALITIES:
        img, data = images[name]
        if img.shape != ref.shape:
            raise CaseError(case, files[name], f"{name} shape {img.shape} differs from {MODALITIES[0]} {ref.shape}",
                            "All modalities must be co-registered 3-D volumes on one grid (BraTS: 240x240x155).")
        if not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise CaseError(case, files[name], f"{name} affine differs from {MODALITIES[0]}'s",
                            "Resample all modalities onto one grid before running the workflow.")
        check_finite(case, files[name], data)
        channels.append(data)
    brain = np.any([c != 0 for c in channels], axis=0)
    for name, data in zip(MODALITIES, channels):
        check_not_blank(case, files[name], name, data, brain)
    seg = None
    if "seg" in files:
        img, seg_f = images["seg"]
        if img.shape != ref.shape:
            raise CaseError(case, files["seg"], f"seg shape {img.shape} differs from the image shape {ref.shape}",
                            "The segmentation must be on the image grid.")
        check_finite(case, files["seg"], seg_f)
        seg = np.rint(seg_f).astype(np.uint8)
        labels = set(np.unique(seg).tolist())
        if not labels <= SEG_LABELS:
            raise CaseError(case, files["seg"], f"seg labels {sorted(labels - SEG_LABELS)} outside {{0,1,2,4}}",
                            "Use the BraTS label convention: 1 necrotic core, 2 oedema, 4 enhancing tumour.")
        if not (seg > 0).any():
            raise CaseError(case, files["seg"], "empty segmentation (no tumour voxel)",
                            "Plausibility needs a tumour mask: fix the seg or exclude the case.")
    return np.stack(channels), seg, ref.affine


def _read(case: str, path: Path, name: str):
    """(NIfTI image, float32 voxels) of one file, as a case error when it cannot be read or is not a 3-D volume."""
    try:
        img = nib.load(path)
        shape = img.shape
        if len(shape) == 3:
            check_voxel_type(case, path, np.asanyarray(img.dataobj[:1, :1, :1]))
            data = np.asarray(img.dataobj, dtype=np.float32)
    except CaseError:
        raise
    except Exception as err:  # truncated gzip, not NIfTI, permission denied
        raise unreadable(case, path, err) from err
    if len(shape) != 3:
        raise CaseError(case, path, f"{name} is a {len(shape)}-D image of shape {shape}, expected a 3-D volume",
                        "Give one 3-D volume per modality (BraTS: 240 x 240 x 155); split 4-D series, stack 2-D slices.")
    return img, data


def scan(root, policy: BadCasePolicy, require_seg: bool = True) -> pd.DataFrame:
    """Cases with a label and a folder: DataFrame(case, label, path). Mismatches go through `policy`."""
    root = Path(root)
    if not root.is_dir():
        raise ClinxaiError(f"BraTS folder {root} does not exist: set data.<task>.brats_dir to your "
                           "MICCAI_BraTS2020_TrainingData folder.")
    labels = read_labels(root)
    dirs = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    rows = []
    for case in sorted(set(labels) | set(dirs)):
        if case not in dirs:
            policy.handle(CaseError(case, root / MAPPING, "label without a case folder",
                                    f"Add the folder {root / case} or remove its row from {MAPPING}."))
        elif case not in labels:
            policy.handle(CaseError(case, dirs[case], "case folder without a label",
                                    f"Add a row for {case} to {MAPPING} or move the folder out of {root}."))
        else:
            rows.append({"case": case, "label": labels[case], "path": str(dirs[case])})
    if not rows:
        raise ClinxaiError(f"no usable case in {root}")
    return pd.DataFrame(rows)
