"""A catalogue of bad inputs and faults, as a new user meets them: each one stops with a message that names the key
or the file (and the case) and says what to do; where the README promises it, `on_bad_case: exclude` skips the case
and lists it; and nothing computed before is lost (the outputs of a good earlier run survive a failed one)."""
import gzip
import re
import shutil
from dataclasses import dataclass
from typing import Callable

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from clinxai import ClinxaiError
from clinxai.config import ConfigError, check_against_results, check_device, load_config_file, validate_config
from clinxai.data.prepare import prepare
from clinxai.io import save_csv
from clinxai.models import GeneNet3D, load_checkpoint, save_checkpoint

from helpers import ROOT

DEMO = yaml.safe_load((ROOT / "config/config.yaml").read_text())
SPLIT = {"fractions": {"train": 0.5, "val": 0.25, "test": 0.25}, "seed": 0}


# ---- configuration ----
def _cfg(edit):
    import copy

    c = copy.deepcopy(DEMO)
    edit(c)
    return c


CONFIG_FAULTS = {
    "unknown key": (lambda c: c["data"]["glioma"].update(gird=[1, 2, 3]), r"unknown config key\(s\) data\.glioma\.gird"),
    "grid of two numbers": (lambda c: c["data"]["glioma"].update(grid=[4, 4]), r"data\.glioma\.grid = \[4, 4\].*three"),
    "bad on_bad_case": (lambda c: c["data"]["knee"].update(on_bad_case="skip"), r"data\.knee\.on_bad_case.*'exclude'"),
    "fractions not summing to 1": (lambda c: c["split"].update(fractions={"train": 0.5, "val": 0.1, "test": 0.1}),
                                   r"split\.fractions.*must sum to 1"),
    "unknown method": (lambda c: c["heatmaps"]["params"]["glioma"].update(SmoothGradd={}),
                       r"heatmaps\.params\.glioma: 'SmoothGradd'.*Known"),
    "unknown task kind": (lambda c: c["data"]["glioma"].update(kind="brain"), r"data\.glioma\.kind = 'brain'.*known"),
    "task without data": (lambda c: c["tasks"].append("lungs"), r"tasks lists lungs without an entry under data"),
    "per-task key for no task": (lambda c: c["truthfulness"]["metric"].update(glioam="auc"),
                                 r"unknown config key\(s\) truthfulness\.metric\.glioam"),
    "reserved task name": (lambda c: (c["data"].update(all=c["data"]["knee"] | {"kind": "knee"})),
                           r"task name 'all' \(data\.all\) is reserved"),
    "missing BraTS folder": (lambda c: c["data"]["glioma"].update(source="brats", brats_dir="/nonexistent/BraTS"),
                             r"data\.glioma\.brats_dir = '/nonexistent/BraTS'.*name_mapping\.csv not found"),
    "GAN source of the wrong kind": (lambda c: c["data"]["synthetic"].update(source_task="knee"),
                                     r"data\.synthetic\.source_task = 'knee': not a glioma task"),
}


@pytest.mark.parametrize("name", CONFIG_FAULTS)
def test_config_fault_names_the_key(name):
    edit, message = CONFIG_FAULTS[name]
    with pytest.raises(ConfigError, match=message):
        validate_config(_cfg(edit))


FILE_FAULTS = {
    "key given twice": ("seeds: [10]\nsplit:\n  seed: 0\n  seed: 1\n", r"x\.yaml:4:3: key 'seed' appears twice"),
    "unclosed bracket": ("seeds: [10\nsplit: {seed: 0}\n", r"x\.yaml:2:\d+: not valid YAML"),
    "tab indentation": ("split:\n\tseed: 0\n", r"x\.yaml:2:1: not valid YAML"),
}


@pytest.mark.parametrize("name", FILE_FAULTS)
def test_config_file_fault_names_file_line_and_column(name, tmp_path):
    text, message = FILE_FAULTS[name]
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config_file(tmp_path / "x.yaml")


