"""FeatureAblation and ShapleyValueSampling by incremental inference (clinxai.attribution.incremental_chain) equal
captum's within float tolerance, run only where a case's feature boxes are small, and count what they compute."""

import numpy as np
import pytest
import torch
import yaml
from captum import attr as ca
from torch import nn

from clinxai.attribution import ablation
from clinxai.attribution.explain import build, explain
from clinxai.attribution.incremental_chain import BoxedChain, batch_box, feature_boxes
from clinxai.attribution.registry import METHODS
from clinxai.models import GeneNet3D
from clinxai.tasks import kind_of

GRID = (24, 24, 16)


def _model(grid=GRID, widths=(4, 8, 8)):
    torch.manual_seed(0)
    model = GeneNet3D(3, grid, widths, 8).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():  # non-trivial statistics: an element-wise layer on the wrong voxels would show
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def _blocks(cases=2, channels=3, grid=GRID, side=4):
    """Features of side^3 voxels per channel, ids consecutive over channels; the second case's shifted by 2 voxels
    (so its boxes straddle the blocks of the first's)."""
    counts = [g // side for g in grid]
    blk = torch.arange(int(np.prod(counts))).view(*counts)
    for axis in range(3):
        blk = blk.repeat_interleave(side, axis)
    n = blk.max().item() + 1
    mask = torch.stack([blk + c * n for c in range(channels)])[None].repeat(cases, 1, 1, 1, 1)
    for i in range(1, cases):
        mask[i] = torch.roll(mask[i], 2 * i, dims=1)
    return mask


def _incremental(name, model, rows=4):
    method = getattr(ablation, name)(model)
    method.use_chain(list(model.features), model.classifier, rows)
    return method


def _close(a, b):
    assert b.abs().max() > 0
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()


@pytest.mark.parametrize("name,kw", [("FeatureAblation", {}), ("ShapleyValueSampling", {"n_samples": 3})])
@pytest.mark.parametrize("rows", [1, 3, 64])  # features / orders per batch: one, some with a remainder, all
def test_equals_captum_with_tensor_baselines(name, kw, rows):
    model = _model()
    x = torch.randn(2, 3, *GRID)
    base = torch.randn_like(x)
    mask = _blocks()
    torch.manual_seed(5)
    expected = getattr(ca, name)(model).attribute(x, target=torch.tensor([1, 0]), baselines=base, feature_mask=mask,
                                                  perturbations_per_eval=16, **kw)
    method = _incremental(name, model, rows)
    torch.manual_seed(5)
    got = method.attribute(x, target=torch.tensor([1, 0]), baselines=base, feature_mask=mask,
                           perturbations_per_eval=16, **kw)
    assert method.implementation == f"clinxai incremental ({rows} per batch)"
    _close(got, expected)


def test_shapley_with_features_a_case_lacks_and_one_order_at_a_time(monkeypatch):
    # case 1 lacks every feature of channel 2 (they are channel 0's ids there): its gains for them are 0 exactly,
    # as captum's (an empty mask changes nothing); a state budget of one row evaluates the orders one by one
    model = _model()
    x, mask = torch.randn(2, 3, *GRID), _blocks()
    n = int(mask[0, 0].max()) + 1
    mask[1, 2] = mask[1, 0]
    monkeypatch.setattr(ablation, "STATE_BYTES", 1)
    torch.manual_seed(3)
    expected = ca.ShapleyValueSampling(model).attribute(x, target=1, baselines=0.0, feature_mask=mask, n_samples=2)
    torch.manual_seed(3)
    got = _incremental("ShapleyValueSampling", model).attribute(x, target=1, baselines=0.0, feature_mask=mask,
                                                                n_samples=2, perturbations_per_eval=4)
    _close(got, expected)
    assert not torch.isin(torch.arange(2 * n, 3 * n), mask[1]).any()


def test_large_features_run_batched_and_equal_the_batched_path():
    # the demo's glioma features cover a quarter of the volume each: the boxes do not pay, whole inputs are batched
    model = _model((8, 8, 8), (4, 8))
    x = torch.randn(1, 3, 8, 8, 8)
    mask = torch.from_numpy(np.random.default_rng(0).integers(0, 6, size=(1, 3, 8, 8, 8))).long()
    for name in ("FeatureAblation", "ShapleyValueSampling"):
        method = _incremental(name, model)
        torch.manual_seed(1)
        got = method.attribute(x, target=0, feature_mask=mask, perturbations_per_eval=4)
        assert method.implementation == "clinxai batched"
        torch.manual_seed(1)
        _close(got, getattr(ablation, name)(model).attribute(x, target=0, feature_mask=mask, perturbations_per_eval=4))


def test_a_mixed_call_says_both():
    model = _model()
    x = torch.randn(2, 3, *GRID)
    mask = _blocks()
    mask[1] = torch.from_numpy(np.random.default_rng(0).integers(0, 5, size=mask[1].shape))  # boxes of everything
    method = _incremental("FeatureAblation", model)
    got = method.attribute(x, target=0, feature_mask=mask, perturbations_per_eval=8)
    assert method.implementation == "clinxai incremental (4 per batch) and clinxai batched"
    _close(got, ca.FeatureAblation(model).attribute(x, target=0, feature_mask=mask))


def test_it_computes_boxes_not_passes(monkeypatch):
    # the first convolution sees only the boxes' context (a 4^3 box read by k3 p1 changes 6^3 outputs, which read
    # 8^3 inputs), never the whole case, and the logits are the model's on the changed inputs
    model = _model()
    first, shapes = model.features[0], []
    x, mask = torch.randn(1, 3, *GRID), _blocks(1)
    chain = BoxedChain(list(model.features), model.classifier)
    state = chain.state(x)
    real = torch.nn.functional.conv3d

    def conv3d(inp, weight, *a, **k):
        if weight is first.weight:
            shapes.append(tuple(inp.shape[2:]))
        return real(inp, weight, *a, **k)

    starts, ends = feature_boxes(mask, int(mask.max()) + 1)
    ids = [2 * 24 + 2 * 4 + 1, 3 * 24 + 3 * 4 + 2]  # blocks (2, 2, 1) and (3, 3, 2) of 6 x 6 x 4: inside
    at, size = batch_box(starts[ids], ends[ids], GRID)
    assert size.tolist() == [4, 4, 4] and at.tolist() == [[8, 8, 4], [12, 12, 8]]
    patch = torch.randn(2, 3, 4, 4, 4)
    monkeypatch.setattr(torch.nn.functional, "conv3d", conv3d)
    got = chain.logits(state, patch, at)
    monkeypatch.undo()
    assert shapes == [(8, 8, 8)]
    changed = x.repeat(2, 1, 1, 1, 1)
    changed[0, :, 8:12, 8:12, 4:8], changed[1, :, 12:16, 12:16, 8:12] = patch[0], patch[1]
    with torch.no_grad():
        _close(got, model(changed))


def test_relative_cost_by_hand():
    # one convolution k3 p1 over 16^3: a 4^3 box changes 6^3 outputs -> 216 / 4096; a box of half the input or more
    # runs dense (cost 1)
    conv = nn.Conv3d(2, 5, 3, padding=1)
    chain = BoxedChain([conv], nn.Flatten())
    assert chain.relative_cost((2, 16, 16, 16), (4, 4, 4)) == pytest.approx(216 / 4096)
    assert chain.relative_cost((2, 16, 16, 16), (16, 16, 8)) == 1.0
    # then a 2x pool and a second convolution, each convolution weighed by its multiply-adds per output
    chain = BoxedChain([conv, nn.MaxPool3d(2), nn.Conv3d(5, 7, 3, padding=1)], nn.Flatten())
    a, b = 2 * 5 * 27, 5 * 7 * 27
    got = chain.relative_cost((2, 16, 16, 16), (4, 4, 4))
    # the centred box [6, 10) -> conv outputs [5, 11) -> pool outputs [2, 6) (4 of 8) -> conv outputs [1, 7): 6
    assert got == pytest.approx((a * 6 ** 3 + b * 6 ** 3) / (a * 16 ** 3 + b * 8 ** 3))


def test_feature_boxes_by_hand():
    mask = torch.zeros(1, 2, 4, 5, 6, dtype=torch.long)
    mask[0, 0, 1:3, 2, 0:4] = 1
    mask[0, 1, 3, 4, 5] = 1  # the same id in another channel widens its box
    mask[0, 1, 0, 0, 0] = 3
    starts, ends = feature_boxes(mask, 5)
    assert starts[1].tolist() == [1, 2, 0] and ends[1].tolist() == [4, 5, 6]
    assert starts[3].tolist() == [0, 0, 0] and ends[3].tolist() == [1, 1, 1]
    assert starts[0].tolist() == [0, 0, 0] and ends[0].tolist() == [4, 5, 6]
    assert (starts[[2, 4]] == ends[[2, 4]]).all()  # absent ids: empty boxes
    at, size = batch_box(starts[[1, 3]], ends[[1, 3]], (4, 5, 6))
    assert size.tolist() == [3, 3, 6] and at.tolist() == [[1, 2, 0], [0, 0, 0]]


def test_explain_uses_the_chain_unless_switched_off():
    cfg = yaml.safe_load(open("config/config.yaml"))
    kind = kind_of(cfg, "glioma")
    model = _model()
    example = (torch.randn(1, 3, *GRID),)
    on = build(METHODS["ShapleyValueSampling"], model, kind, example=example)
    off = build(METHODS["FeatureAblation"], model, kind, batching={"incremental_windows": 0}, example=example)
    assert on.boxed is not None and off.boxed is None
    masks = [_blocks(1)[0].numpy() for _ in range(2)]
    inputs = [(torch.randn(1, 3, *GRID),) for _ in range(2)]
    used = []
    runs = [explain(model, kind, "ShapleyValueSampling", ["a", "b"], inputs, [0, 1], masks, 10, {"n_samples": 2},
                    {"perturbations_per_eval": 8, "incremental_windows": w, "incremental_features": 2},
                    used=used)[0] for w in (128, 0)]
    assert used[0] == "clinxai incremental (2 per batch)" and used[1].startswith("clinxai batched")
    for own, ref in zip(*runs):  # the same seeded orders per case: the same maps
        a, b = (torch.from_numpy(np.stack(m)) for m in (own, ref))
        _close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,kw", [("FeatureAblation", {}), ("ShapleyValueSampling", {"n_samples": 2})])
def test_on_cuda_it_equals_captum(name, kw):
    model = _model().cuda()
    x, mask = torch.randn(1, 3, *GRID, device="cuda"), _blocks(1).cuda()
    torch.manual_seed(2)
    expected = getattr(ca, name)(model).attribute(x, target=1, feature_mask=mask, **kw)
    torch.manual_seed(2)
    got = _incremental(name, model).attribute(x, target=1, feature_mask=mask, perturbations_per_eval=4, **kw)
    _close(got, expected)
