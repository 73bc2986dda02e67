"""clinxai's GradientShap over a batch of cases (clinxai.attribution.gradient_shap) makes each case's draws as captum
does when called on that case alone after seeding with the case's seed: the same maps, bit for bit where a pass holds
one case, within float rounding where it holds several."""

import random

import numpy as np
import pytest
import torch
import yaml
from captum import attr as ca

from clinxai.attribution.explain import build, explain
from clinxai.attribution.gradient_shap import GradientShap
from clinxai.attribution.registry import METHODS
from clinxai.models import GeneNet3D, KneeNet
from clinxai.tasks import kind_of
from own_vs_captum import SEEDS, check_maps, model_with_biases



def _captum_per_case(model, inputs, target, baselines, **kw):
    """captum's GradientShap on each case alone, seeded as clinxai.attribution.explain seeds a case."""
    out = []
    for i, s in enumerate(SEEDS[:inputs[0].shape[0]]):
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)
        b = tuple(x[i:i + 1] if x.shape[0] > 1 else x for x in baselines)
        out.append(ca.GradientShap(model).attribute(tuple(x[i:i + 1] for x in inputs), b, target=int(target[i]), **kw))
    return tuple(torch.cat(parts) for parts in zip(*out))



@pytest.mark.parametrize("stdevs", [0.0, 0.3])
def test_genenet_equals_captum_per_case(stdevs):
    model = model_with_biases(GeneNet3D(3, (12, 12, 8), (4, 8), 16))
    torch.manual_seed(1)
    x, target = (torch.randn(4, 3, 12, 12, 8),), torch.tensor([0, 1, 1, 0])
    for base in ((torch.zeros_like(x[0]),), (torch.randn(4, 3, 12, 12, 8),), (torch.randn(1, 3, 12, 12, 8),)):
        expected = _captum_per_case(model, x, target, base, n_samples=5, stdevs=stdevs)
        # a pass of up to 9 samples holds one case's 5, as captum's call does: the same numbers; 12 holds two, 64 all
        for per_pass, exact in ((9, True), (12, False), (64, False)):
            got = GradientShap(model).attribute(x, target, base, n_samples=5, stdevs=stdevs, case_seeds=SEEDS,
                                                samples_per_pass=per_pass)
            check_maps(got, expected, exact)


@pytest.mark.parametrize("stdevs", [0.2, (0.0, 0.2, 0.2), (0.2, 0.0, 0.2), (0.2, 0.0, 0.0)])
def test_the_three_view_knee_network_equals_captum_per_case(stdevs):
    # a deviation of 0 still draws (zeros) from torch's generator before the next view's noise
    model = model_with_biases(KneeNet(widths=(4, 8)))
    torch.manual_seed(2)
    views = tuple(torch.randn(3, 3, 16, 16) for _ in range(3))
    base = tuple(torch.zeros_like(v) for v in views)
    target = torch.tensor([1, 0, 1])
    expected = _captum_per_case(model, views, target, base, n_samples=4, stdevs=stdevs)
    check_maps(GradientShap(model).attribute(views, target, base, n_samples=4, stdevs=stdevs, case_seeds=SEEDS[:3],
                                         samples_per_pass=4), expected, True)
    check_maps(GradientShap(model).attribute(views, target, base, n_samples=4, stdevs=stdevs, case_seeds=SEEDS[:3],
                                         samples_per_pass=16), expected, False)


def test_it_asks_for_a_seed_per_case_and_baselines_per_case():
    model = model_with_biases(GeneNet3D(1, (8, 8, 8), (4,), 8))
    x = torch.randn(3, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="one seed per case: 3 cases"):
        GradientShap(model).attribute(x, [0, 0, 0], torch.zeros_like(x), case_seeds=[1, 2])
    with pytest.raises(ValueError, match=r"1 or 3 rows \(one per case\): \[2\]"):
        GradientShap(model).attribute(x, [0, 0, 0], torch.zeros(2, 1, 8, 8, 8), case_seeds=[1, 2, 3])
    with pytest.raises(ValueError, match=r"one deviation, or one per input \(1\)"):
        GradientShap(model).attribute(x, [0, 0, 0], torch.zeros_like(x), stdevs=(0.1, 0.2), case_seeds=[1, 2, 3])


