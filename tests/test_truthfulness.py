"""G3 truthfulness metrics on inputs whose answers are known by hand."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau
from torch import nn

from clinxai import ClinxaiError
from clinxai.inference import FlatLayout, Predictor, channels_last_format, to_channels_last
from clinxai.evaluation.perturbation import removal_curves, subset_performance
from clinxai.metrics.modality import all_subsets, mi_correlation, modality_sums, shapley_values
from clinxai.metrics.removal import (NEVER, baseline_steps, delta_aupc, removal_fractions,
                                     removal_steps, replacement_values)
from clinxai.models import GeneNet3D, KneeNet


# ---------------------------------------------------------------- Shapley values

def test_shapley_of_a_hand_made_three_player_game():
    v = {(): 0, (0,): 1, (1,): 2, (2,): 0, (0, 1): 4, (0, 2): 1, (1, 2): 2, (0, 1, 2): 5}
    # phi_0 = 1/3*1 + 1/6*(4-2) + 1/6*(1-0) + 1/3*(5-2) = 11/6, and so on by eq. (1)
    np.testing.assert_allclose(shapley_values(v, 3), [11 / 6, 17 / 6, 1 / 3])
    assert shapley_values(v, 3).sum() == pytest.approx(v[(0, 1, 2)] - v[()])  # efficiency


def test_shapley_symmetry_and_null_player():
    # players 0 and 1 are interchangeable, player 2 adds nothing
    v = {c: float(len(set(c) & {0, 1})) for c in all_subsets(3)}
    np.testing.assert_allclose(shapley_values(v, 3), [1, 1, 0])
    assert len(all_subsets(4)) == 16 and all_subsets(2) == [(), (0,), (1,), (0, 1)]
    with pytest.raises(ValueError, match="lacks"):
        shapley_values({(): 0, (0,): 1}, 2)


class CountingPredictor(Predictor):
    """A Predictor that counts the inputs it runs."""

    seen = 0

    def __call__(self, flat):
        self.seen += len(flat)
        return super().__call__(flat)


class OneModalityModel(nn.Module):
    """Looks only at channel `m` of a C x 4 x 4 x 4 input: class 1 when its mean is positive."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        s = 10 * x[:, self.m].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(s), s], dim=1)


def test_a_model_that_uses_one_modality_gets_all_the_shapley_value():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 10)
    inputs = []
    for y in labels:
        x = rng.normal(0, 1, (1, 4, 4, 4, 4)).astype(np.float32)
        x[0, 2] = (1.0 if y else -1.0) + 0.1 * x[0, 2]
        inputs.append((torch.from_numpy(x),))
    layout = FlatLayout(inputs[0])
    flat = [layout.flatten(x).numpy() for x in inputs]
    predict = CountingPredictor(OneModalityModel(2), layout, fast=False)
    v = subset_performance(predict, layout, flat, labels, "accuracy", batch_size=7)
    assert len(v) == 16
    assert predict.seen == 15 * len(inputs) + 1  # the subset that keeps nothing is one zero input for every case
    phi = shapley_values({tuple(c): p for c, p in zip(v["subset"], v["performance"])}, 4)
    # with channel 2: accuracy 1; without it the mean is 0, the model says class 0: accuracy 0.5
    np.testing.assert_allclose(phi, [0, 0, 0.5, 0], atol=1e-9)


# ---------------------------------------------------------------- feature removal

def test_removal_steps_are_cumulative_and_positive_only():
    values = np.array([0.0, -1.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], np.float32)
    qs = removal_fractions(10)
    step = removal_steps(values, qs)
    assert step[0] == NEVER and step[1] == NEVER  # zero and negative values are never removed
    removed = [(step <= j).sum() for j in range(len(qs))]
    assert removed[0] == 0 and removed[-1] == 10  # q = 0 removes nothing, q = 1 every positive voxel
    assert all(a <= b for a, b in zip(removed, removed[1:]))  # cumulative
    assert step[values.argmax()] == 1  # the top voxel goes first
    assert (removal_steps(np.zeros(5), qs) == NEVER).all()


