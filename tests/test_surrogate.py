"""clinxai's Lime and KernelShap (captum's draws and surrogate fit, coalitions as the model's inputs) equal captum's
within float tolerance, draw exactly what captum draws and feed the model exactly its samples."""

import numpy as np
import pytest
import torch
import yaml
from captum import attr as ca
from captum._utils.models.linear_model import SkLearnLinearRegression
from torch import nn

from clinxai.attribution import surrogate
from clinxai.attribution.explain import build, explain, implementation
from clinxai.attribution.registry import METHODS
from clinxai.models import GeneNet3D, KneeNet
from clinxai.tasks import kind_of


def _model():
    torch.manual_seed(0)
    return GeneNet3D(2, (8, 8, 8), (4, 8), 8).eval()


def _mask(shape, n, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, n, size=shape)).long()


def _pair(name):
    """captum's explainer and clinxai's, each as the registry builds it (Lime: the linear-regression surrogate)."""
    kw = (lambda: {"interpretable_model": SkLearnLinearRegression()}) if name == "Lime" else dict
    return (lambda model: getattr(ca, name)(model, **kw())), (lambda model: getattr(surrogate, name)(model, **kw()))


def _close(a, b):
    a, b = (torch.as_tensor(t) for t in (a, b))
    assert b.abs().max() > 0
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()


@pytest.mark.parametrize("name", ["Lime", "KernelShap"])
def test_equals_captum_per_case_with_tensor_baselines(name):
    model, (theirs, ours) = _model(), _pair(name)
    x = torch.randn(2, 2, 8, 8, 8)
    base, mask = torch.randn_like(x), _mask((2, 2, 8, 8, 8), 7) + 2  # ids 2..8: captum shifts them to start at 0
    torch.manual_seed(5)
    expected = torch.cat([theirs(model).attribute(x[i:i + 1], target=i, baselines=base[i:i + 1],
                                                  feature_mask=mask[i:i + 1], n_samples=40, perturbations_per_eval=4)
                          for i in range(2)])
    after = torch.rand(1)
    torch.manual_seed(5)
    got = ours(model).attribute(x, target=torch.tensor([0, 1]), baselines=base, feature_mask=mask, n_samples=40,
                                perturbations_per_eval=3)
    _close(got, expected)
    assert torch.equal(torch.rand(1), after)  # captum's draws, no more


@pytest.mark.parametrize("name", ["Lime", "KernelShap"])
def test_multi_input_knee_model(name):
    torch.manual_seed(0)
    model, (theirs, ours) = KneeNet((4, 4, 8)).eval(), _pair(name)
    x = tuple(torch.randn(1, 3, 16, 16) for _ in range(3))
    masks = tuple(_mask((1, 3, 16, 16), 4, s) + 4 * s for s in range(3))
    torch.manual_seed(3)
    expected = theirs(model).attribute(x, target=1, baselines=(0.0, 0.5, 0.0), feature_mask=masks, n_samples=30)
    torch.manual_seed(3)
    got = ours(model).attribute(x, target=1, baselines=(0.0, 0.5, 0.0), feature_mask=masks, n_samples=30,
                                perturbations_per_eval=7)
    for a, b in zip(got, expected):
        _close(a, b)


def test_lime_cosine_kernel_from_feature_sums():
    # the kernel of a coalition equals captum's on the full-size input it stands for
    lime = surrogate.Lime(_model())
    x, b = (torch.randn(1, 2, 4, 4, 4),), (torch.randn(1, 2, 4, 4, 4),)
    mask = (_mask((1, 2, 4, 4, 4), 5),)
    lime._prepare(surrogate.Coalitions(lime.model, x, b, mask, 0, 1, 5))
    reference = ca._core.lime.get_exp_kernel_similarity_function()
    for on in ([1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]):
        sample = torch.tensor([on])
        full = torch.where(sample[0][mask[0]].bool(), x[0], b[0])
        assert lime._cosine_kernel(x, sample, sample) == pytest.approx(reference(x, full, sample), rel=1e-6)


