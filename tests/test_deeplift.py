"""clinxai's DeepLift (rescale rule without hooks, clinxai.attribution.deeplift) equals captum's DeepLift on every
network family the pipeline explains, satisfies DeepLIFT's summation to delta where captum's rules do, and falls
back to captum for a non-linearity it does not replace."""

import copy

import pytest
import torch
import yaml
from captum import attr as ca
from torch import nn

from clinxai.attribution.deeplift import DeepLift, RescaleMaxPool, RescaleReLU
from clinxai.attribution.explain import build, explain, explainable, implementation
from clinxai.attribution.registry import METHODS
from clinxai.inference import to_channels_last
from clinxai.models import GeneNet3D, KneeNet, _densenet
from clinxai.tasks import kind_of


def _random_statistics(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
            m.weight.data.normal_()
            m.bias.data.normal_()
    return explainable(model)


def _equal(got, expected, exact=True):
    # exact: captum's operations in captum's order on the same weights give the same numbers, bit for bit
    got, expected = (g if isinstance(g, tuple) else (g,) for g in (got, expected))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert b.abs().max() > 0
        if exact:
            assert torch.equal(a, b.detach()), (a - b).abs().max()
        else:
            assert torch.allclose(a, b.detach(), atol=1e-7, rtol=1e-5), (a - b).abs().max()


def test_genenet_with_scalar_and_tensor_baselines():
    torch.manual_seed(1)
    model = _random_statistics(GeneNet3D(3, (16, 16, 8), (4, 8, 8), 16))  # ReLU -> MaxPool3d after every block
    x, target = torch.randn(4, 3, 16, 16, 8), torch.tensor([0, 1, 1, 0])
    for base in (0.0, torch.randn(4, 3, 16, 16, 8), torch.randn(1, 3, 16, 16, 8)):  # per case, one for all
        _equal(DeepLift(model).attribute(x, target=target, baselines=base),
               ca.DeepLift(model).attribute(x, target=target, baselines=base))


def test_overlapping_pools_and_a_relu_straight_into_a_pool():
    # kernel 3 / stride 2: a voxel can be the maximum of two windows; captum's ReLU before a pool sees the pool's
    # plain gradient (its hook on the shared tensor runs before the pool's rule) and so must this
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(4, 4, 3),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 2)).eval()
    x = torch.randn(3, 2, 15, 15)
    _equal(DeepLift(model).attribute(x, target=1, baselines=0.5), ca.DeepLift(model).attribute(x, target=1,
                                                                                                 baselines=0.5))


def test_channels_last_weights_same_maps_and_the_pool_rule_keeps_the_layout():
    torch.manual_seed(4)
    model = _random_statistics(GeneNet3D(3, (16, 16, 8), (4, 8, 8), 16))
    x, target = torch.randn(4, 3, 16, 16, 8), torch.tensor([0, 1, 1, 0])
    fast = DeepLift(to_channels_last(copy.deepcopy(model)))  # as `explain` runs it: convolutions write channels-last
    # channels-last convolutions round differently from the default layout's: float tolerance
    _equal(fast.attribute(x, target=target), ca.DeepLift(model).attribute(x, target=target), exact=False)
    # the gradient a pool rule hands to the ReLU rule before it is in that ReLU's layout (mixed layouts are slow)
    pool = next(m for m in fast.model.modules() if isinstance(m, RescaleMaxPool))
    z = torch.randn(4, 4, 8, 8, 4).contiguous(memory_format=torch.channels_last_3d)
    z[2:, :, :2] = z[:2, :, :2]  # input = reference there: the rule's fallback to the plain gradient
    out, (_, _, idx) = pool.compute(z, False)
    grad = torch.randn_like(out)
    got = pool.rescale(pool.plain(grad, z, idx), grad, z, out, idx)
    assert got.shape == z.shape and got.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(got[:2], got[2:])  # both halves of the batch get the same multipliers, as in captum