@pytest.mark.parametrize("ties", [False, True])
def test_baselines_remove_as_many_voxels_as_the_map(ties):
    rng = np.random.default_rng(1)
    values = rng.random(500).astype(np.float32)
    values[rng.random(500) < 0.3] = 0
    if ties:
        values[:100] = 1.0  # saturated values, as after normalisation and clipping
    qs = removal_fractions(10)
    step = removal_steps(values, qs)
    base = baseline_steps(step, 15, seed=10, case="c1")
    assert base.shape == (15, 500)
    for j in range(len(qs)):
        assert ((base <= j).sum(axis=1) == (step <= j).sum()).all()
    # permutations differ between draws and are the same for every method (seeded by model seed, case, draw)
    assert not np.array_equal(base[0], base[1])
    np.testing.assert_array_equal(base, baseline_steps(step, 15, seed=10, case="c1"))


def _first_by_definition(values, thresholds):
    """The earliest step j >= 1 with value >= thresholds[j] (NEVER if none), one pass per step."""
    step = np.full(values.shape, NEVER, np.int16)
    for j in range(len(thresholds) - 1, 0, -1):
        step[values >= thresholds[j]] = j
    return step


def _steps_by_definition(values, qs):
    """The earliest step j >= 1 with value >= quantile(positive values, 1 - q_j); 0 and below never."""
    values = np.asarray(values, np.float32)
    step = np.full(values.shape, NEVER, np.int16)
    positive = values > 0
    if positive.any():
        step[positive] = _first_by_definition(values[positive], np.quantile(values[positive], 1.0 - qs))
    return step


@pytest.mark.parametrize("kind", ["uniform", "integers", "tiny", "wide", "rounded", "infinite"])
def test_removal_steps_equal_their_definition(kind):
    rng = np.random.default_rng(5)
    draw = {"uniform": lambda n: rng.random(n),
            "integers": lambda n: rng.integers(-3, 6, n).astype(float),  # many ties, some at the thresholds
            "tiny": lambda n: np.where(rng.random(n) < 0.7, 0.0, rng.random(n) * 1e-30),
            "wide": lambda n: rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20),
            "rounded": lambda n: np.round(rng.random(n), 2) - 0.3,
            # +inf among the values makes some quantiles NaN (inf - inf), which admit no voxel
            "infinite": lambda n: np.where(rng.random(n) < 0.05, np.inf, rng.random(n))}[kind]
    for _ in range(60):
        values, k = draw(int(rng.integers(1, 2000))), int(rng.choice([1, 2, 5, 10, 20, 50, 100]))
        qs = removal_fractions(k)
        with np.errstate(invalid="ignore"):  # quantiles between two infinities
            np.testing.assert_array_equal(removal_steps(values, qs), _steps_by_definition(values, qs))
    with pytest.raises(ClinxaiError, match="n_steps"):  # steps are int16, NEVER the largest
        removal_steps(draw(10), removal_fractions(32767))


def test_first_steps_with_thresholds_out_of_order_or_nan():
    """np.quantile's thresholds fall with the step; the count must not depend on it (nor on NaN thresholds)."""
    from clinxai.metrics.removal import first_steps

    rng = np.random.default_rng(6)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        thresholds = np.round(rng.random(n + 1), 1)  # any order, with ties
        thresholds[rng.random(n + 1) < 0.2] = np.nan
        values = np.round(rng.random(50), 1).astype(np.float32)
        np.testing.assert_array_equal(first_steps(values, thresholds), _first_by_definition(values, thresholds))