def test_the_model_sees_exactly_the_samples_in_batches():
    model, fed = _model(), []

    def forward(x):
        fed.append(len(x))
        return model(x)

    x, mask = torch.randn(1, 2, 8, 8, 8), _mask((1, 2, 8, 8, 8), 6)
    for name in ("Lime", "KernelShap"):
        fed.clear()
        _pair(name)[1](forward).attribute(x, target=0, feature_mask=mask, n_samples=23, perturbations_per_eval=8)
        assert fed == [8, 8, 7]


def test_explain_uses_them_unless_fast_is_off():
    kind = kind_of(yaml.safe_load(open("config/config.yaml")), "glioma")
    model = _model()
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    inputs = [(torch.randn(1, 2, 8, 8, 8),) for _ in range(2)]
    masks = [_mask((2, 8, 8, 8), 5, s).numpy() for s in range(2)]
    for name in ("Lime", "KernelShap"):
        fast = build(METHODS[name], model, kind, example=inputs[0])
        assert isinstance(fast, getattr(surrogate, name))
        assert implementation(fast) == "captum draws and fit, clinxai coalition batches, BatchNorm folded"
        assert type(build(METHODS[name], model, kind, batching={"fast": False})) is getattr(ca, name)
        runs = [explain(model, kind, name, ["a", "b"], inputs, [0, 1], masks, 10, {"n_samples": 12},
                        {"perturbations_per_eval": 5, "fast": fast})[0] for fast in (True, False)]
        for own, ref in zip(*runs):  # the same seeded draws per case: the same maps
            _close(np.stack(own), np.stack(ref))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coefficients_to_maps_equal_captums_loop(dtype):
    """The gather that turns the surrogate's coefficients into maps gives captum's values bit for bit (incl. a
    coefficient of -0.0, broadcast masks, several inputs, a leading dimension of one); a non-finite coefficient takes
    captum's loop, which spreads it to every voxel."""
    own = surrogate.Lime(_model(), interpretable_model=SkLearnLinearRegression())
    ref = ca.Lime(_model(), interpretable_model=SkLearnLinearRegression())
    torch.manual_seed(4)
    inputs = (torch.randn(1, 2, 6, 6, 4), torch.randn(1, 3, 5, 5))
    masks = (_mask((1, 1, 6, 6, 4), 5), _mask((1, 3, 5, 5), 4, 1) + 5)  # ids 0..8, the first mask broadcast
    coefs = torch.randn(1, 9, dtype=dtype)
    coefs[0, 2] = -0.0
    for args in (((inputs[0],), (masks[0],), coefs[:, :5], 5, False), (inputs, masks, coefs, 9, True)):
        for lead in (False, True):
            got = own._convert_output_shape(*args, leading_dim_one=lead)
            expected = ref._convert_output_shape(*args, leading_dim_one=lead)
            for a, b in zip(*(t if isinstance(t, tuple) else (t,) for t in (got, expected))):
                assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
                assert not torch.signbit(a).logical_and(a == 0).any()  # no -0.0, as in captum's sum
    coefs[0, 1] = float("nan")
    got = own._convert_output_shape(inputs, masks, coefs, 9, True)
    assert all(torch.isnan(a).all() for a in got)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_coefficients_to_maps_on_a_cuda_input():
    # sklearn's coefficients come on the CPU; the maps must be on the input's device, as captum's loop makes them
    own = surrogate.Lime(_model(), interpretable_model=SkLearnLinearRegression())
    x, mask, coefs = torch.randn(1, 2, 4, 4, 4).cuda(), _mask((1, 1, 4, 4, 4), 3).cuda(), torch.randn(1, 3)
    got = own._convert_output_shape((x,), (mask,), coefs, 3, False)
    expected = ca.Lime(_model())._convert_output_shape((x,), (mask,), coefs, 3, False)
    assert got.device == x.device and torch.equal(got, expected)