def test_where_a_pre_activation_equals_its_reference():
    # Two input channels that cancel exactly (weights +w and -w, both channels shifted by the same c): the first
    # ReLU's input equals its reference's there while the input does not, so the plain gradients captum takes there
    # reach the map: the ReLU's own 0 / 1 and, as the ReLU feeds a pool, of the gradient the pool's rule rewrote
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -0.5], [0.25, -0.25]]).view(2, 2, 1, 1))
        model[0].bias.copy_(torch.tensor([0.125, -0.125]))  # one unit on, one off where they cancel
    x = torch.randn(3, 2, 8, 8)
    x[:, :, :, :4] = torch.tensor([1.0, 2.0, -1.0]).view(3, 1, 1, 1)  # exact products: z = bias, as the reference's
    target = torch.tensor([0, 1, 1])
    _equal(DeepLift(model).attribute(x, target=target), ca.DeepLift(model).attribute(x, target=target))
    relu = next(m for m in DeepLift(model).model.modules() if isinstance(m, RescaleReLU))
    _, (_, d_in, small, _) = relu.compute(torch.cat([model[0](x), model[0](torch.zeros_like(x))]).detach(), False)
    assert small[:, :, :, :4].all() and not small[:, :, :, 4:].any()
    assert torch.equal(d_in[:, :, :, :4], torch.ones(3, 2, 8, 4))  # a finite divisor where the plain gradient is taken


def test_disjoint_windows_add_both_halves_as_captums_unpooling_does():
    torch.manual_seed(6)
    for pool, z in ((nn.MaxPool3d(2), torch.randn(4, 3, 6, 6, 4).contiguous(memory_format=torch.channels_last_3d)),
                    (nn.MaxPool2d(2, padding=1), torch.randn(4, 3, 7, 7)),  # partial windows at the edges
                    (nn.MaxPool2d(3, 2), torch.randn(4, 3, 9, 9)),  # overlapping: captum's unpooling itself
                    (nn.MaxPool2d(2, 2, 0, 2), torch.randn(4, 3, 11, 11))):  # overlapping through the dilation
        rule = RescaleMaxPool(pool)
        z[2:, :, :2] = z[:2, :, :2]  # both halves' argmax in the same voxel there
        z = z.relu()  # ties (zeros) inside windows, as after a ReLU
        out, (_, _, idx) = rule.compute(z, False)
        carried = torch.randn_like(out)
        k, s, p, _ = rule.args
        unpool = torch.nn.functional.max_unpool2d if rule.dims == 2 else torch.nn.functional.max_unpool3d
        expected = unpool(carried, idx, k, s, p, list(z.shape))
        got = rule._spread(carried, idx, z)
        assert torch.equal(got, expected[:2] + expected[2:])
        assert got.is_contiguous(memory_format=torch.channels_last_3d) == (z.dim() == 5)


def test_a_non_finite_value_stays_where_captum_puts_it_and_large_inputs_stay_exact():
    # The rules select with lerp, which turns a non-finite discarded end into NaN: one NaN in the first case would
    # reach every case through the pool rule's first-sample gradient. Such a call runs again with `where`.
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2)).eval()
    x = torch.randn(3, 2, 8, 8)
    x[:, :, :, :4] = 0  # input = reference there
    x[0, 0, 5, 6] = float("nan")
    own = DeepLift(model)
    got = own.attribute(x, target=torch.tensor([0, 1, 1]))
    expected = ca.DeepLift(model).attribute(x, target=torch.tensor([0, 1, 1])).detach()
    assert torch.equal(got.isfinite(), expected.isfinite()) and got[1:].isfinite().all()
    assert torch.equal(got[1:], expected[1:])
    assert all("select" not in vars(m) for m in own.model.modules())  # the rerun leaves the rules as they were
    # unnormalised intensities (x 1000): the same numbers, not only close ones
    deep = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 2)).eval()
    x = 1000 * torch.randn(4, 1, 8, 8)
    _equal(DeepLift(deep).attribute(x, target=1), ca.DeepLift(deep).attribute(x, target=1))


def test_monai_densenet_and_the_three_view_knee_network():
    torch.manual_seed(3)
    dense = _random_statistics(_densenet({"in_channels": 2, "init_features": 8, "growth_rate": 4,
                                          "block_config": [2, 2]}))
    x, target = torch.randn(3, 2, 32, 32), torch.tensor([1, 0, 1])
    _equal(DeepLift(dense).attribute(x, target=target), ca.DeepLift(dense).attribute(x, target=target))
    knee = _random_statistics(KneeNet((4, 8)))
    views = tuple(torch.randn(2, 5, 24, 24) for _ in range(3))
    _equal(DeepLift(knee).attribute(views, target=torch.tensor([0, 1]), baselines=(0.0, 0.0, 0.0)),
           ca.DeepLift(knee).attribute(views, target=torch.tensor([0, 1]), baselines=(0.0, 0.0, 0.0)))
    _equal(DeepLift(knee).attribute(views, target=1, baselines=(0.5, -0.5, 0.0)),  # one class for every case
           ca.DeepLift(knee).attribute(views, target=1, baselines=(0.5, -0.5, 0.0)))