@pytest.mark.parametrize("baselines", [0.0, "gaussian"])
def test_explain_batches_cases_and_keeps_each_cases_map(baselines):
    """A case's map does not depend on the cases it was batched with, and equals captum's one call per case (a
    drawn baseline too: each case draws its own)."""
    kind = kind_of(yaml.safe_load(open("config/config.yaml")), "glioma")
    model = model_with_biases(GeneNet3D(2, (8, 8, 8), (4, 8), 8))
    torch.manual_seed(3)
    inputs = [(torch.randn(1, 2, 8, 8, 8),) for _ in range(3)]
    assert isinstance(build(METHODS["GradientShap"], model, kind), GradientShap)
    assert isinstance(build(METHODS["GradientShap"], model, kind, batching={"fast": False}), ca.GradientShap)
    used, runs = [], []
    for fast, cases in ((True, "abc"), (False, "abc"), (True, "c")):
        idx = [ord(c) - ord("a") for c in cases]
        runs.append(explain(model, kind, "GradientShap", list(cases), [inputs[i] for i in idx], [[0, 1, 1][i] for i in idx],
                            None, 10, {"baselines": baselines}, {"batch_size": 8, "internal_batch_size": 16,
                                                                 "fast": fast},
                            used=used)[0])
    stem = f"{GradientShap.implementation}, linear stem once per case"  # the GeneNet's first convolution
    assert used == [stem, "captum", stem]
    for own, ref in zip(*runs[:2]):
        for a, b in zip(own, ref):
            assert np.abs(b).max() > 0 and np.abs(a - b).max() <= 1e-7 + 1e-5 * np.abs(b).max()
    # alone, c's 5 samples fill a pass of their own; batched, they shared one with a's and b's (float rounding only)
    assert all(np.abs(a - b).max() <= 1e-7 + 1e-5 * np.abs(b).max() for a, b in zip(runs[0][2], runs[2][0]))


def _with_stem(model, inputs):
    own = GradientShap(model)
    own.prepare_for_inputs(tuple(x[:1] for x in inputs))
    assert own.stem is not None and own.implementation.endswith("linear stem once per case")
    return own


def test_through_the_linear_stem_equals_captum_per_case():
    """Without noise, the samples' stem outputs come from one stem pass of x - b and one of the baselines, and
    the input gradient from one transposed pass per case: captum's maps within float rounding."""
    model = model_with_biases(GeneNet3D(3, (12, 12, 8), (4, 8), 16))
    torch.manual_seed(1)
    x, target = (torch.randn(4, 3, 12, 12, 8),), torch.tensor([0, 1, 1, 0])
    for base in ((torch.zeros_like(x[0]),), (torch.randn(4, 3, 12, 12, 8),), (torch.randn(1, 3, 12, 12, 8),)):
        expected = _captum_per_case(model, x, target, base, n_samples=5, stdevs=0.0)
        for per_pass in (5, 12, 64):
            got = _with_stem(model, x).attribute(x, target, base, n_samples=5, stdevs=0.0, case_seeds=SEEDS,
                                                 samples_per_pass=per_pass)
            check_maps(got, expected, False)
    knee = model_with_biases(KneeNet(widths=(4, 8)))  # a stem call per view, on the view's slices as a batch
    views = tuple(torch.randn(3, 3, 16, 16) for _ in range(3))
    base = tuple(torch.randn(3, 3, 16, 16) for _ in range(3))
    for stdevs in (0.0, (0.0, 0.2, 0.0)):  # with noise: the samples are not on the ray, every sample runs whole
        expected = _captum_per_case(knee, views, torch.tensor([1, 0, 1]), base, n_samples=4, stdevs=stdevs)
        own = _with_stem(knee, views)
        check_maps(own.attribute(views, torch.tensor([1, 0, 1]), base, n_samples=4, stdevs=stdevs,
                                 case_seeds=SEEDS[:3], samples_per_pass=8), expected, False)
        assert (own.implementation == GradientShap.THROUGH_STEM) == (stdevs == 0.0)  # what computed this call


def test_the_stem_runs_once_per_case_not_once_per_sample():
    model = model_with_biases(GeneNet3D(2, (8, 8, 8), (4, 8), 8))
    x = (torch.randn(4, 2, 8, 8, 8),)
    own = _with_stem(model, x)
    stem, convolutions = model.features[0], []
    real = stem._conv_forward
    stem._conv_forward = lambda *a: convolutions.append(a[0].shape[0]) or real(*a)
    own.attribute(x, torch.tensor([0, 1, 0, 1]), (torch.zeros_like(x[0]),), n_samples=5, case_seeds=SEEDS,
                  samples_per_pass=10)
    assert convolutions == [4, 4]  # x - b and the baselines, once each (captum's: 20 samples, 4 passes)


def test_the_registry_says_which_methods_batch_cases():
    assert METHODS["GradientShap"].batches_cases(fast=True) and not METHODS["GradientShap"].batches_cases(fast=False)
    assert METHODS["SmoothGrad"].batches_cases(fast=True) and not METHODS["SmoothGrad"].batches_cases(fast=False)
    assert METHODS["Gradient"].batches_cases(fast=False) and not METHODS["Occlusion"].batches_cases(fast=True)
