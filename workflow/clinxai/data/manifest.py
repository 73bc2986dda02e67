"""Reader and validator of the manifest dataset kind: the user's own data as a CSV, one row per case (issue 23).

    case,label,split,group,T2,ADC,mask
    p001,1,train,patientA,images/p001_t2.nii.gz,images/p001_adc.nii.gz,masks/p001.nii.gz

`case` and `label` are required (a label is a class index 0, 1, ... or a name of `data.<task>.classes`); `split`
(train / val / test) and `group` (a patient id: the rows of a group share a split) are optional; one column per
modality of `data.<task>.modalities` and, optionally, the mask column `data.<task>.mask`. File paths are relative to
the manifest's folder (or absolute): NIfTI (.nii, .nii.gz) or NumPy (.npy). A problem of one row is a case error
naming the manifest, its line, the case and the column (excludable with on_bad_case: exclude); a problem of the
table (a missing column, a duplicated case, a label that is no class) stops with the line to fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import ClinxaiError
from .checks import BadCasePolicy, CaseError, check_finite, check_not_blank, check_voxel_type, unreadable

SPLITS = ("train", "val", "test")
SUFFIXES = (".nii.gz", ".nii", ".npy")


def _line(i: int) -> int:
    return i + 2  # the header is line 1


def read_manifest(path, modalities, mask: str | None, classes, policy: BadCasePolicy) -> pd.DataFrame:
    """The manifest's cases: DataFrame(case, label, split?, group?, line, files) -- `files` maps each modality (and
    "mask") to an absolute path. Rows whose files are missing go through `policy`."""
    path = Path(path)
    try:
        # blank lines kept, then dropped with their index: line numbers stay the file's
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except Exception as err:  # empty, binary or unreadable
        raise ClinxaiError(f"manifest {path} cannot be read as CSV ({type(err).__name__}: {str(err)[:160]}).") from err
    table.columns = [c.strip() for c in table.columns]
    needed = ["case", "label", *modalities] + ([mask] if mask else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ClinxaiError(f"manifest {path} lacks column(s) {missing} (found {list(table.columns)}): it needs case, "
                           "label, one column per modality of data.<task>.modalities and the mask column if "
                           "data.<task>.mask names one.")
    if table.empty:
        raise ClinxaiError(f"manifest {path} has no rows: add one row per case.")
    table = table.apply(lambda col: col.str.strip())
    table = table[(table != "").any(axis=1)]
    if table.empty:
        raise ClinxaiError(f"manifest {path} has no rows: add one row per case.")
    _check_ids(path, table)
    labels = _labels(path, table, [str(c) for c in classes])
    rows = []
    for i, r in table.iterrows():
        files = {}
        for column in [*modalities] + ([mask] if mask else []):
            file = _resolve(path, r[column])
            if not r[column] or not file.is_file() or not str(file).endswith(SUFFIXES):
                problem = ("no file given" if not r[column] else f"{r[column]} not found" if not file.is_file()
                           else f"{r[column]} is neither NIfTI (.nii, .nii.gz) nor NumPy (.npy)")
                policy.handle(CaseError(r["case"], path, f"manifest line {_line(i)}, column {column}: {problem}",
                                        "Fix the path (relative to the manifest's folder), or exclude the case "
                                        "(data.<task>.on_bad_case: exclude)."))
                break
            files["mask" if column == mask and mask else column] = str(file)
        else:
            row = {"case": r["case"], "label": labels[i], "line": _line(i), "files": files}
            row.update({k: r[k] for k in ("split", "group") if k in table.columns})
            rows.append(row)
    if not rows:
        raise ClinxaiError(f"manifest {path}: no usable case; see the excluded list for why.")
    return pd.DataFrame(rows)


def _resolve(manifest: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (manifest.parent / p)


def _check_ids(path: Path, table: pd.DataFrame) -> None:
    for i, case in table["case"].items():
        if not case or not case.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ClinxaiError(f"manifest {path} line {_line(i)}: case id {case!r} -- use letters, digits, '-', '_' "
                               "or '.' (it names files of the results).")
    dup = table["case"][table["case"].duplicated(keep=False)]
    if len(dup):
        case = dup.iloc[0]
        lines = [str(_line(i)) for i in dup.index[dup == case]]
        raise ClinxaiError(f"manifest {path}: case {case} is on lines {' and '.join(lines)}. Keep one row per case.")
    if "split" in table.columns:
        bad = table.index[~table["split"].isin(SPLITS)]
        if len(bad):
            i = bad[0]
            raise ClinxaiError(f"manifest {path} line {_line(i)} (case {table.at[i, 'case']}), column split: "
                               f"{table.at[i, 'split']!r} -- use train, val or test.")
        if "group" in table.columns:
            for group, parts in table[table["group"] != ""].groupby("group")["split"]:
                if parts.nunique() > 1:
                    lines = ", ".join(f"{_line(i)} ({s})" for i, s in parts.items())
                    raise ClinxaiError(f"manifest {path}: group {group} straddles splits on lines {lines}: the rows "
                                       "of one patient belong in one split. Fix the split column.")


def _labels(path: Path, table: pd.DataFrame, classes: list[str]) -> list[int]:
    """Class index per row: a class name of `classes` or an integer 0 .. len(classes) - 1."""
    numeric = [c for i, c in enumerate(classes) if c.lstrip("-").isdigit() and int(c) != i]
    if numeric:  # "2" could be the name or the index
        raise ClinxaiError(f"data.<task>.classes {classes}: class name {numeric[0]!r} is a number other than its "
                           "index; name classes by words, or list them so that class k is named k.")
    out = []
    for i, value in table["label"].items():
        if value in classes:
            out.append(classes.index(value))
        elif value.lstrip("-").isdigit() and 0 <= int(value) < len(classes):
            out.append(int(value))
        else:
            raise ClinxaiError(f"manifest {path} line {_line(i)} (case {table.at[i, 'case']}), column label: "
                               f"{value!r} is not a class -- use 0 to {len(classes) - 1} or one of {classes} "
                               "(data.<task>.classes).")
    return out


def read_array(case: str, path: str, name: str, n_dims: int):
    """(voxels float32, affine 4x4) of one NIfTI or .npy file of `n_dims` spatial axes (a 2-D slice stored as
    X x Y x 1 is read as X x Y); a case error naming the file otherwise."""
    try:
        if path.endswith(".npy"):
            data = np.load(path, allow_pickle=False)
            affine = np.eye(4)
        else:
            import nibabel as nib

            img = nib.load(path)
            data, affine = np.asanyarray(img.dataobj), img.affine
        check_voxel_type(case, path, np.asarray(data))
        data = np.asarray(data, dtype=np.float32)
    except CaseError:
        raise
    except Exception as err:  # truncated gzip, a pickled object array, not NIfTI, permission denied
        raise unreadable(case, path, err) from err
    if n_dims == 2 and data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != n_dims:
        what = "3-D volume" if n_dims == 3 else "2-D slice"
        raise CaseError(case, path, f"{name} has shape {data.shape}, expected a {what} (data.<task>.layout)",
                        "Give one image per modality and file; for a different input layout set data.<task>.layout.")
    check_finite(case, path, data)
    return data, affine


def load_case(row, modalities, n_dims: int):
    """(image C x spatial, mask or None, affine) of one manifest row, every modality on one grid; a case error
    names the manifest line and column."""
    column = {"name": None}
    try:
        return _load_case(row, modalities, n_dims, column)
    except CaseError as err:
        if "manifest line" in err.problem:
            raise
        raise CaseError(err.case, err.path, f"manifest line {row.line}, column {column['name']}: {err.problem}",
                        err.fix) from None


def _load_case(row, modalities, n_dims: int, column: dict):
    channels, affine, shape = [], None, None
    for name in modalities:
        column["name"] = name
        data, aff = read_array(row.case, row.files[name], name, n_dims)
        if shape is None:
            shape, affine = data.shape, aff
        elif data.shape != shape:
            raise CaseError(row.case, row.files[name], f"manifest line {row.line}: {name} has shape {data.shape}, "
                            f"{modalities[0]} {shape}", "Resample every modality of a case onto one grid.")
        elif not np.allclose(aff, affine, atol=1e-3):
            raise CaseError(row.case, row.files[name], f"manifest line {row.line}: {name}'s affine differs from "
                            f"{modalities[0]}'s", "Co-register the modalities onto one grid (same affine).")
        channels.append(data)
    foreground = np.any([c != 0 for c in channels], axis=0)
    for name, data in zip(modalities, channels):
        column["name"] = name
        check_not_blank(row.case, row.files[name], name, data, foreground)
    mask = None
    if "mask" in row.files:
        column["name"] = "mask"
        m, _ = read_array(row.case, row.files["mask"], "mask", n_dims)
        if m.shape != shape:
            raise CaseError(row.case, row.files["mask"], f"manifest line {row.line}: mask shape {m.shape} differs "
                            f"from the image shape {shape}", "The mask must be on the image grid.")
        mask = m > 0
        if not mask.any():
            raise CaseError(row.case, row.files["mask"], f"manifest line {row.line}: empty mask",
                            "Plausibility needs a clinical region: fix the mask or exclude the case.")
    return np.stack(channels), mask, affine
