"""Every loader error names the case and the file and says what to do."""
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from clinxai import ClinxaiError
from clinxai.data import brats, mrnet
from clinxai.data.checks import BadCasePolicy, CaseError
from clinxai.data.prepare import prepare


def first_case(root):
    return sorted(p for p in root.iterdir() if p.is_dir())[0]


def test_valid_case_loads(brats_dir):
    image, seg, affine = brats.load_case(first_case(brats_dir))
    assert image.shape == (4, 32, 32, 20) and seg.shape == (32, 32, 20) and affine.shape == (4, 4)


def test_missing_modality(brats_dir):
    case = first_case(brats_dir)
    (case / f"{case.name}_t2.nii.gz").unlink()
    with pytest.raises(CaseError, match=rf"case {case.name}: missing t2 file.*{case.name}_t2.nii.gz"):
        brats.load_case(case)


def test_extra_modality_file(brats_dir):
    case = first_case(brats_dir)
    (case / f"{case.name}_t1.nii.gz").rename(case / f"{case.name}_t1_copy.nii.gz")
    nib.save(nib.load(case / f"{case.name}_t1_copy.nii.gz"), case / f"{case.name}_t1.nii.gz")
    with pytest.raises(CaseError, match=r"unexpected NIfTI file.*t1_copy.*Remove or rename"):
        brats.load_case(case)


def _rewrite(path, data=None, affine=None):
    img = nib.load(path)
    data = np.asarray(img.dataobj) if data is None else data
    nib.save(nib.Nifti1Image(data, img.affine if affine is None else affine), path)


def test_shape_mismatch(brats_dir):
    case = first_case(brats_dir)
    _rewrite(case / f"{case.name}_flair.nii.gz", data=np.zeros((30, 32, 20), np.int16))
    with pytest.raises(CaseError, match=r"flair.*shape \(30, 32, 20\) differs from t1 \(32, 32, 20\)"):
        brats.load_case(case)