def test_contributions_add_up_to_the_output_difference():
    # DeepLIFT's summation to delta, by hand: for linear layers and ReLUs the rescale rule is exact
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.ReLU(),
                          nn.Linear(5, 2)).eval()
    x, base = torch.randn(2, 1, 6, 6), torch.randn(1, 1, 6, 6)
    attr = DeepLift(model).attribute(x, target=torch.tensor([0, 1]), baselines=base)
    with torch.no_grad():
        delta = model(x)[[0, 1], [0, 1]] - model(base.expand_as(x))[[0, 1], [0, 1]]
    assert torch.allclose(attr.sum(dim=(1, 2, 3)), delta, atol=1e-5)
    # one ReLU unit by hand: contribution (x - x0) * w * (relu(z) - relu(z0)) / (z - z0)
    unit = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 1)).eval()
    with torch.no_grad():
        unit[0].weight.copy_(torch.tensor([[2.0, -1.0]]))
        unit[0].bias.fill_(-1.0)
        unit[2].weight.fill_(3.0)
    got = DeepLift(unit).attribute(torch.tensor([[2.0, 1.0]]), target=0, baselines=0.0)
    z, z0 = 2 * 2 - 1 - 1, -1.0  # pre-activations: 2, -1 -> ReLU 2, 0: multiplier 2 / 3
    assert torch.allclose(got, torch.tensor([[2.0 * 2, 1.0 * -1]]) * 3 * (2 - 0) / (z - z0))


def test_it_replaces_what_captum_hooks_and_refuses_the_rest():
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    from clinxai.attribution.deeplift import OTHER_RULES, REPLACED

    assert set(SUPPORTED_NON_LINEAR) == set(REPLACED) | set(OTHER_RULES)  # in step with captum's rules
    relu = nn.ReLU()
    reused = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu, nn.Linear(4, 2))  # captum refuses it
    assert not DeepLift.supports(reused)
    with pytest.raises(Exception, match="additional_forward_args"):
        DeepLift(nn.Sequential(nn.Linear(4, 2))).attribute(torch.randn(1, 4), target=0, additional_forward_args=(1,))


def test_build_uses_it_where_it_applies_and_captum_otherwise():
    kind = kind_of(yaml.safe_load(open("config/config.yaml")), "glioma")
    model = GeneNet3D(2, (8, 8, 8), (4, 8), 8)
    own = build(METHODS["DeepLift"], model, kind)
    assert isinstance(own, DeepLift) and implementation(own) == "clinxai rescale rule"
    assert isinstance(build(METHODS["DeepLift"], model, kind, batching={"fast": False}), ca.DeepLift)
    sigmoid = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.Sigmoid(), nn.Linear(4, 2))  # captum's other rule
    assert not DeepLift.supports(sigmoid)
    assert isinstance(build(METHODS["DeepLift"], sigmoid, kind), ca.DeepLift)


def test_explain_gives_the_same_maps_either_way():
    kind = kind_of(yaml.safe_load(open("config/config.yaml")), "glioma")
    model = _random_statistics(GeneNet3D(2, (8, 8, 8), (4, 8), 8))
    inputs = [(torch.randn(1, 2, 8, 8, 8),) for _ in range(3)]
    used = []
    runs = [explain(model, kind, "DeepLift", list("abc"), inputs, [0, 1, 1], None, 10, None,
                    {"batch_size": 2, "fast": fast}, used=used)[0] for fast in (True, False)]
    assert used == ["clinxai rescale rule", "captum"]
    for own, ref in zip(*runs):
        for a, b in zip(own, ref):
            assert abs(a - b).max() <= 1e-7 + 1e-5 * abs(b).max()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_it_equals_captum():
    model = _random_statistics(GeneNet3D(2, (8, 8, 8), (4, 8), 8)).cuda()
    x = torch.randn(2, 2, 8, 8, 8, device="cuda")
    _equal(DeepLift(model).attribute(x, target=torch.tensor([0, 1], device="cuda")).cpu(),
           ca.DeepLift(model).attribute(x, target=torch.tensor([0, 1], device="cuda")).cpu(),
           exact=False)  # cuDNN may choose other algorithms for the two calls
