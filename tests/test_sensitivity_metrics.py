"""Formulas of the sensitivity issue (19) on inputs whose answers are known by hand, and against independent
implementations (scikit-image's SSIM, Quantus 0.6's Sparseness where it is installed)."""
import numpy as np
import pytest

from clinxai.metrics.minimality import gini, max_mean_ratio, top_share
from clinxai.metrics.similarity import (max_sensitivity, mean_pairwise_spearman, relative_change, spearman, ssim,
                                        top_iou, voxel_cv)


def test_gini_of_a_constant_and_a_one_voxel_map():
    assert gini([np.ones((4, 5))]) == 0
    one = np.zeros(100)
    one[7] = 3.0
    assert gini([one]) == pytest.approx(99 / 100)
    assert gini([np.array([0.0, 1.0, 3.0])]) == pytest.approx((-2 * 0 + 0 * 1 + 2 * 3) / (3 * 4))  # by hand
    assert np.isnan(gini([np.zeros(5)]))
    assert gini([np.array([0.0, 1.0]), np.array([3.0])]) == gini([np.array([0.0, 1.0, 3.0])])  # pooled


def test_top_share_and_max_mean():
    a = np.array([5.0] + [1.0] * 99)  # 104 in all
    assert top_share([a], 0.01) == pytest.approx(5 / 104)
    assert top_share([a], 0.05) == pytest.approx((5 + 4) / 104)
    assert max_mean_ratio([a]) == pytest.approx(5 / 1.04)


def test_gini_against_quantus():
    quantus = pytest.importorskip("quantus", reason="quantus 0.6 is not installed (pip install quantus)")
    rng = np.random.default_rng(0)
    a = np.maximum(rng.normal(size=(3, 1, 8, 8)), 0)
    x = rng.normal(size=(3, 1, 8, 8))
    theirs = quantus.Sparseness(disable_warnings=True, normalise=False, abs=True).evaluate_batch(
        model=None, x_batch=x, y_batch=np.zeros(3, int), a_batch=a)
    np.testing.assert_allclose([gini([ai]) for ai in a], theirs, atol=1e-12)


def test_similarity_of_identical_and_unrelated_maps():
    rng = np.random.default_rng(1)
    m = [rng.random((12, 12, 12)), rng.random((12, 12, 12))]
    assert spearman(m, m) == pytest.approx(1) and top_iou(m, m) == 1 and relative_change(m, m) == 0
    assert ssim(m, m) == pytest.approx(1)
    other = [rng.random((12, 12, 12)), rng.random((12, 12, 12))]
    assert abs(spearman(m, other)) < 0.1 and top_iou(m, other) < 0.2 and ssim(m, other) < 0.2
    scaled = [2 * p for p in m]  # a map and its multiple are the same explanation
    assert relative_change(m, scaled) == pytest.approx(0) and ssim(m, scaled) == pytest.approx(1)
    assert np.isnan(spearman(m, [np.ones((12, 12, 12))] * 2))
    assert top_iou([np.arange(10.0)], [np.arange(10.0)[::-1]], fraction=0.2) == 0
    sparse_a, sparse_b = np.zeros(1000), np.zeros(1000)
    sparse_a[:10], sparse_b[500:510] = 1.0, 1.0  # fewer positive voxels than the top 10 %: no shared zero filler
    assert top_iou([sparse_a], [sparse_b]) == 0 and top_iou([sparse_a], [sparse_a]) == 1
    x = rng.random((12, 12, 12))
    assert ssim([x, x], [np.zeros_like(x), x]) < 0.9  # a map that vanishes in one modality is not the same map


def test_ssim_equals_scikit_image_on_2d():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(2)
    a = rng.random((40, 40))
    b = np.clip(a + 0.2 * rng.normal(size=a.shape), 0, None)
    ref = structural_similarity(a / a.max(), b / b.max(), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    # MONAI averages over the valid window positions only, scikit-image crops 5 pixels: the same positions
    assert ssim([a], [b]) == pytest.approx(ref, abs=2e-3)


def test_relative_change_and_max_sensitivity_by_hand():
    a = [np.array([1.0, 0.0, 0.0, 1.0])]
    b = [np.array([1.0, 1.0, 0.0, 1.0])]
    assert relative_change(a, b) == pytest.approx(1 / np.sqrt(2))
    assert max_sensitivity(a, [a, b]) == pytest.approx(1 / np.sqrt(2))


def test_determinism_of_repeats():
    m = [np.arange(1.0, 9.0)]
    assert mean_pairwise_spearman([m, m, m]) == 1 and voxel_cv([m, m, m]) == 0
    noisy = [[np.array([1.0, 3.0])], [np.array([3.0, 1.0])]]
    assert mean_pairwise_spearman(noisy) == pytest.approx(-1)
    assert voxel_cv(noisy) == pytest.approx(0.5)  # std 1, mean 2, per voxel


def test_max_sensitivity_equals_quantus_on_the_same_draws():
    """Quantus 0.6's MaxSensitivity (uniform noise in ±r, normalise_by_max, Frobenius norms), one case per call
    (Quantus normalises a whole batch by its largest value), against relative_change on the same noise draws."""
    quantus = pytest.importorskip("quantus", reason="quantus 0.6 is not installed (pip install quantus)")
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)).eval()

    def explain(model, inputs, targets, **kw):  # input x gradient
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32).requires_grad_(True)
        model(x)[torch.arange(len(x)), torch.as_tensor(np.asarray(targets))].sum().backward()
        return (x.grad * x).detach().numpy()

    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 1])
    a = explain(model, x, y)
    r, n = 0.3, 5
    for i in range(3):
        np.random.seed(7 + i)  # Quantus draws its noise from numpy's global generator
        theirs = quantus.MaxSensitivity(nr_samples=n, lower_bound=r, normalise=True, abs=False,
                                        normalise_func=quantus.normalise_func.normalise_by_max,
                                        disable_warnings=True)(model=model, x_batch=x[i:i + 1], y_batch=y[i:i + 1],
                                                               a_batch=a[i:i + 1], explain_func=explain, device="cpu")
        np.random.seed(7 + i)
        perturbed = [explain(model, x[i:i + 1] + np.random.uniform(-r, r, size=(1, x[0].size)).reshape(1, *x[0].shape),
                             y[i:i + 1])[0] for _ in range(n)]
        assert max_sensitivity([a[i]], [[p] for p in perturbed]) == pytest.approx(theirs[0], rel=1e-5)