def test_affine_mismatch(brats_dir):
    case = first_case(brats_dir)
    path = case / f"{case.name}_t1ce.nii.gz"
    _rewrite(path, affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(CaseError, match=r"affine differs.*Resample"):
        brats.load_case(case)


def test_nan_voxels(brats_dir):
    case = first_case(brats_dir)
    data = np.asarray(nib.load(case / f"{case.name}_t2.nii.gz").dataobj).astype(np.float32)
    data[0, 0, :3] = np.nan
    _rewrite(case / f"{case.name}_t2.nii.gz", data=data)
    with pytest.raises(CaseError, match=rf"case {case.name}: 3 NaN/Inf voxels.*_t2.nii.gz"):
        brats.load_case(case)


def test_empty_and_missing_segmentation(brats_dir):
    case = first_case(brats_dir)
    seg = case / f"{case.name}_seg.nii.gz"
    _rewrite(seg, data=np.zeros((32, 32, 20), np.uint8))
    with pytest.raises(CaseError, match=r"empty segmentation.*_seg.nii.gz"):
        brats.load_case(case)
    seg.unlink()
    with pytest.raises(CaseError, match=r"missing seg file"):
        brats.load_case(case)


def test_bad_seg_labels(brats_dir):
    case = first_case(brats_dir)
    _rewrite(case / f"{case.name}_seg.nii.gz", data=np.full((32, 32, 20), 3, np.uint8))
    with pytest.raises(CaseError, match=r"seg labels \[3\]"):
        brats.load_case(case)


def test_case_without_label_and_label_without_case(brats_dir):
    mapping = pd.read_csv(brats_dir / "name_mapping.csv")
    dropped = mapping.iloc[0]["BraTS_2020_subject_ID"]
    mapping.iloc[1:].to_csv(brats_dir / "name_mapping.csv", index=False)
    with pytest.raises(CaseError, match=rf"case {dropped}: case folder without a label"):
        brats.scan(brats_dir, BadCasePolicy("stop"))
    mapping.to_csv(brats_dir / "name_mapping.csv", index=False)
    gone = first_case(brats_dir)
    shutil.rmtree(gone)
    with pytest.raises(CaseError, match=rf"case {gone.name}: label without a case folder"):
        brats.scan(brats_dir, BadCasePolicy("stop"))


def test_bad_grade(brats_dir):
    mapping = pd.read_csv(brats_dir / "name_mapping.csv")
    mapping.loc[0, "Grade"] = "GBM"
    mapping.to_csv(brats_dir / "name_mapping.csv", index=False)
    with pytest.raises(ClinxaiError, match=r"Grade 'GBM'; expected LGG or HGG"):
        brats.read_labels(brats_dir)


SPLIT = {"fractions": {"train": 0.5, "val": 0.25, "test": 0.25}, "seed": 0}


def _outputs(tmp_path):
    return {k: tmp_path / "out" / v for k, v in
            dict(split="split.csv", excluded="excluded.csv", meta="meta.json", arrays="arrays").items()}


def test_exclude_policy_lists_the_bad_case(brats_dir, tmp_path):
    # Add two healthy copies so every split keeps a case of each class after the exclusion.
    case = first_case(brats_dir)
    (case / f"{case.name}_flair.nii.gz").unlink()
    cfg = {"root": str(brats_dir), "grid": [16, 16, 8], "on_bad_case": "exclude"}
    out = _outputs(tmp_path)
    meta = prepare("glioma", "brats", cfg, SPLIT, out)
    excluded = pd.read_csv(out["excluded"])
    assert excluded["case"].tolist() == [case.name] and "missing flair" in excluded["problem"][0]
    assert meta["n_cases"] == 5 and case.name not in pd.read_csv(out["split"])["case"].tolist()
    with pytest.raises(CaseError, match=case.name):
        prepare("glioma", "brats", {**cfg, "on_bad_case": "stop"}, SPLIT, _outputs(tmp_path / "again"))
    assert not (tmp_path / "again" / "out" / "arrays").exists()  # nothing half-written


def test_prepared_glioma_arrays(brats_dir, tmp_path):
    out = _outputs(tmp_path)
    prepare("glioma", "brats", {"root": str(brats_dir), "grid": [16, 16, 8], "on_bad_case": "stop"}, SPLIT, out)
    split = pd.read_csv(out["split"])
    arr = np.load(out["arrays"] / f"{split.case[0]}.npz")
    assert arr["image"].shape == (4, 16, 16, 8) and arr["seg"].shape == (16, 16, 8)
    brain = arr["brain"] > 0
    assert np.allclose(arr["image"][:, brain].mean(1), 0, atol=1e-4)
    assert np.allclose(arr["image"][:, brain].std(1), 1, atol=1e-3)
    assert (arr["image"][:, ~brain] == 0).all()


# ---- MRNet ----

def test_mrnet_valid_case(mrnet_dir):
    views, boxes = mrnet.load_case(mrnet_dir, "train", "0000", mrnet_dir / "boxes")
    assert set(views) == {"axial", "coronal", "sagittal"} and boxes["axial"].shape == views["axial"].shape


def test_mrnet_missing_view(mrnet_dir):
    (mrnet_dir / "train" / "coronal" / "0001.npy").unlink()
    with pytest.raises(CaseError, match=r"case 0001: missing coronal view.*coronal/0001.npy"):
        mrnet.load_case(mrnet_dir, "train", "0001")


def test_mrnet_nan_and_shape(mrnet_dir):
    np.save(mrnet_dir / "train" / "axial" / "0002.npy", np.full((6, 24, 24), np.nan, np.float32))
    with pytest.raises(CaseError, match=r"case 0002: 3456 NaN/Inf voxels.*axial/0002.npy"):
        mrnet.load_case(mrnet_dir, "train", "0002")
    np.save(mrnet_dir / "train" / "axial" / "0003.npy", np.arange(6 * 20 * 20, dtype=np.uint16).reshape(6, 20, 20))
    with pytest.raises(CaseError, match=r"case 0003: views have different in-plane sizes"):
        mrnet.load_case(mrnet_dir, "train", "0003")


def test_mrnet_box_problems(mrnet_dir):
    boxes = mrnet_dir / "boxes"
    np.save(boxes / "train" / "sagittal" / "0004.npy", np.zeros((6, 24, 24), np.uint8))
    with pytest.raises(CaseError, match=r"case 0004: empty menisci box mask.*sagittal/0004.npy"):
        mrnet.load_case(mrnet_dir, "train", "0004", boxes)
    (boxes / "train" / "axial" / "0005.npy").unlink()
    with pytest.raises(CaseError, match=r"case 0005: missing menisci box mask for the axial view"):
        mrnet.load_case(mrnet_dir, "train", "0005", boxes)


def test_mrnet_label_mismatches(mrnet_dir):
    csv = mrnet_dir / "train-meniscus.csv"
    rows = csv.read_text().splitlines()
    csv.write_text("\n".join(rows[1:]) + "\n")
    with pytest.raises(CaseError, match=r"case 0000: case without a label"):
        mrnet.scan(mrnet_dir, BadCasePolicy("stop"))
    csv.write_text("\n".join(rows + ["99,1"]) + "\n")
    policy = BadCasePolicy("exclude")
    cases = mrnet.scan(mrnet_dir, policy)
    assert [e["case"] for e in policy.excluded] == ["0099"] and "label without a case" in policy.excluded[0]["problem"]
    assert len(cases) == 10


def test_prepared_knee_arrays(mrnet_dir, tmp_path):
    out = _outputs(tmp_path)
    cfg = {"root": str(mrnet_dir), "boxes_dir": str(mrnet_dir / "boxes"), "grid": [4, 16, 16], "on_bad_case": "stop"}
    meta = prepare("knee", "mrnet", cfg, SPLIT, out)
    split = pd.read_csv(out["split"], dtype={"case": str})
    arr = np.load(out["arrays"] / f"{split.case[0]}.npz")
    assert meta["n_cases"] == 10 and arr["axial"].shape == (4, 16, 16) and arr["box_axial"].any()


def test_prepared_arrays_do_not_depend_on_torch_threads(brats_dir, tmp_path):
    """The anti-aliased resize summed in a thread-dependent order: --cores 1 and --cores 2 gave different arrays."""
    import torch

    cfg = {"root": str(brats_dir), "grid": [16, 16, 8], "on_bad_case": "stop"}
    arrays = []
    for n in (1, 2):
        torch.set_num_threads(n)
        prepare("glioma", "brats", cfg, SPLIT, _outputs(tmp_path / str(n)), threads=n)
        arrays.append({p.name: dict(np.load(p)) for p in sorted((tmp_path / str(n) / "out" / "arrays").glob("*.npz"))})
    assert arrays[0].keys() == arrays[1].keys()
    for case in arrays[0]:
        assert all(np.array_equal(arrays[0][case][k], arrays[1][case][k]) for k in arrays[0][case]), case