@pytest.mark.parametrize("how", ["zero", "mean", "sampled", "neighbourhood", "blur"])
def test_perturbed_batches_equal_a_where_over_the_removed_voxels(how):
    from clinxai.evaluation.perturbation import Perturber

    layout = FlatLayout((torch.zeros(1, 2, 6, 5),))
    rng = np.random.default_rng(7)
    x = rng.normal(0, 3, layout.n).astype(np.float32)
    x[:4] = [0.0, -0.0, 1e-38, -5.0]
    flat_map = rng.random(layout.n).astype(np.float32)
    steps = np.stack([removal_steps(flat_map, removal_fractions(10))] + list(rng.integers(1, 12, (3, layout.n))))
    steps = torch.from_numpy(steps.astype(np.int16))
    p = Perturber(x, flat_map, layout, how, {}, 10, "c1")
    assert p.lerp
    curves, at = [0, 1, 3, 2, 0, 0], [1, 5, 10, 0, 11, 32767]
    removed = steps[curves] <= torch.tensor(at, dtype=torch.int16)[:, None]
    expected = torch.where(removed, p.values, torch.from_numpy(x))
    got = p.batch(steps, curves, at)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    # to the bit, but for the sign of a zero (-0.0 kept: 0 == -0.0 for the model)
    assert np.array_equal(got.numpy().view(np.int32) & 0x7FFFFFFF, expected.numpy().view(np.int32) & 0x7FFFFFFF)
    # an input whose difference to its replacement is not finite keeps the where (lerp would give 0 * inf = NaN)
    x[5] = np.inf
    q = Perturber(x, flat_map, layout, how, {}, 10, "c1")
    assert not q.lerp
    torch.testing.assert_close(q.batch(steps, curves, at), torch.where(removed, q.values, torch.from_numpy(x)),
                               rtol=0, atol=0, equal_nan=True)


def test_two_class_auc_of_every_curve_in_one_call_equals_one_call_per_curve():
    from sklearn.metrics import roc_auc_score

    from clinxai.metrics.classification import class_auc
    from clinxai.metrics.removal import performance

    rng = np.random.default_rng(4)
    y = np.array([0, 1] * 7)
    p1 = np.round(rng.random((6, 11, len(y))), 1)  # curves x steps x cases, with ties within and across classes
    p1[2, 3] = 0.5  # a step where every case scores the same: AUC 0.5
    prob = np.stack([1 - p1, p1], axis=-1)
    got = performance("auc", y, prob, prob.argmax(-1))
    loop = np.array([[class_auc(y, prob[r, j]) for j in range(11)] for r in range(6)])
    assert got.shape == (6, 11) and np.array_equal(got, loop)  # the same floats
    np.testing.assert_allclose(got, [[roc_auc_score(y, p) for p in row] for row in p1], atol=1e-12)
    assert got[2, 3] == 0.5
    assert np.isnan(performance("auc", np.ones(14, int), prob, prob.argmax(-1))).all()  # one class only


class UsesVoxels(nn.Module):
    """Class-1 logit = mean of a fixed set of voxels S; class-0 logit = 0."""

    def __init__(self, idx):
        super().__init__()
        self.idx = torch.as_tensor(idx)

    def forward(self, x):
        s = x.reshape(len(x), -1)[:, self.idx].mean(dim=1)
        return torch.stack([torch.zeros_like(s), s], dim=1)


def _toy_removal(map_on_s, map_elsewhere):
    rng = np.random.default_rng(2)
    n, s_idx = 2 * 8 * 8, np.arange(0, 128, 16)  # 8 used voxels out of 128, 2 modalities of 8 x 8
    labels = np.array([0, 1] * 6)
    inputs = []
    for y in labels:
        x = rng.normal(0, 1, n).astype(np.float32)
        x[s_idx] = 1.0 if y else -1.0
        inputs.append(x)
    layout = FlatLayout((torch.zeros(1, 2, 8, 8),))
    predict = Predictor(UsesVoxels(s_idx), layout, fast=False)
    maps = []
    for _ in labels:
        m = rng.uniform(*map_elsewhere, n).astype(np.float32)
        m[s_idx] = map_on_s
        maps.append(m)
    cfg = {"n_steps": 10, "baselines": 15, "replacement": "zero", "metric": "accuracy", "batch_size": 50}
    curves, removed = removal_curves(predict, layout, [f"c{i}" for i in range(len(labels))], inputs, maps, labels,
                                     cfg, seed=10)
    return curves, removed, maps


