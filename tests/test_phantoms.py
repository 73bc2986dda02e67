import nibabel as nib
import numpy as np
import pandas as pd

from clinxai.data.phantom_brats import MODALITY_FILES, generate_subject
from clinxai.data.phantom_mrnet import VIEWS, generate_case


def test_brats_layout_opens_in_nibabel(brats_master):
    mapping = pd.read_csv(brats_master / "name_mapping.csv")
    assert list(mapping.columns) == ["Grade"] + [f"BraTS_{y}_subject_ID" for y in (2019, 2018, 2017, 2016, 2020)]
    assert set(mapping["Grade"]) == {"HGG", "LGG"}
    for sid in mapping["BraTS_2020_subject_ID"]:
        imgs = [nib.load(brats_master / sid / f"{sid}_{m}.nii.gz") for m in MODALITY_FILES]
        assert all(i.ndim == 3 and i.shape == (32, 32, 20) for i in imgs)
        assert all(np.allclose(i.affine, imgs[0].affine) for i in imgs)
        seg = np.asarray(nib.load(brats_master / sid / f"{sid}_seg.nii.gz").dataobj)
        assert set(np.unique(seg)) <= {0, 1, 2, 4} and (seg > 0).any()


def test_hgg_enhances_and_lgg_does_not():
    shape = (64, 64, 40)
    hgg = [generate_subject(shape, "HGG", s) for s in range(6)]
    lgg = [generate_subject(shape, "LGG", s) for s in range(6)]
    assert sum((lab == 4).any() for _, lab, _ in hgg) >= 4
    assert sum((lab == 4).any() for _, lab, _ in lgg) <= 2
    for images, lab, _ in hgg:
        if (lab == 4).any():  # enhancing tumour is bright on T1C only
            enh = lab == 4
            assert images["t1ce"][enh].mean() > 1.5 * images["t1"][enh].mean()
    # HGG oedema is larger relative to the core than LGG oedema.
    ratio = lambda lab: (lab == 2).sum() / max((lab > 0).sum(), 1)  # noqa: E731
    assert np.mean([ratio(lab) for _, lab, _ in hgg]) > np.mean([ratio(lab) for _, lab, _ in lgg])


def test_flair_darkens_csf_and_brightens_oedema():
    images, lab, _ = generate_subject((64, 64, 40), "HGG", 1)
    oedema = lab == 2
    brain = images["t2"] > 0
    assert images["flair"][oedema].mean() > images["flair"][brain & (lab == 0)].mean()


def test_phantoms_are_deterministic():
    a = generate_subject((32, 32, 20), "HGG", 7)
    b = generate_subject((32, 32, 20), "HGG", 7)
    assert all(np.array_equal(a[0][k], b[0][k]) for k in a[0]) and np.array_equal(a[1], b[1])


def test_mrnet_layout(mrnet_master):
    for split, n in (("train", 8), ("valid", 2)):
        labels = pd.read_csv(mrnet_master / f"{split}-meniscus.csv", header=None)
        assert len(labels) == n and set(labels[1]) <= {0, 1}
        for case in labels[0]:
            for view in VIEWS:
                arr = np.load(mrnet_master / split / view / f"{case:04d}.npy")
                box = np.load(mrnet_master / "boxes" / split / view / f"{case:04d}.npy")
                assert arr.dtype == np.uint8 and arr.shape == (6, 24, 24) and box.shape == arr.shape
                assert box.any()


def test_knee_tear_is_bright_inside_the_menisci_boxes():
    """A tear adds fluid signal inside the meniscus on the fluid-sensitive axial view."""
    def box_mean(tear):
        vals = []
        for seed in range(8):
            images, boxes = generate_case((24, 96, 96), tear, seed)
            vals.append(images["axial"][boxes["axial"] > 0].astype(float).mean())
        return np.mean(vals)
    assert box_mean(True) > box_mean(False)
