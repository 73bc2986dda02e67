"""clinxai's IntegratedGradients through the linear stem (clinxai.attribution.integrated_gradients): captum's maps
within float rounding on the pipeline's three networks, the stem evaluated once per case, and captum's own class
wherever the model reads its input other than through a linear first layer."""
import captum.attr as ca
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from clinxai.attribution.explain import build, explain, implementation
from clinxai.attribution.integrated_gradients import IntegratedGradients
from clinxai.attribution.registry import METHODS
from clinxai.inference import to_channels_last
from clinxai.models import GeneNet3D, KneeNet, build_model
from clinxai.tasks import kind_of
from own_vs_captum import model_with_biases


def _glioma(n=3):
    torch.manual_seed(1)
    return model_with_biases(GeneNet3D(2, (8, 8, 8), (4, 8), 8)), (torch.randn(n, 2, 8, 8, 8),)


def _knee(n=3):
    torch.manual_seed(2)
    return model_with_biases(KneeNet(widths=(4, 8))), tuple(torch.randn(n, 4, 16, 16) for _ in range(3))


def _synthetic(n=3):
    torch.manual_seed(3)
    return model_with_biases(build_model("densenet2d", {"in_channels": 4})), (torch.randn(n, 4, 32, 32),)


def _close(got, expected):
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for a, b in zip(got, expected):
        scale = float(b.abs().max())
        assert scale > 0 and a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-4, atol=2e-6 * scale), float((a - b).abs().max()) / scale


def _arg(xs):
    return xs if len(xs) > 1 else xs[0]


@pytest.mark.parametrize("setup", [_glioma, _knee, _synthetic])
@pytest.mark.parametrize("channels_last", [False, True])
def test_it_equals_captums_maps(setup, channels_last):
    model, xs = setup()
    if channels_last:  # as explain gives gradient methods their copy
        to_channels_last(model)
    own = IntegratedGradients(model)
    own.prepare_for_inputs(tuple(x[:1] for x in xs))
    assert own.implementation == "clinxai, linear stem once per case" and own.stem.calls
    ref = ca.IntegratedGradients(model)
    target = torch.tensor([0, 1, 1])
    mean = tuple(x.mean(dim=tuple(range(2, x.dim())), keepdim=True).expand_as(x).contiguous() for x in xs)
    for kw in ({"n_steps": 8},  # zero baseline, every step in one pass
               {"n_steps": 7, "internal_batch_size": 6},  # 2 steps per pass, the last pass one step
               {"n_steps": 5, "baselines": _arg(mean), "method": "riemann_trapezoid", "internal_batch_size": 3},
               {"n_steps": 4, "baselines": 0.25 if len(xs) == 1 else (0.25, -0.5, 0.0)}):
        _close(own.attribute(_arg(xs), target=target, **kw), ref.attribute(_arg(xs), target=target, **kw))
    # a single int target, as captum takes it
    _close(own.attribute(_arg(xs), target=1, n_steps=4), ref.attribute(_arg(xs), target=1, n_steps=4))


def test_the_stem_runs_once_per_call_and_the_rest_once_per_pass():
    model, (x,) = _glioma(4)
    stem = model.features[0]
    convolutions = []
    real = stem._conv_forward
    stem._conv_forward = lambda *a: convolutions.append(a[0].shape[0]) or real(*a)
    passes = []
    model.register_forward_pre_hook(lambda m, a: passes.append(a[0].shape[0]))
    own = build(METHODS["IntegratedGradients"], model, kind_of(yaml.safe_load(open("config/config.yaml")), "glioma"),
                example=(x[:1],))
    assert isinstance(own, IntegratedGradients)
    convolutions.clear(), passes.clear()
    own.attribute(x, target=torch.tensor([0, 1, 0, 1]), n_steps=12, internal_batch_size=16)
    assert convolutions == [4]  # the four cases' (input - baseline) once: not once per step
    assert passes == [16, 16, 16]  # 12 steps x 4 cases, 4 steps per pass
    convolutions.clear(), passes.clear()
    ca.IntegratedGradients(model).attribute(x, target=torch.tensor([0, 1, 0, 1]), n_steps=12, internal_batch_size=16)
    assert convolutions == [16, 16, 16] and passes == [16, 16, 16]


class _ReadsInputTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))) + x.mean(dim=(1, 2, 3))[:, None]


class _ScalesFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(torch.tanh(x))).mean(dim=(2, 3)))


class _GatesOnNonZero(nn.Module):  # NaN != 0 is True: only the ray's point 0 shows the gate
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc((torch.relu(self.conv(x)) * (x != 0).any(1, keepdim=True)).mean(dim=(2, 3)))


class _Checkpointed(nn.Module):  # recomputes the stem in the backward pass, after the substitution has ended
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(3, 2)

    def forward(self, x):
        from torch.utils.checkpoint import checkpoint

        h = checkpoint(lambda t: torch.relu(self.conv(t)), x, use_reentrant=False)
        return self.fc(h.mean(dim=(2, 3)))


@pytest.mark.parametrize("net", [_ReadsInputTwice, _ScalesFirst, _GatesOnNonZero, _Checkpointed])
def test_a_model_read_other_than_through_a_linear_stem_gets_captums(net):
    torch.manual_seed(0)
    model, x = net().eval(), torch.randn(3, 2, 6, 6)
    own = IntegratedGradients(model)
    own.prepare_for_inputs((x[:1],))
    assert own.stem is None and implementation(own) == "captum (no linear stem)"
    target = torch.tensor([0, 1, 1])
    assert torch.equal(own.attribute(x, target=target, n_steps=5), ca.IntegratedGradients(model).attribute(
        x, target=target, n_steps=5))