def test_a_map_on_the_used_voxels_beats_random_and_its_reverse_does_not():
    curves, removed, maps = _toy_removal(1.0, (0.01, 0.5))
    result = delta_aupc(curves)
    m = curves[curves["curve"] == "map"].set_index("q")["performance"]
    assert m.loc[0.0] == 1.0 and m.loc[0.1] == 0.5  # the 8 used voxels are in the top 10 %
    assert result["delta_aupc"] > 0.3 and result["performance_unperturbed"] == 1.0
    # the voxels removed per case, draw and step are those the steps remove, counted here on every curve
    for c, m in enumerate(maps):
        step = removal_steps(m, removal_fractions(10))
        steps = np.concatenate([step[None], baseline_steps(step, 15, 10, f"c{c}")])
        got = removed[removed["case"] == f"c{c}"].pivot(index="draw", columns="step", values="removed")
        np.testing.assert_array_equal(got.to_numpy(), (steps[:, None, :] <= np.arange(11)[None, :, None]).sum(-1))
    reverse, _, _ = _toy_removal(0.001, (0.5, 1.0))  # the used voxels ranked last
    assert delta_aupc(reverse)["delta_aupc"] < 0
    assert len(curves) == 16 * 11 and set(curves["curve"]) == {"map", "baseline"}


def _by_hand(model, layout, inputs, maps, labels, cfg, seed):
    """Feature-removal performance per (curve, step) with every input built and run on its own."""
    qs = removal_fractions(cfg["n_steps"])
    prob = np.zeros((1 + cfg["baselines"], len(qs), len(inputs), 2), np.float32)
    for c, (x, m) in enumerate(zip(inputs, maps)):
        step = removal_steps(m, qs)
        steps = np.concatenate([step[None], baseline_steps(step, cfg["baselines"], seed, f"c{c}")])
        values = replacement_values(x, m, layout, cfg["replacement"], seed, f"c{c}")
        for r in range(len(steps)):
            for j in range(len(qs)):
                xi = torch.from_numpy(np.where(steps[r] <= j, values, x)[None])
                with torch.no_grad():
                    prob[r, j, c] = torch.softmax(model(*layout.unflatten(xi)), 1)[0].numpy()
    from clinxai.metrics.removal import performance

    return performance(cfg["metric"], labels, prob, prob.argmax(-1))


@pytest.mark.parametrize("how", ["zero", "sampled"])
def test_inputs_no_curve_changes_run_once(how):
    # a map positive everywhere removes every voxel at q = 1 (the replacement itself, for every curve), a map
    # without a positive voxel removes nothing (the unchanged input at every step); only the unchanged input, and
    # the replacement where it does not depend on the map, are shared with a second call on the same model
    rng = np.random.default_rng(3)
    layout = FlatLayout((torch.zeros(1, 2, 8, 8),))
    labels = np.array([0, 1, 1])
    inputs = [rng.normal(0, 1, layout.n).astype(np.float32) for _ in labels]
    maps = [rng.uniform(0.1, 1, layout.n).astype(np.float32), np.zeros(layout.n, np.float32),
            rng.normal(0, 1, layout.n).astype(np.float32)]
    model = UsesVoxels(np.arange(0, 128, 5))
    cfg = {"n_steps": 4, "baselines": 2, "replacement": how, "metric": "auc", "batch_size": 5}
    predict = CountingPredictor(model, layout, fast=False)
    shared = {}
    curves, removed = removal_curves(predict, layout, ["c0", "c1", "c2"], inputs, maps, labels, cfg, 10, shared)
    # case 0: unchanged + 3 steps x 3 curves + the replacement once; case 1: unchanged; case 2: 1 + 4 x 3
    assert predict.seen == 11 + 1 + 13
    expected = _by_hand(model, layout, inputs, maps, labels, cfg, 10)
    np.testing.assert_allclose(curves["performance"].to_numpy().reshape(expected.shape), expected, atol=1e-12)
    assert (removed.query("case == 'c1'")["removed"] == 0).all()
    assert (removed.query("case == 'c0' and step == 4")["removed"] == layout.n).all()
    predict.seen = 0
    again, _ = removal_curves(predict, layout, ["c0", "c1", "c2"], inputs, maps, labels, cfg, 10, shared)
    assert predict.seen == 9 + (how == "sampled") + 0 + 12 and again.equals(curves)


