"""The synthetic task: the tumour GAN, the generated sets' design, and MSFI on maps with known answers."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clinxai import ClinxaiError
from clinxai.data import synthetic as syn
from clinxai.data import tumour_gan as tg
from clinxai.metrics.localisation import fp, msfi, msfi_global, normalise_phi


def blob(size, rng, irregular=True):
    """A procedural tumour outline: a disc bent by smooth noise (irregular) or not."""
    from scipy import ndimage

    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx) / (size * 0.35)
    noise = ndimage.gaussian_filter(rng.normal(size=(size, size)), size / 10)
    noise /= noise.std()
    return r + (0.3 if irregular else 0.0) * noise < 1


# --- generated sets -------------------------------------------------------------------------------------------

def test_alignment_probabilities_binomial():
    """On 600 cases, T1C always shows the label's shape and FLAIR does so at a rate compatible with 0.7."""
    n = 600
    labels, t1c, flair = syn.draw_design(n, 1.0, 0.7, np.random.default_rng(0))
    assert labels.sum() == n // 2 and t1c.all()
    assert stats.binomtest(int(flair.sum()), n, 0.7).pvalue > 0.01
    assert stats.binomtest(int(flair.sum()), n, 0.5).pvalue < 1e-6  # and it would notice another rate
    irr, rnd = np.ones((4, 4), bool), np.zeros((4, 4), bool)
    shown = [syn.channel_shapes(int(y), irr, rnd, bool(a), bool(b)) for y, a, b in zip(labels, t1c, flair)]
    label_shape = [irr if y else rnd for y in labels]
    assert all((s["T1C"] == ls).all() for s, ls in zip(shown, label_shape))
    flair_ok = np.array([(s["FLAIR"] == ls).all() for s, ls in zip(shown, label_shape)])
    assert (flair_ok == flair).all()
    assert all((s["T1"] == irr).all() and (s["T2"] == irr).all() for s in shown)  # never informative


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory, monkeypatch_module):
    """A small synthetic set with procedural irregular shapes in place of GAN samples."""
    rng = np.random.default_rng(0)
    monkeypatch_module.setattr(syn, "load_generator", lambda path: type("G", (), {"size": 32})())
    monkeypatch_module.setattr(syn, "draw_shapes", lambda g, n, seed: (
        np.stack([blob(32, rng) for _ in range(n)]), 1.0))
    out_dir = tmp_path_factory.mktemp("synthetic")
    out = {k: out_dir / k for k in ("arrays", "groundtruth")}
    out.update({k: out_dir / f"{k}.csv" for k in ("split", "excluded", "cases")}, meta=out_dir / "meta.json")
    cfg = dict(n_cases=24, n_groundtruth=12, size=48, fov_mm=180, tumour_size=[0.25, 0.3], t1c_alignment=1.0,
               flair_alignment=0.7, tumour_only_fraction=0.25, seed=5)
    split = {"fractions": {"train": 0.5, "val": 0.25, "test": 0.25}, "seed": 0}
    meta = syn.make_synthetic("synthetic", "unused.pt", cfg, split, out)
    return out, meta


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_dataset_files_and_design(synthetic_set):
    out, meta = synthetic_set
    cases = pd.read_csv(out["cases"])
    assert len(cases) == 24 and meta["channels"] == ["FLAIR", "T1", "T1C", "T2"]
    for r in cases.itertuples():
        z = np.load(out["arrays"] / f"{r.case}.npz")
        assert z["image"].shape == (4, 48, 48) and np.isfinite(z["image"]).all()
        m = z["masks"].astype(bool)
        flair, t1, t1c, t2 = m
        assert (t1 == t2).all() and t1c.any()
        assert (t1c == t1).all() == bool(r.label)  # T1C shows the irregular shape exactly for class 1
        assert (flair == t1c).all() == bool(r.flair_aligned)
        assert (z["seg"].astype(bool) == t1c).all()  # the plausibility mask is the T1C tumour
        assert not (m.any(0) & ~z["brain"].astype(bool)).any()  # tumours lie inside the brain
        assert (z["image"][:, ~z["brain"].astype(bool)] == 0).all()
        # tumour-only training cases: nothing but the tumours (the ground-truth items' look); the rest show brain
        assert (z["image"][~m] == 0).all() == r.tumour_only
    only = cases[cases["tumour_only"]]
    assert len(only) == meta["n_tumour_only_train"] == 3 and (only["split"] == "train").all()  # 25 % of 12


@pytest.mark.parametrize("name", ["T1C", "FLAIR"])
def test_ground_truth_sets(synthetic_set, name):
    """No brain, T1/T2 irregular; the named modality aligned with the label, the other one anti-aligned."""
    out, _ = synthetic_set
    z = np.load(out["groundtruth"] / f"{name}.npz")
    images, labels, masks = z["image"], z["label"], z["masks"].astype(bool)
    assert images.shape == (12, 4, 48, 48) and set(labels) == {0, 1}
    assert (images[~np.broadcast_to(masks, images.shape)] == 0).all()  # tumour only, flat background
    aligned, anti = (2, 0) if name == "T1C" else (0, 2)
    for y, m in zip(labels, masks):
        t1 = m[1]
        assert (m[3] == t1).all()
        assert (m[aligned] == t1).all() == bool(y)  # the aligned modality shows the label's shape
        assert (m[anti] == t1).all() == (not y)  # the other one shows the opposite class's shape


# --- GAN ------------------------------------------------------------------------------------------------------

