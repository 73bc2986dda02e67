"""Incremental Occlusion (clinxai.attribution.occlusion) equals captum's Occlusion within float tolerance."""

import numpy as np
import pytest
import torch
import yaml
from captum.attr import Occlusion
from torch import nn

from clinxai.attribution.explain import build, explain, implementation
from clinxai.attribution.occlusion import IncrementalOcclusion, supported, window_grid
from clinxai.attribution.registry import METHODS
from clinxai.models import GeneNet3D
from clinxai.tasks import kind_of


def _random_bn(model):
    """Non-trivial BatchNorm statistics, so an element-wise layer applied to the wrong voxels would show."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()


def _close(a, b):
    scale = b.abs().max().item()
    assert scale > 0
    assert (a - b).abs().max().item() <= 1e-5 * max(1.0, scale) + 1e-5


def test_window_grid_places_windows_as_captum():
    # the paper's glioma windows: ceil((128 - 11) / 5) + 1 = 25 per axis, 4 channels; the last one clipped
    starts, ends = window_grid((4, 128, 128, 128), (1, 11, 11, 11), (1, 5, 5, 5))
    assert len(starts) == 4 * 25 ** 3
    assert starts[:, 1].max() == 120 and ends[:, 1].max() == 128 and (ends - starts)[:, 1].min() == 8
    starts, ends = window_grid((1, 11), (1, 4), (1, 3))  # ceil(7 / 3) + 1 = 4: 0, 3, 6, 9 -> [9, 11)
    assert starts[:, 1].tolist() == [0, 3, 6, 9] and ends[:, 1].tolist() == [4, 7, 10, 11]


@pytest.mark.parametrize("grid,widths,window,strides", [
    ((16, 16, 12), (4, 8), (1, 5, 5, 4), (1, 3, 3, 2)),     # overlapping windows, clipped at every border
    ((16, 12, 12), (4, 8, 8), (2, 7, 7, 7), (1, 4, 4, 4)),   # two-channel windows, three pooling blocks
    ((16, 16, 16), (4, 8), (1, 16, 16, 16), (1, 16, 16, 16)),  # one window per channel: the dense path
])
def test_genenet_equals_captum(grid, widths, window, strides):
    torch.manual_seed(0)
    model = _random_bn(GeneNet3D(4, grid, widths, 16))
    x = torch.randn(2, 4, *grid)
    baseline = torch.randn_like(x)
    target = torch.tensor([1, 0])
    expected = Occlusion(model).attribute(x, target=target, sliding_window_shapes=window, strides=strides,
                                          baselines=baseline, perturbations_per_eval=8)
    got = IncrementalOcclusion(list(model.features), model.classifier, 7).attribute(
        (x,), target, window, strides, (baseline,))[0]
    _close(got, expected)


def test_strided_2d_chain_with_scalar_baseline():
    torch.manual_seed(0)
    chain = [nn.Conv2d(3, 6, 5, stride=2, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(3, 2),
             nn.Conv2d(6, 8, 3, padding=1), nn.LeakyReLU(0.1)]
    head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 5 * 5, 3))
    model = _random_bn(nn.Sequential(*chain, head))
    x = torch.randn(1, 3, 23, 22)
    expected = Occlusion(model).attribute(x, target=2, sliding_window_shapes=(1, 4, 3), strides=(1, 2, 3),
                                          baselines=0.5)
    assert supported(chain)
    got = IncrementalOcclusion(chain, head, 16).attribute(x, torch.tensor([2]), (1, 4, 3), (1, 2, 3), 0.5)
    _close(got, expected)


@pytest.mark.parametrize("make_chain,shape", [
    (lambda: [nn.MaxPool2d(2), nn.Conv2d(1, 2, 3, padding=1)], (1, 1, 7, 7)),  # the last row/column: never pooled
    (lambda: [nn.Conv2d(1, 2, 1, stride=2), nn.ReLU()], (1, 1, 8, 8)),        # a kernel below its stride skips voxels
])
def test_windows_no_output_reads_leave_the_logits_unchanged(make_chain, shape):
    # the layers are built here, after seeding, not at collection: their weights must not depend on test order
    torch.manual_seed(0)
    chain = make_chain()
    with torch.no_grad():
        for m in chain:
            if isinstance(m, nn.Conv2d):  # no bias: a negative one could switch every ReLU off and leave all zeros
                m.bias.zero_()
    n_out = nn.Sequential(*chain)(torch.zeros(shape)).numel()
    head = nn.Sequential(nn.Flatten(), nn.Linear(n_out, 2))
    model = nn.Sequential(*chain, head).eval()
    x = torch.randn(shape)
    expected = Occlusion(model).attribute(x, target=1, sliding_window_shapes=(1, 1, 1), baselines=0.0)
    got = IncrementalOcclusion(chain, head, 10).attribute(x, torch.tensor([1]), (1, 1, 1), None, 0.0)
    _close(got, expected)
    assert (expected != 0).sum() >= 8  # the voxels the outputs read do move the logit


def test_unsupported_chains_are_refused():
    assert not supported([nn.Conv3d(1, 2, 3), nn.AvgPool3d(2)])
    assert not supported([nn.Conv3d(1, 2, 3, dilation=2)])
    assert not supported([nn.Conv2d(1, 2, 3), nn.Conv3d(2, 2, 3)])


def test_explain_uses_it_for_the_glioma_model_and_matches_captum():
    cfg = yaml.safe_load(open("config/config.yaml"))
    kind = kind_of(cfg, "glioma")
    torch.manual_seed(0)
    model = _random_bn(GeneNet3D(4, (16, 16, 16), (4, 8), 16))
    assert type(build(METHODS["Occlusion"], model, kind, batching={"incremental_windows": 4})).__name__ \
        == "IncrementalOcclusion"
    assert type(build(METHODS["Occlusion"], model, kind, batching={"incremental_windows": 0})).__name__ == "Occlusion"
    inputs = [(torch.randn(1, 4, 16, 16, 16),) for _ in range(2)]
    params = {"sliding_window_shapes": [1, 6, 6, 6], "strides": [1, 5, 5, 5]}  # the Gaussian baseline: seeded
    runs = [explain(model, kind, "Occlusion", ["a", "b"], inputs, [0, 1], None, 10, params,
                    {"perturbations_per_eval": 8, "incremental_windows": n})[0] for n in (5, 5, 0)]
    for case in range(2):
        assert all(np.array_equal(a, b) for a, b in zip(runs[0][case], runs[1][case]))  # seeded per case
        _close(torch.from_numpy(np.stack(runs[0][case])), torch.from_numpy(np.stack(runs[2][case])))


def test_a_model_without_a_chain_batches_whole_windows_and_matches_captum():
    from clinxai.models import build_model

    cfg = yaml.safe_load(open("config/config.yaml"))
    kind = kind_of(cfg, "synthetic")
    torch.manual_seed(0)
    model = _random_bn(build_model(kind.model, {"in_channels": 2, "init_features": 4, "growth_rate": 4,
                                                "block_config": [1, 1]}))
    inputs = [(torch.randn(1, 2, 16, 16),)]
    fast = build(METHODS["Occlusion"], model, kind, batching={"perturbations_per_eval": 5}, example=inputs[0])
    assert type(fast).__name__ == "IncrementalOcclusion" and fast.chain == []
    assert implementation(fast) == "clinxai batched windows, BatchNorm folded"
    params = {"sliding_window_shapes": [1, 5, 5], "strides": [1, 3, 3], "baselines": 0.0}
    own = explain(model, kind, "Occlusion", ["a"], inputs, [1], None, 10, params, {"perturbations_per_eval": 5})[0]
    ref = explain(model, kind, "Occlusion", ["a"], inputs, [1], None, 10, params, {"fast": False})[0]
    _close(torch.from_numpy(np.stack(own[0])), torch.from_numpy(np.stack(ref[0])))


def _knee():
    from clinxai.models import KneeNet

    torch.manual_seed(0)
    return _random_bn(KneeNet((4, 8, 8)))


@pytest.mark.parametrize("plane", [(11, 11), (3, 3)])  # slices run in full / in-plane incremental (<= 5 % of a slice)
def test_knee_views_by_slices_equal_captum(plane):
    # windows of 3 slices with stride 2 over 8 and 6 slices: the last one clipped to 2 slices; tensor baselines per
    # case; views of differing sizes
    from clinxai.attribution.occlusion_slices import SliceOcclusion
    from clinxai.models import MODEL_FAMILIES

    model = _knee()
    views = (torch.randn(2, 8, 24, 24), torch.randn(2, 6, 20, 24), torch.randn(2, 8, 24, 16))
    base = tuple(torch.randn_like(v) for v in views)
    window, strides = ((3, *plane),) * 3, ((2, *(min(5, p) for p in plane)),) * 3
    expected = Occlusion(model).attribute(views, target=torch.tensor([1, 0]), sliding_window_shapes=window,
                                          strides=strides, baselines=base, perturbations_per_eval=7)
    got = SliceOcclusion(*MODEL_FAMILIES["kneenet"].slices(model), 5).attribute(
        views, torch.tensor([1, 0]), window, strides, base)
    for a, b in zip(got, expected):
        _close(a, b)


def test_explain_uses_it_for_the_knee_network():
    cfg = yaml.safe_load(open("config/config.yaml"))
    kind = kind_of(cfg, "knee")
    model = _knee()
    inputs = [tuple(torch.randn(1, 6, 16, 16) for _ in range(3)) for _ in range(2)]
    used = []
    params = {"sliding_window_shapes": [2, 7, 7], "strides": [2, 4, 4]}  # the Gaussian baseline: seeded per case
    own = explain(model, kind, "Occlusion", ["a", "b"], inputs, [0, 1], None, 10, params, {"incremental_windows": 6},
                  used=used)[0]
    ref = explain(model, kind, "Occlusion", ["a", "b"], inputs, [0, 1], None, 10, params, {"fast": False},
                  used=used)[0]
    assert used == ["clinxai incremental (slices)", "captum"]
    for a, b in zip(own, ref):
        _close(torch.from_numpy(np.concatenate([v.ravel() for v in a])),
               torch.from_numpy(np.concatenate([v.ravel() for v in b])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_it_equals_captum():
    model = _random_bn(GeneNet3D(4, (16, 16, 16), (4, 8), 16)).cuda()
    x = torch.randn(1, 4, 16, 16, 16, device="cuda")
    expected = Occlusion(model).attribute(x, target=1, sliding_window_shapes=(1, 5, 5, 5), strides=(1, 3, 3, 3))
    got = IncrementalOcclusion(list(model.features), model.classifier, 16).attribute(
        x, torch.tensor([1]), (1, 5, 5, 5), (1, 3, 3, 3), 0.0)
    _close(got.cpu(), expected.cpu())