def test_delta_aupc_is_baseline_area_minus_map_area():
    q = np.linspace(0, 1, 3)
    rows = [{"curve": "map", "draw": 0, "q": x, "performance": p} for x, p in zip(q, [1.0, 0.5, 0.5])]
    rows += [{"curve": "baseline", "draw": d, "q": x, "performance": p}
             for d, perf in ((1, [1.0, 1.0, 0.5]), (2, [1.0, 0.8, 0.5])) for x, p in zip(q, perf)]
    r = delta_aupc(pd.DataFrame(rows))
    # map: trapezoids 0.5*(1+0.5)/2 + 0.5*(0.5+0.5)/2 = 0.625; mean baseline (1, 0.9, 0.5): 0.475 + 0.35 = 0.825
    assert r["aupc_map"] == pytest.approx(0.625) and r["aupc_baseline"] == pytest.approx(0.825)
    assert r["delta_aupc"] == pytest.approx(0.2)


def test_replacement_values():
    layout = FlatLayout((torch.zeros(1, 2, 4, 4),))
    x = np.arange(32, dtype=np.float32)
    m = np.linspace(0, 1, 32).astype(np.float32)
    assert (replacement_values(x, m, layout, "zero", 1, "c") == 0).all()
    mean = replacement_values(x, m, layout, "mean", 1, "c")
    assert (mean[:16] == 7.5).all() and (mean[16:] == 23.5).all()  # per modality
    sampled = replacement_values(x, m, layout, "sampled", 1, "c", low_quantile=0.5)
    assert set(sampled[:16]) <= set(x[:8]) and set(sampled[16:]) <= set(x[16:24])  # low-importance donors only
    from scipy import ndimage

    nb = replacement_values(x, m, layout, "neighbourhood", 1, "c", neighbourhood_size=3)
    np.testing.assert_allclose(nb[:16], ndimage.uniform_filter(x[:16].reshape(4, 4), 3, mode="nearest").ravel())
    from clinxai import ClinxaiError

    blur = replacement_values(x, m, layout, "blur", 1, "c", blur_sigma=1.5)
    np.testing.assert_allclose(blur[16:], ndimage.gaussian_filter(x[16:].reshape(4, 4).astype(float), 1.5,
                                                                  mode="nearest").ravel(), rtol=1e-6)
    with pytest.raises(ClinxaiError, match="replacement"):
        replacement_values(x, m, layout, "smudge", 1, "c")
    with pytest.raises(ValueError, match="road"):  # imputed per removed set, not one array per case
        replacement_values(x, m, layout, "road", 1, "c")


# ---------------------------------------------------------------- MI correlation

def test_mi_correlation_matches_scipy_and_is_nan_with_a_reason():
    phi, parts = np.array([0.1, 0.4, 0.2, 0.3]), [np.full((2, 2), v) for v in (1.0, 4.0, 3.0, 2.0)]
    mi = modality_sums(parts)
    np.testing.assert_allclose(mi, [4, 16, 12, 8])
    tau, p, reason = mi_correlation(phi, mi)
    ref = kendalltau(phi, mi)
    assert tau == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue) and reason == ""
    assert modality_sums([np.array([-1.0, 2.0])])[0] == 2.0  # positive values only
    for args, why in (((phi, mi, True), "identical"), ((phi, np.zeros(4)), "all equal"),
                      ((np.ones(4), mi), "Shapley values are all equal"), ((phi, np.array([1, np.nan, 2, 3])), "finite")):
        tau, p, reason = mi_correlation(*args)
        assert np.isnan(tau) and np.isnan(p) and why in reason


def test_identical_across_modalities():
    from clinxai.metrics.modality import identical_across_modalities

    a = np.random.default_rng(0).random((3, 3))
    assert identical_across_modalities([a, a.copy(), a.copy()])
    assert not identical_across_modalities([a, a + 1e-3])
    assert not identical_across_modalities([a, np.zeros((2, 2))])


# ---------------------------------------------------------------- fast evaluation