def test_job_time_config_faults_are_caught_up_front(tmp_path):
    with pytest.raises(ConfigError, match=r"training\.device = 'cuda'.*no NVIDIA GPU.*auto"):
        check_device(_cfg(lambda c: c["training"].update(device="cuda")), ["snakemake"], {})
    with pytest.raises(ConfigError, match=r"supervoxels\.glioma\.unified_channel = 7.*use 0 to 3"):
        check_against_results(_cfg(lambda c: c["heatmaps"]["supervoxels"]["glioma"].update(unified_channel=7)),
                              tmp_path)


# ---- BraTS ----
def first_case(root):
    return sorted(p for p in root.iterdir() if p.is_dir())[0]


def _nifti(path, data):
    img = nib.load(path)
    nib.save(nib.Nifti1Image(data, img.affine), path)


def _data(path):
    return np.asarray(nib.load(path).dataobj)


@dataclass
class Fault:
    make: Callable  # (root) -> the case that is bad (or None)
    message: str    # regex the error must match (the file or the case, and the fix)
    excludable: bool = True


def _file(root, name):
    case = first_case(root)
    return case, case / f"{case.name}_{name}.nii.gz"


def _brats_fault(fn):
    def make(root):
        case, path = _file(root, "t2")
        fn(root, case, path)
        return case.name
    return make