def test_what_the_stem_path_does_not_cover_runs_captums():
    model, (x,) = _glioma()
    own = IntegratedGradients(model)
    own.prepare_for_inputs((x[:1],))
    ref = ca.IntegratedGradients(model)
    target = torch.tensor([0, 1, 1])
    got, delta = own.attribute(x, target=target, n_steps=4, return_convergence_delta=True)
    expected, expected_delta = ref.attribute(x, target=target, n_steps=4, return_convergence_delta=True)
    assert torch.equal(got, expected) and torch.equal(delta, expected_delta)
    unprepared = IntegratedGradients(model)  # no example seen: nothing assumed
    assert torch.equal(unprepared.attribute(x, target=target, n_steps=4), ref.attribute(x, target=target, n_steps=4))


def test_explain_uses_it_and_gives_captums_maps():
    kind = kind_of(yaml.safe_load(open("config/config.yaml")), "glioma")
    model, (x,) = _glioma(3)
    inputs = [(x[i:i + 1],) for i in range(3)]
    used, runs = [], []
    for fast in (True, False):
        runs.append(explain(model, kind, "IntegratedGradients", ["a", "b", "c"], inputs, [0, 1, 1], None, 10,
                            {"n_steps": 6}, {"batch_size": 2, "internal_batch_size": 4, "fast": fast}, used=used)[0])
    assert used == ["clinxai, linear stem once per case", "captum"]
    for own, ref in zip(*runs):
        for a, b in zip(own, ref):
            assert np.abs(b).max() > 0 and np.abs(a - b).max() <= 2e-6 * np.abs(b).max() + 1e-7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_stem_path_runs_on_cuda():
    from clinxai.attribution.gradient_shap import GradientShap
    from own_vs_captum import SEEDS

    model, (x,) = _glioma(3)
    model, x, target = model.cuda(), x.cuda(), torch.tensor([0, 1, 1], device="cuda")
    own = IntegratedGradients(model)
    own.prepare_for_inputs((x[:1],))
    assert own.stem is not None
    _close(own.attribute(x, target=target, n_steps=6, internal_batch_size=6),
           ca.IntegratedGradients(model).attribute(x, target=target, n_steps=6, internal_batch_size=6))
    shap = GradientShap(model)
    shap.prepare_for_inputs((x[:1],))
    plain = GradientShap(model).attribute(x, target, (torch.zeros_like(x),), case_seeds=SEEDS[:3])
    _close(shap.attribute(x, target, (torch.zeros_like(x),), case_seeds=SEEDS[:3]), plain)


class _InPlaceAfterStem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(2, 3, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


class _TokenNet(nn.Module):
    """A linear layer on (cases, tokens, features): its bias is on the last dimension."""

    def __init__(self):
        super().__init__()
        self.embed, self.fc = nn.Linear(5, 7), nn.Linear(7, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.embed(x)).mean(dim=1))


def test_an_in_place_operation_on_the_stems_output_gets_captums():
    """The check takes the gradient through the stem as attribute does: an in-place activation on the stem's output
    (a leaf there) fails it, and captum's class runs instead of a crash."""
    torch.manual_seed(0)
    model, x = _InPlaceAfterStem().eval(), torch.randn(3, 2, 6, 6)
    own = IntegratedGradients(model)
    own.prepare_for_inputs((x[:1],))
    assert own.stem is None
    target = torch.tensor([0, 1, 1])
    assert torch.equal(own.attribute(x, target=target, n_steps=4),
                       ca.IntegratedGradients(model).attribute(x, target=target, n_steps=4))


def test_a_linear_stem_on_tokens_and_float64():
    torch.manual_seed(0)
    for model, x in ((_TokenNet().eval(), torch.randn(3, 4, 5)),
                     (_glioma()[0].double(), torch.randn(3, 2, 8, 8, 8, dtype=torch.float64))):
        own = IntegratedGradients(model)
        own.prepare_for_inputs((x[:1],))
        assert own.stem is not None
        target = torch.tensor([0, 1, 1])
        got = own.attribute(x, target=target, n_steps=6, internal_batch_size=6)
        assert got.dtype == x.dtype and own.implementation == IntegratedGradients.THROUGH_STEM
        _close(got, ca.IntegratedGradients(model).attribute(x, target=target, n_steps=6, internal_batch_size=6))


def test_inputs_of_another_shape_and_no_target_get_captums_and_the_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(3, 2)).eval()
    calls = []
    wrapped = model[0].forward
    model[0].forward = lambda t: calls.append(1) or wrapped(t)  # an instance's own forward, as a wrapper sets
    own = IntegratedGradients(model)
    own.prepare_for_inputs((torch.randn(1, 2, 8, 8),))
    assert own.stem is not None
    other = torch.randn(2, 2, 4, 16)  # the same number of voxels, another shape: the stem's reshape would mix them
    target = torch.tensor([1, 0])
    assert torch.equal(own.attribute(other, target=target, n_steps=4),
                       ca.IntegratedGradients(model).attribute(other, target=target, n_steps=4))
    assert own.implementation == "captum"
    one_logit = nn.Sequential(model, nn.Linear(2, 1)).eval()  # target None: captum decides (one output here)
    own = IntegratedGradients(one_logit)
    own.prepare_for_inputs((other[:1],))
    assert torch.equal(own.attribute(other, n_steps=3), ca.IntegratedGradients(one_logit).attribute(other, n_steps=3))
    calls.clear()
    model(other)
    assert calls == [1]  # the instance's forward is back after prepare and attribute