@pytest.mark.parametrize("task", ["glioma", "knee"])
def test_fast_predictor_agrees_with_the_eager_model(task):
    torch.manual_seed(0)
    if task == "glioma":
        model, x = GeneNet3D(4, (16, 16, 8), (4, 8), 16), (torch.randn(1, 4, 16, 16, 8),)
    else:
        model, x = KneeNet((4, 8)), tuple(torch.randn(1, 4, 16, 16) for _ in range(3))
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    layout = FlatLayout(x)
    flat = torch.stack([layout.flatten(x) + 0.1 * i for i in range(5)])
    p_fast, c_fast = Predictor(model, layout, fast=True)(flat)
    p_slow, c_slow = Predictor(model, layout, fast=False)(flat)
    np.testing.assert_allclose(p_fast, p_slow, atol=1e-5)
    with torch.no_grad():
        ref = torch.softmax(model.eval()(*layout.unflatten(flat)), 1).numpy()
    np.testing.assert_allclose(p_slow, ref, atol=1e-6)
    # the fast model's convolutions are channels-last, the knee network's three inputs notwithstanding
    fast = Predictor(model, layout, fast=True)
    fast(flat)
    fmt = torch.channels_last_3d if task == "glioma" else torch.channels_last
    convs = [m for m in fast.model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    assert convs and all(m.weight.is_contiguous(memory_format=fmt) for m in convs)
    assert any(not m.weight.is_contiguous() for m in convs)  # (one input channel: both layouts at once)


def test_channels_last_format_follows_the_convolutions():
    assert channels_last_format(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU())) == torch.channels_last
    assert channels_last_format(nn.Sequential(nn.Conv3d(2, 3, 3))) == torch.channels_last_3d
    assert channels_last_format(nn.Sequential(nn.Conv2d(2, 3, 3), nn.Conv3d(3, 3, 3))) is None  # mixed: left alone
    assert channels_last_format(nn.Linear(3, 2)) is None
    mixed = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Conv3d(3, 3, 3))
    assert all(p.is_contiguous() for p in to_channels_last(mixed).parameters())


# A game whose players 1 and 3 are symmetric: worths are accuracies k/24, so φ_1 = φ_3 exactly (both 5/36). Summed in
# floats, as before, they came out as 0.1388888888888889 and 0.13888888888888887 and Kendall τ-b broke their tie.
TIED = {(): 6, (0,): 16, (1,): 4, (2,): 9, (3,): 4, (0, 1): 4, (0, 2): 24, (0, 3): 4, (1, 2): 3, (1, 3): 19,
        (2, 3): 3, (0, 1, 2): 8, (0, 1, 3): 17, (0, 2, 3): 8, (1, 2, 3): 22, (0, 1, 2, 3): 19}


def test_equal_shapley_values_are_equal_floats():
    from fractions import Fraction

    from scipy.stats import kendalltau

    phi = shapley_values({c: k / 24 for c, k in TIED.items()}, 4)
    assert phi[1] == phi[3] == float(Fraction(5, 36))
    # exact reference: the same sums in fractions, from the counts themselves
    exact = shapley_values({c: Fraction(k, 24) for c, k in TIED.items()}, 4)
    assert list(phi) == list(exact)
    mi = np.array([0.3, 0.2, 0.1, 0.4])  # φ ties at 1 and 3, MI does not: τ-b with one tied pair in φ
    tau, p, _ = mi_correlation(phi, mi)
    ref = kendalltau([float(Fraction(x)) for x in exact], mi, variant="b")
    assert (tau, p) == (ref.statistic, ref.pvalue)
    # by hand: φ = (11, 10, 8, 10) / 72. Pairs against MI: (0,1) C, (0,2) C, (0,3) D, (1,2) C, (1,3) tied in φ,
    # (2,3) C, so τ_b = (4 - 1) / sqrt((6 - 1) · 6). With the tie broken by rounding noise (φ_1 > φ_3) the pair (1,3)
    # became discordant and τ_b = (4 - 2) / 6 = 0.33: the defect this guards against.
    assert tau == pytest.approx(3 / np.sqrt(30))