BRATS_FAULTS = {
    "missing modality": Fault(_brats_fault(lambda r, c, p: p.unlink()), r"missing t2 file.*_t2\.nii\.gz.*Every case"),
    "extra NIfTI": Fault(_brats_fault(lambda r, c, p: shutil.copy(p, c / "t2_copy.nii.gz")),
                         r"unexpected NIfTI file.*Remove or rename"),
    "shape mismatch": Fault(_brats_fault(lambda r, c, p: _nifti(p, _data(p)[:-2])),
                            r"t2 shape \(30, 32, 20\) differs from t1 \(32, 32, 20\).*co-registered"),
    "affine mismatch": Fault(_brats_fault(lambda r, c, p: nib.save(nib.Nifti1Image(_data(p), np.eye(4) * 2), p)),
                             r"t2 affine differs.*Resample"),
    "NaN voxels": Fault(_brats_fault(lambda r, c, p: _nifti(p, np.where(_data(p) > 0, np.nan, 0).astype(np.float32))),
                        r"NaN/Inf voxels.*_t2\.nii\.gz.*exclude"),
    "blank modality": Fault(_brats_fault(lambda r, c, p: _nifti(p, np.zeros_like(_data(p)))),
                            r"t2 is blank \(constant 0 inside the brain\).*_t2\.nii\.gz.*Re-export"),
    "constant modality": Fault(_brats_fault(lambda r, c, p: _nifti(p, np.full(_data(p).shape, 7.0, np.float32))),
                               r"t2 is blank \(constant 7 inside the brain\)"),
    "2-D NIfTI": Fault(_brats_fault(lambda r, c, p: _nifti(p, _data(p)[:, :, 10])),
                       r"t2 is a 2-D image of shape \(32, 32\), expected a 3-D volume.*stack 2-D slices"),
    "4-D NIfTI": Fault(_brats_fault(lambda r, c, p: _nifti(p, np.stack([_data(p)] * 2, -1))),
                       r"t2 is a 4-D image of shape \(32, 32, 20, 2\).*split 4-D"),
    "truncated gzip": Fault(_brats_fault(lambda r, c, p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
                            r"_t2\.nii\.gz\]?.*cannot be read|file cannot be read.*_t2\.nii\.gz"),
    "random bytes": Fault(_brats_fault(lambda r, c, p: p.write_bytes(gzip.compress(np.random.default_rng(0)
                                                                                   .bytes(4000)))),
                          r"file cannot be read.*_t2\.nii\.gz.*Re-export or restore"),
    "folder in place of a file": Fault(_brats_fault(lambda r, c, p: (p.unlink(), p.mkdir())),
                                       r"missing t2 file.*_t2\.nii\.gz.*Every case needs"),
    "empty segmentation": Fault(lambda r: (_nifti(_file(r, "seg")[1], np.zeros_like(_data(_file(r, "seg")[1]))),
                                           first_case(r).name)[1], r"empty segmentation.*_seg\.nii\.gz"),
    "seg label 3": Fault(lambda r: (_nifti(_file(r, "seg")[1], (_data(_file(r, "seg")[1]) > 0).astype(np.uint8) * 3),
                                    first_case(r).name)[1], r"seg labels \[3\].*BraTS label convention"),
    "case folder without a label": Fault(
        lambda r: (lambda t: ((r / "name_mapping.csv").write_text(t.loc[t["BraTS_2020_subject_ID"] !=
                                                                        first_case(r).name].to_csv(index=False)),
                              first_case(r).name)[1])(pd.read_csv(r / "name_mapping.csv")),
        r"case folder without a label.*Add a row"),
    "label without a case folder": Fault(lambda r: (shutil.rmtree(first_case(r)), None)[1],
                                         r"label without a case folder.*remove its row", excludable=False),
}


def _outputs(root):
    return {k: root / v for k, v in dict(split="split.csv", excluded="excluded.csv", meta="meta.json",
                                         arrays="arrays").items()}


@pytest.mark.parametrize("name", BRATS_FAULTS)
def test_brats_fault(name, brats_dir, tmp_path):
    fault = BRATS_FAULTS[name]
    cfg = {"root": str(brats_dir), "grid": [16, 16, 8], "on_bad_case": "stop"}
    out = _outputs(tmp_path / "prepared")
    prepare("glioma", "brats", cfg, SPLIT, out)  # a good run first: what it wrote must survive the failed one
    before = {p.name: p.read_bytes() for p in (tmp_path / "prepared").glob("*.*")}
    case = fault.make(brats_dir)
    with pytest.raises(ClinxaiError, match=fault.message) as err:
        prepare("glioma", "brats", cfg, SPLIT, out)
    if case:
        assert case in str(err.value)
    assert {p.name: p.read_bytes() for p in (tmp_path / "prepared").glob("*.*")} == before
    if fault.excludable:  # exclude: the bad case is listed with its problem, every other case is prepared
        meta = prepare("glioma", "brats", {**cfg, "on_bad_case": "exclude"}, SPLIT, _outputs(tmp_path / "excl"))
        excluded = pd.read_csv(tmp_path / "excl" / "excluded.csv")
        assert excluded["case"].tolist() == [case] and meta["n_cases"] == 5


def test_brats_catalogue_level_faults(brats_dir, tmp_path):
    cfg = {"root": str(brats_dir), "grid": [16, 16, 8], "on_bad_case": "exclude"}
    mapping = brats_dir / "name_mapping.csv"
    good = mapping.read_text()
    table = pd.read_csv(mapping)
    case = table["BraTS_2020_subject_ID"][0]
    flipped = {"HGG": "LGG", "LGG": "HGG"}[table["Grade"][0]]
    table2 = pd.concat([table, table.iloc[[0]].assign(Grade=flipped)])
    mapping.write_text(table2.to_csv(index=False))
    with pytest.raises(ClinxaiError, match=rf"case {case} is listed on lines 2 and 8 \(grades HGG, LGG\).*one row"):
        prepare("glioma", "brats", cfg, SPLIT, _outputs(tmp_path / "a"))
    mapping.write_text(table.assign(Grade=["GBM"] + list(table["Grade"][1:])).to_csv(index=False))
    with pytest.raises(ClinxaiError, match=rf"name_mapping\.csv line 2: case {case} has Grade 'GBM'"):
        prepare("glioma", "brats", cfg, SPLIT, _outputs(tmp_path / "b"))
    mapping.write_text(table.drop(columns="Grade").to_csv(index=False))
    with pytest.raises(ClinxaiError, match=r"lacks column\(s\) \['Grade'\]"):
        prepare("glioma", "brats", cfg, SPLIT, _outputs(tmp_path / "c"))
    mapping.write_text(good)  # the same images under a second id: leakage across the split
    src = first_case(brats_dir)
    twin = brats_dir / "BraTS20_Training_999"
    twin.mkdir()
    for f in src.iterdir():
        shutil.copy(f, twin / f.name.replace(src.name, twin.name))
    mapping.write_text(pd.concat([table, table.iloc[[0]].assign(BraTS_2020_subject_ID=twin.name)]).to_csv(index=False))
    with pytest.raises(ClinxaiError, match=rf"cases {src.name} and {twin.name} have identical image data"):
        prepare("glioma", "brats", cfg, SPLIT, _outputs(tmp_path / "d"))


# ---- MRNet ----
def _view(root, case="0001", view="coronal", split="train"):
    return root / split / view / f"{case}.npy"


MRNET_FAULTS = {
    "missing view": Fault(lambda r: (_view(r).unlink(), "0001")[1], r"missing coronal view.*coronal/0001\.npy"),
    "NaN view": Fault(lambda r: (np.save(_view(r), np.full((6, 24, 24), np.nan, np.float32)), "0001")[1],
                      r"NaN/Inf voxels.*coronal/0001\.npy"),
    "blank view": Fault(lambda r: (np.save(_view(r), np.zeros((6, 24, 24), np.uint8)), "0001")[1],
                        r"coronal view is blank.*Re-export"),
    "2-D view": Fault(lambda r: (np.save(_view(r), np.arange(576, dtype=np.uint8).reshape(24, 24)), "0001")[1],
                      r"coronal view has shape \(24, 24\), expected 3-D"),
    "other in-plane size": Fault(lambda r: (np.save(_view(r), np.arange(2400, dtype=np.uint16).reshape(6, 20, 20)),
                                            np.save(_view(r / "boxes"), np.ones((6, 20, 20), np.uint8)), "0001")[2],
                                 r"views have different in-plane sizes"),
    "truncated npy": Fault(lambda r: (_view(r).write_bytes(_view(r).read_bytes()[:200]), "0001")[1],
                           r"file cannot be read.*coronal/0001\.npy"),
    "object npy": Fault(lambda r: (np.save(_view(r), np.array([{"a": 1}], dtype=object), allow_pickle=True),
                                   "0001")[1], r"file cannot be read \(ValueError.*coronal/0001\.npy"),
    "boolean npy": Fault(lambda r: (np.save(_view(r), np.ones((6, 24, 24), bool)), "0001")[1],
                         r"voxels of type bool.*coronal/0001\.npy"),
    "random bytes npy": Fault(lambda r: (_view(r).write_bytes(np.random.default_rng(1).bytes(3000)), "0001")[1],
                              r"file cannot be read.*coronal/0001\.npy"),
    "empty box": Fault(lambda r: (np.save(_view(r / "boxes"), np.zeros((6, 24, 24), np.uint8)), "0001")[1],
                       r"empty menisci box mask.*boxes/train/coronal/0001\.npy"),
}


@pytest.mark.parametrize("name", MRNET_FAULTS)
def test_mrnet_fault(name, mrnet_dir, tmp_path):
    fault = MRNET_FAULTS[name]
    cfg = {"root": str(mrnet_dir), "boxes_dir": str(mrnet_dir / "boxes"), "grid": [4, 16, 16], "on_bad_case": "stop"}
    case = fault.make(mrnet_dir)
    with pytest.raises(ClinxaiError, match=fault.message) as err:
        prepare("knee", "mrnet", cfg, SPLIT, _outputs(tmp_path / "a"))
    assert f"case {case}" in str(err.value)
    meta = prepare("knee", "mrnet", {**cfg, "on_bad_case": "exclude"}, SPLIT, _outputs(tmp_path / "b"))
    assert pd.read_csv(tmp_path / "b" / "excluded.csv", dtype={"case": str})["case"].tolist() == [case]
    assert meta["n_cases"] == 9


MRNET_CSV_FAULTS = {
    "header line": (lambda t: "case,label\n" + t, r"train-meniscus\.csv row 1: 'case','label'.*remove the header"),
    "label 2": (lambda t: t.replace(",0\n", ",2\n", 1), r"train-meniscus\.csv row \d+: .*'2' is not.*0/1 label"),
    "case listed twice": (lambda t: t + t.splitlines()[0] + "\n", r"case 0000 is listed on rows 1 and 9"),
}


@pytest.mark.parametrize("name", MRNET_CSV_FAULTS)
def test_mrnet_label_file_fault_names_the_row(name, mrnet_dir, tmp_path):
    edit, message = MRNET_CSV_FAULTS[name]
    csv = mrnet_dir / "train-meniscus.csv"
    csv.write_text(edit(csv.read_text()))
    with pytest.raises(ClinxaiError, match=message):
        prepare("knee", "mrnet", {"root": str(mrnet_dir), "grid": [4, 16, 16], "on_bad_case": "exclude"}, SPLIT,
                _outputs(tmp_path))


def test_mrnet_case_in_train_and_valid_is_leakage(mrnet_dir, tmp_path):
    valid = mrnet_dir / "valid-meniscus.csv"
    valid.write_text(valid.read_text() + "3,1\n")
    with pytest.raises(ClinxaiError, match=r"case 0003 is in both .*train-meniscus\.csv and .*valid-meniscus\.csv"):
        prepare("knee", "mrnet", {"root": str(mrnet_dir), "grid": [4, 16, 16], "on_bad_case": "exclude"}, SPLIT,
                _outputs(tmp_path))


# ---- checkpoints and interrupted writes ----
def test_checkpoint_faults(tmp_path):
    arch = {"in_channels": 4, "grid": [8, 8, 8], "widths": [4], "fc": 8}
    save_checkpoint(tmp_path / "good.pt", GeneNet3D(4, (8, 8, 8), widths=(4,), fc=8), "glioma", "genenet3d", arch)
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:300])
    with pytest.raises(ClinxaiError, match=r"checkpoint .*truncated\.pt cannot be read.*Delete it and rerun"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save({"weights": [1, 2]}, tmp_path / "foreign.pt")
    with pytest.raises(ClinxaiError, match=r"foreign\.pt is not a clinxai checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save(Fault(None, ""), tmp_path / "pickled.pt")  # pickled code: refused by weights_only=True
    with pytest.raises(ClinxaiError, match=r"pickled\.pt cannot be read \(UnpicklingError"):
        load_checkpoint(tmp_path / "pickled.pt")
    with pytest.raises(ClinxaiError, match=r"good\.pt is a glioma model, expected knee"):
        load_checkpoint(tmp_path / "good.pt", task="knee")


def test_a_killed_write_leaves_no_output_and_its_leftovers_go(tmp_path):
    out = tmp_path / "table.csv"
    save_csv(out, pd.DataFrame({"a": [1]}))
    leftover = tmp_path / ".table.csv.k1ll3d.part.csv"  # what a kill -9 during a write leaves
    leftover.write_text("half")
    save_csv(out, pd.DataFrame({"a": [2]}))
    assert pd.read_csv(out)["a"].tolist() == [2] and not leftover.exists()


def test_a_broken_default_config_names_file_line_and_column(tmp_path):
    import subprocess
    import sys

    wd = tmp_path / "wd"
    wd.mkdir()
    for name in ("Snakefile", "workflow", "profiles"):
        (wd / name).symlink_to(ROOT / name)
    (wd / "config").mkdir()
    text = (ROOT / "config/config.yaml").read_text().replace("seeds: [10, 20, 30, 40, 50]", "seeds: [10, 20")
    (wd / "config/config.yaml").write_text(text)
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n"], cwd=wd, capture_output=True, text=True)
    assert res.returncode != 0
    assert re.search(r"config/config\.yaml:\d+:\d+: not valid YAML \(expected ',' or '\]'", res.stderr + res.stdout)