def test_tiny_gan_run_produces_samples():
    rng = np.random.default_rng(1)
    masks = np.stack([blob(16, rng) for _ in range(24)])
    cfg = {"iterations": 6, "batch_size": 8, "lr": 2e-4, "latent": 8, "width": 4}
    g, losses = tg.train_gan(masks, cfg, seed=0)
    assert len(losses) == 6 and np.isfinite(losses[["loss_d", "loss_g"]]).all().all()
    s1, s2 = tg.sample_masks(g, 5, seed=3), tg.sample_masks(g, 5, seed=3)
    assert s1.shape == (5, 16, 16) and s1.dtype == bool and (s1 == s2).all()  # seeded


def test_gan_rejects_a_size_that_is_not_a_power_of_two():
    with pytest.raises(ClinxaiError, match="power of two"):
        tg.Generator(8, 4, size=48)


def test_shape_checks_tell_irregular_from_round():
    rng = np.random.default_rng(2)
    discs = np.stack([tg.round_mask(32, rng) for _ in range(20)])
    ragged = np.stack([blob(32, rng) for _ in range(20)])
    assert tg.circularity(discs[0]) > 0.9
    s_round, _ = tg.check_samples(discs, n_round=20)
    s_ragged, table = tg.check_samples(ragged, n_round=20)
    assert not s_round["irregular"] and s_ragged["irregular"]
    assert s_ragged["median_circularity"] < s_ragged["round_median_circularity"]
    empty = tg.shape_stats(np.zeros((32, 32), bool))
    assert not tg.is_valid(empty)
    two = np.zeros((32, 32), bool)
    two[4:10, 4:10] = two[20:26, 20:26] = True
    assert tg.shape_stats(two)["main_share"] == pytest.approx(0.5) and not tg.is_valid(tg.shape_stats(two))


def test_samples_of_a_failed_gan_stop_synthetic_data(tmp_path):
    (tmp_path / "check.json").write_text('{"passed": false, "valid_fraction": 0.1}')
    with pytest.raises(ClinxaiError, match="synthetic_gan"):
        syn.require_passed_check(tmp_path / "check.json")


def test_brats_tumour_masks_from_a_phantom(brats_master):
    masks = tg.brats_tumour_masks(brats_master, 32, min_area=4)
    assert masks.ndim == 3 and masks.shape[1:] == (32, 32) and len(masks) > 0
    assert all(m.any() for m in masks)


# --- MSFI -----------------------------------------------------------------------------------------------------

def _case():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    masks = [None, None, mask, None]  # FLAIR, T1, T1C, T2: the tumour is marked on T1C only
    return mask, masks, normalise_phi([0.0, 0.0, 0.99, 0.0], "max")


def test_msfi_all_mass_inside_the_t1c_tumour_is_one():
    mask, masks, w = _case()
    parts = [np.zeros((8, 8)) for _ in range(4)]
    parts[2][mask] = np.linspace(0.1, 1, mask.sum())
    assert msfi(parts, masks, w) == pytest.approx(1.0)
    assert msfi_global(parts, masks, w) == pytest.approx(1.0)
    assert fp(parts, masks) == pytest.approx(1.0)


def test_msfi_global_all_mass_on_flair_is_zero():
    mask, masks, w = _case()
    parts = [np.zeros((8, 8)) for _ in range(4)]
    parts[0][mask] = 1.0  # at the tumour's place, but on FLAIR
    assert msfi_global(parts, masks, w) == 0.0
    assert msfi(parts, masks, w) == 0.0


def test_msfi_and_msfi_global_differ_by_their_denominator():
    """Half the mass inside the T1C tumour, half on FLAIR: MSFI (per-modality denominator) 1, global 0.5."""
    mask, masks, w = _case()
    parts = [np.zeros((8, 8)) for _ in range(4)]
    parts[2][mask] = 1.0
    parts[0][mask] = 1.0
    assert msfi(parts, masks, w) == pytest.approx(1.0)
    assert msfi_global(parts, masks, w) == pytest.approx(0.5)
    assert fp(parts, masks) == pytest.approx(0.5)


def test_msfi_weights_modalities_by_phi():
    """Two modalities with phi' 1 and 0.5, FP_m 1 and 0: MSFI = (1*1 + 0.5*0) / 1.5 = 2/3."""
    inside = np.zeros((3, 3))
    inside[:2, :2] = 1
    outside = np.zeros((3, 3))
    outside[2, 2] = 1
    big = np.zeros((3, 3), bool)
    big[:2, :2] = True
    assert msfi([inside, outside], [big, big], [1.0, 0.5]) == pytest.approx(2 / 3)


def test_fp_heatmap_fully_inside_the_mask():
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    s = np.where(mask, 0.5, 0.0)
    assert fp([s, s], [mask, mask]) == 1.0
    assert fp([s, np.where(mask, 0, 1.0)], [mask, mask]) == pytest.approx(4 / (4 + 56))


def test_undefined_scores_are_nan():
    mask, masks, w = _case()
    zero = [np.zeros((8, 8)) for _ in range(4)]
    assert np.isnan(msfi(zero, masks, w)) and np.isnan(msfi_global(zero, masks, w)) and np.isnan(fp(zero, masks))
    parts = [np.ones((8, 8)) for _ in range(4)]
    assert np.isnan(msfi(parts, masks, [0, 0, 0, 0]))
    with pytest.raises(ClinxaiError, match="mask shape"):
        fp([np.ones((8, 8))], [np.ones((4, 4), bool)])


def test_phi_normalisations():
    np.testing.assert_allclose(normalise_phi([0.2, 0.4, 0.6], "minmax"), [0, 0.5, 1])
    np.testing.assert_allclose(normalise_phi([0.2, 0.4, 0.8], "max"), [0.25, 0.5, 1])
    np.testing.assert_allclose(normalise_phi([0.5, 0.5], "minmax"), [0, 0])
    with pytest.raises(ClinxaiError):
        normalise_phi([1, 2], "rank")
