"""Localisation and degradation formulas (seed 002, SE3D, ROAD) on cases whose answers are known by hand, and against
scikit-learn where it has the same quantity."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from clinxai.metrics.coherence import ranking, rma, rra
from clinxai.metrics.degradation import class_adjusted, degradation_score, morf_lerf_curves
from clinxai.metrics.road import _system, impute, stencil
from clinxai.metrics.voxel_ranking import auroc, max_f1, pointing_game, vxap

MASK = np.zeros((8, 8), bool)
MASK[2:5, 3:6] = True  # 9 of 64 voxels


def test_a_map_equal_to_the_mask_scores_one():
    parts, masks = [MASK.astype(float)], [MASK]
    assert rma(parts, masks) == rra(parts, masks) == vxap(parts, masks) == 1.0
    assert max_f1(parts, masks) == auroc(parts, masks) == pointing_game(parts, masks) == 1.0


def test_a_map_outside_the_mask_scores_zero_and_chance():
    outside = (~MASK).astype(float) * np.linspace(0.1, 1, 64).reshape(8, 8)
    parts, masks = [outside], [MASK]
    assert rma(parts, masks) == rra(parts, masks) == pointing_game(parts, masks) == 0.0
    assert auroc(parts, masks) <= 0.5
    # a map that is 0 on the mask and constant elsewhere ranks nothing: AP is the prevalence (the chance level)
    flat = [(~MASK).astype(float)]
    assert vxap([np.zeros((8, 8))], masks) == pytest.approx(9 / 64)
    assert vxap(flat, masks) == pytest.approx(9 / 64)


def test_threshold_free_scores_equal_scikit_learn():
    rng = np.random.default_rng(0)
    for trial in range(8):
        a, b = rng.random((6, 5, 4)).round(2), rng.random((6, 5, 4)).round(2)  # rounded: ties included
        if trial >= 5:  # most voxels at the lowest value, as in a positive map (the stage sorts only the others)
            a, b = np.maximum(a - 0.7, 0), np.maximum(b - 0.6, 0) * (trial < 7)  # the last: b constant
        ma, mb = rng.random((6, 5, 4)) < 0.3, rng.random((6, 5, 4)) < 0.2
        y, s = np.r_[ma.ravel(), mb.ravel()], np.r_[a.ravel(), b.ravel()]
        assert vxap([a, b], [ma, mb]) == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert auroc([a, b], [ma, mb]) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        p, r, _ = precision_recall_curve(y, s)
        f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0)
        assert max_f1([a, b], [ma, mb]) == pytest.approx(f1.max(), abs=1e-12)


def test_rra_by_hand_with_ties_broken_by_a_seeded_order():
    m = np.zeros(10)
    m[[0, 1, 2]] = [3.0, 2.0, 1.0]
    mask = np.zeros(10, bool)
    mask[[0, 5, 6, 7]] = True  # K = 4: the top 3 voxels hold 1 mask voxel; the 4th is one of 7 tied zeros
    values = rra([m], [mask], seed=1)
    fourth = ranking(m, seed=1)[3]
    assert values == (1 + mask[fourth]) / 4
    assert rra([m], [mask], seed=1) == values  # seeded: the same every time
    assert rma([m], [mask]) == 0.5


def test_degradation_score_and_class_adjustment():
    assert degradation_score([0.2, 0.1], [0.9, 0.8]) == pytest.approx(0.7)
    equal = class_adjusted([0.3, 0.3, 0.3, 0.3], [0, 0, 1, 1])
    assert equal["ds_c"] == equal["ds"] == pytest.approx(0.3) and equal["delta"] == 0
    uneven = class_adjusted([0.4, 0.6, 0.0, 0.2], [0, 0, 1, 1], alpha=1.0)
    assert uneven["ds"] == pytest.approx(0.3) and uneven["delta"] == pytest.approx(0.2)
    assert uneven["ds_c"] == pytest.approx(0.1)
    three = class_adjusted([0.1, 0.5, 0.3], [0, 1, 2])  # more classes: half the range of the class means
    assert three["delta"] == pytest.approx(0.2)


def test_a_model_looking_at_one_region_gives_positive_ds_for_that_region():
    region = np.zeros(100, bool)
    region[10:20] = True
    x = np.ones(100)

    def predict(batch):  # the class probability grows with the region's signal only
        return 1 / (1 + np.exp(-(batch[:, region].sum(1) - 5)))

    def zero(x, removed):
        return np.where(removed, 0.0, x)

    morf, lerf = morf_lerf_curves(predict, x, region.astype(float), zero, steps=10)
    assert degradation_score(morf, lerf) > 0
    morf, lerf = morf_lerf_curves(predict, x, (~region).astype(float), zero, steps=10)
    assert degradation_score(morf, lerf) < 0


def test_road_restores_a_linear_ramp_exactly():
    assert sum(w for _, w in stencil(2)) == pytest.approx(1) and sorted({round(w * 12, 9) for _, w in stencil(2)}) == [1, 2]
    x, y = np.meshgrid(np.arange(20.0), np.arange(16.0), indexing="ij")
    ramp = 2 * x - 3 * y + 1
    hole = np.zeros(ramp.shape, bool)
    hole[5:12, 4:10] = True
    np.testing.assert_allclose(impute(ramp, hole), ramp, atol=1e-7)
    vol = (0.5 * x[..., None] + 1.5 * y[..., None] - 2 * np.arange(12.0)) * np.ones((20, 16, 12))
    block = np.zeros(vol.shape, bool)
    block[4:14, 3:12, 2:9] = True
    np.testing.assert_allclose(impute(vol, block), vol, atol=1e-7)
    everything = impute(ramp, np.ones(ramp.shape, bool))  # nothing known: the modality's mean
    assert np.all(everything == ramp.mean())
    noisy = impute(ramp, hole, noise_std=0.1, seed=3)
    assert 0.05 < np.std(noisy[hole] - ramp[hole]) < 0.2 and np.array_equal(noisy[~hole], ramp[~hole])


def test_road_system_equals_a_loop_over_voxels_and_neighbours():
    """The vectorised assembly of ROAD's linear system (`_system`) equals, to the bit, one written voxel by voxel:
    A's diagonal is the weight of every neighbour inside the image, -w to each removed one; b sums w * value of the
    other neighbours, in stencil order; rows stored with sorted columns (CSR sums them in that order)."""
    rng = np.random.default_rng(7)
    for shape in ((6, 5), (5, 4, 6)):
        out = rng.normal(size=shape)
        solve = rng.random(shape) < 0.6
        a, b = _system(out, solve)
        coords = [tuple(c) for c in np.argwhere(solve)]
        number = {c: i for i, c in enumerate(coords)}
        dense, rhs = np.zeros((len(coords),) * 2), np.zeros(len(coords))
        for i, c in enumerate(coords):
            for offset, w in stencil(len(shape)):
                nb = tuple(p + o for p, o in zip(c, offset))
                if not all(0 <= p < s for p, s in zip(nb, shape)):
                    continue
                dense[i, i] += w
                if nb in number:
                    dense[i, number[nb]] = -w
                else:
                    rhs[i] += w * out[nb]
        assert a.has_sorted_indices and np.array_equal(a.toarray(), dense) and np.array_equal(b, rhs)
        assert np.array_equal(a.toarray(), a.toarray().T)  # symmetric: conjugate gradients apply


def test_against_quantus():
    """Quantus 0.6 (a test-only dependency, skipped where it does not install): RMA, RRA and AUC on 2-D maps without
    ties (Quantus breaks ties by argsort), and a MoRF curve of a small model with zero replacement."""
    quantus = pytest.importorskip("quantus", reason="quantus 0.6 is not installed (pip install quantus)")
    import torch

    rng = np.random.default_rng(4)
    a = rng.random((3, 1, 8, 8))
    s = rng.random((3, 1, 8, 8)) < 0.25
    kw = {"disable_warnings": True}
    for mine, theirs in ((rma, quantus.RelevanceMassAccuracy(**kw)), (rra, quantus.RelevanceRankAccuracy(**kw)),
                         (auroc, quantus.AUC(**kw))):
        ref = theirs.evaluate_batch(a_batch=a, s_batch=s)
        np.testing.assert_allclose([mine([ai[0]], [si[0]]) for ai, si in zip(a, s)], ref, atol=1e-12)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)).eval()
    x = rng.normal(size=(2, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 1])
    flip = quantus.PixelFlipping(features_in_step=8, perturb_baseline=0.0, disable_warnings=True)
    curves = flip(model=model, x_batch=x, y_batch=y, a_batch=a[:2].astype(np.float32), device="cpu", softmax=True)

    for i in range(2):
        def predict(batch, i=i):
            with torch.no_grad():
                out = torch.softmax(model(torch.from_numpy(batch.astype(np.float32)).reshape(-1, 1, 8, 8)), 1)
            return out[:, y[i]].numpy()

        morf, _ = morf_lerf_curves(predict, x[i].ravel(), a[i].ravel(), lambda v, r: np.where(r, 0.0, v), steps=8)
        np.testing.assert_allclose(morf, curves[i], atol=1e-6)


def test_the_localisation_stage_scores_every_map_in_long_format(tmp_path):
    import pandas as pd

    from clinxai.attribution.maps import save_maps
    from clinxai.evaluation.localisation import SCORES, run_localisation
    from clinxai.tasks import KINDS

    seg = np.zeros((6, 6, 3), np.uint8)
    seg[1:4, 1:4, :] = 1
    (tmp_path / "arrays").mkdir()
    np.savez(tmp_path / "arrays" / "c1.npz", seg=seg)
    inside = (seg > 0).astype(np.float32)
    save_maps(tmp_path / "maps.npz", {"c1": [inside] * 4})
    pd.DataFrame({"case": ["c1"], "label": [1], "pred": [0], "prob_0": [0.6], "prob_1": [0.4]}).to_csv(
        tmp_path / "pred.csv", index=False)
    post = {"upsample_gradcam": True, "smooth_sigma": None, "normalise": True, "mass": 0.99, "positive_only": True}
    names = ["T1", "T1C", "T2", "FLAIR"]
    t = run_localisation("brain", KINDS["glioma"], "Gradient", [10], [tmp_path / "maps.npz"], [tmp_path / "pred.csv"],
                         tmp_path, names, post, 0, tmp_path / "out.csv")
    assert len(t) == len(SCORES) * (1 + 4) and set(t["better"]) == {"higher"}
    assert (t["value"] == 1.0).all() and set(t["modality"]) == {"all", *names}  # the map is the mask
    assert pd.read_csv(tmp_path / "out.csv").shape == t.shape


def test_the_stage_fast_paths_equal_the_reference_forms():
    """One sort for VxAP / MaxF1 / AUROC, and RRA by partition, equal the reference functions on tie-heavy maps."""
    from clinxai.metrics.voxel_ranking import threshold_free

    rng = np.random.default_rng(7)
    for trial in range(20):
        shape = (9, 11, 5)
        part = np.maximum(np.round(rng.normal(size=shape), 1), 0)  # ~half zeros, many ties above
        mask = rng.random(shape) < rng.uniform(0.02, 0.5)
        fast = threshold_free([part], [mask])
        assert fast["vxap"] == pytest.approx(vxap([part], [mask]), abs=1e-12)
        assert fast["max_f1"] == pytest.approx(max_f1([part], [mask]), abs=1e-12)
        assert fast["auroc"] == pytest.approx(auroc([part], [mask]), abs=1e-12)
        k = int(mask.sum())
        reference = mask.ravel()[ranking(part.ravel(), trial, "key")[:k]].sum() / k
        assert rra([part], [mask], trial, "key") == reference


def test_ranked_keeps_one_stable_sort_for_non_finite_values():
    """NaN and repeated inf are groups of their own (np.diff gives NaN): the order among them sets the counts, so
    such maps keep the stable sort of every voxel (the stage skips non-finite maps; the public functions do not)."""
    from clinxai.metrics.voxel_ranking import _ranked

    rng = np.random.default_rng(3)
    v = rng.choice([np.nan, np.inf, -np.inf, 0.0, 0.5, 1.0], size=400)  # beyond insertion sort's small sizes
    inside = rng.random(400) < 0.3
    order = np.argsort(-v, kind="stable")
    with np.errstate(invalid="ignore"):  # inf - inf: the NaN that splits the group, in both
        last = np.r_[np.flatnonzero(np.diff(v[order])), len(v) - 1]
        got_tp, got_fp = _ranked(v, inside)
    tp = np.cumsum(inside[order])[last]
    assert np.array_equal(got_tp, tp) and np.array_equal(got_fp, last + 1 - tp)
