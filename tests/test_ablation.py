"""clinxai's batched FeatureAblation and ShapleyValueSampling equal captum's within float tolerance, and the
forward-only model (BatchNorm folded) gives the same logits."""

import numpy as np
import pytest
import torch
import yaml
from captum import attr as ca
from torch import nn

from clinxai.attribution import ablation
from clinxai.attribution.explain import build, explain, implementation
from clinxai.attribution.registry import METHODS
from clinxai.inference import ForwardOnly
from clinxai.models import GeneNet3D, KneeNet
from clinxai.tasks import kind_of


def _model():
    torch.manual_seed(0)
    model = GeneNet3D(2, (8, 8, 8), (4, 8), 8).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    return model


def _close(a, b):
    a, b = (torch.as_tensor(t) for t in (a, b))
    assert b.abs().max() > 0
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()


def _mask(shape, n, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, n, size=shape)).long()


@pytest.mark.parametrize("name,kw", [("FeatureAblation", {}), ("ShapleyValueSampling", {"n_samples": 3})])
def test_equals_captum_on_a_batch_with_tensor_baselines(name, kw):
    model = _model()
    x = torch.randn(2, 2, 8, 8, 8)
    base = torch.randn_like(x)
    mask = _mask((2, 2, 8, 8, 8), 7)  # per case and channel; ids 0..6
    torch.manual_seed(5)
    expected = getattr(ca, name)(model).attribute(x, target=torch.tensor([1, 0]), baselines=base, feature_mask=mask,
                                                  perturbations_per_eval=4, **kw)
    torch.manual_seed(5)
    got = getattr(ablation, name)(model).attribute(x, target=torch.tensor([1, 0]), baselines=base,
                                                   feature_mask=mask, perturbations_per_eval=3, **kw)
    _close(got, expected)


def test_shapley_values_add_up_and_feature_ablation_of_a_linear_model():
    # a linear model: Shapley values are exact (w_j * (x_j - b_j) summed over a feature) for any order, and equal the
    # ablation scores; their sum is f(x) - f(baseline)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    x, mask = torch.randn(1, 1, 6), torch.tensor([[[0, 0, 1, 2, 2, 2]]])
    w = lin[1].weight[1].detach()
    exact = torch.stack([(w * x[0, 0])[mask[0, 0] == j].sum() for j in range(3)])[mask[0, 0]]
    for name in ("FeatureAblation", "ShapleyValueSampling"):
        got = getattr(ablation, name)(lin).attribute(x, target=1, baselines=0.0, feature_mask=mask)
        _close(got[0, 0], exact)


def test_multi_input_knee_model_with_features_across_views():
    torch.manual_seed(0)
    model = KneeNet((4, 4, 8)).eval()
    x = tuple(torch.randn(1, 3, 16, 16) for _ in range(3))
    masks = tuple(_mask((1, 3, 16, 16), 4, s) + 4 * s for s in range(3))  # consecutive ids over the views
    for name in ("FeatureAblation", "ShapleyValueSampling"):
        torch.manual_seed(3)
        expected = getattr(ca, name)(model).attribute(x, target=1, baselines=(0.0, 0.0, 0.0), feature_mask=masks,
                                                      **({"n_samples": 2} if name != "FeatureAblation" else {}))
        torch.manual_seed(3)
        got = getattr(ablation, name)(model).attribute(x, target=1, baselines=(0.0, 0.0, 0.0), feature_mask=masks,
                                                       perturbations_per_eval=5,
                                                       **({"n_samples": 2} if name != "FeatureAblation" else {}))
        for a, b in zip(got, expected):
            _close(a, b)


def test_forward_only_folds_batchnorm_and_falls_back_when_folding_is_wrong():
    model = _model()
    x = (torch.randn(3, 2, 8, 8, 8),)
    fast = ForwardOnly(model, x)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in fast.model.modules())
    _close(fast(*x), model(*x).detach())

    class Skip(nn.Module):  # normalises conv(x) + x: folding the BatchNorm into the conv would be wrong
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv3d(2, 2, 3, padding=1), nn.BatchNorm3d(2)
            self.bn.running_var.fill_(4.0)  # scales the skip too: folding gives bn(conv(x)) + x

        def forward(self, x):
            return self.bn(self.conv(x) + x).mean(dim=(2, 3, 4))

    skip = Skip().eval()
    assert ForwardOnly(skip, x).model is skip and not ForwardOnly(skip, x).folded
    assert fast.folded
    assert implementation(ablation.FeatureAblation(fast)) == "clinxai batched, BatchNorm folded"
    assert implementation(ca.KernelShap(ForwardOnly(skip, x))) == "captum"


def test_explain_uses_them_unless_fast_is_off():
    cfg = yaml.safe_load(open("config/config.yaml"))
    kind = kind_of(cfg, "glioma")
    model = _model()
    kind_inputs = [(torch.randn(1, 2, 8, 8, 8),) for _ in range(2)]
    masks = [_mask((2, 8, 8, 8), 5, s).numpy() for s in range(2)]
    assert isinstance(build(METHODS["ShapleyValueSampling"], model, kind, example=kind_inputs[0]),
                      ablation.ShapleyValueSampling)
    assert isinstance(build(METHODS["FeatureAblation"], model, kind, batching={"fast": False}), ca.FeatureAblation)
    params = {"n_samples": 2}
    runs = [explain(model, kind, "ShapleyValueSampling", ["a", "b"], kind_inputs, [0, 1], masks, 10, params,
                    {"perturbations_per_eval": 4, "fast": fast})[0] for fast in (True, False)]
    for own, ref in zip(*runs):  # the same seeded permutations per case: the same maps
        _close(np.stack(own), np.stack(ref))


def test_they_evaluate_exactly_the_passes_of_the_limit():
    # FeatureAblation: the case and one copy per feature; ShapleyValueSampling: the baseline and n per order
    model, fed = _model(), []

    def forward(x):
        fed.append(len(x))
        return model(x)

    x, mask = torch.randn(1, 2, 8, 8, 8), _mask((1, 2, 8, 8, 8), 6)
    ablation.FeatureAblation(forward).attribute(x, target=0, feature_mask=mask, perturbations_per_eval=4)
    assert sum(fed) == 1 + 6 and max(fed) == 4
    fed.clear()
    ablation.ShapleyValueSampling(forward).attribute(x, target=0, feature_mask=mask, perturbations_per_eval=5,
                                                     n_samples=3)
    assert sum(fed) == 1 + 3 * 6 and max(fed) == 5


def test_feature_ablation_skips_ids_absent_from_the_mask():
    model, fed = _model(), []

    def forward(x):
        fed.append(len(x))
        return model(x)

    x, mask = torch.randn(1, 2, 8, 8, 8), _mask((1, 2, 8, 8, 8), 3) * 2  # ids 0, 2, 4
    got = ablation.FeatureAblation(forward).attribute(x, target=0, feature_mask=mask, perturbations_per_eval=8)
    assert sum(fed) == 1 + 3
    _close(got, ca.FeatureAblation(model).attribute(x, target=0, feature_mask=mask))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,kw", [("FeatureAblation", {}), ("ShapleyValueSampling", {"n_samples": 2})])
def test_on_cuda_they_equal_captum(name, kw):
    model = _model().cuda()
    x, mask = torch.randn(1, 2, 8, 8, 8, device="cuda"), _mask((1, 2, 8, 8, 8), 5).cuda()
    torch.manual_seed(2)
    expected = getattr(ca, name)(model).attribute(x, target=1, feature_mask=mask, **kw)
    torch.manual_seed(2)
    got = getattr(ablation, name)(model).attribute(x, target=1, feature_mask=mask, perturbations_per_eval=4, **kw)
    _close(got.cpu(), expected.cpu())


@pytest.mark.parametrize("per_eval", [1, 3, 16])
def test_feature_permutation_equals_captum_with_the_same_draws(per_eval):
    model = _model()
    x, mask, target = torch.randn(4, 2, 8, 8, 8), _mask((1, 1, 8, 8, 8), 7), torch.tensor([1, 0, 1, 1])
    torch.manual_seed(5)
    expected = ca.FeaturePermutation(model).attribute(x, target=target, feature_mask=mask,
                                                      perturbations_per_eval=per_eval)
    after = torch.rand(1)
    torch.manual_seed(5)
    got = ablation.FeaturePermutation(model).attribute(x, target=target, feature_mask=mask,
                                                       perturbations_per_eval=per_eval)
    _close(got, expected)
    assert torch.equal(torch.rand(1), after)  # the same draws from the global generator, no more


def test_feature_permutation_of_a_linear_model_and_its_passes():
    # f = w . x: permuting feature k changes case c's output by w_k . (x_c - x_perm(c)) over k's voxels
    lin, fed = nn.Sequential(nn.Flatten(), nn.Linear(6, 2)), []

    def forward(x):
        fed.append(len(x))
        return lin(x)

    x, mask = torch.randn(3, 1, 6), torch.tensor([[[0, 0, 1, 2, 2, 2]]])
    torch.manual_seed(1)
    got = ablation.FeaturePermutation(forward).attribute(x, target=1, feature_mask=mask, perturbations_per_eval=6)
    torch.manual_seed(1)
    _, perms = ablation.permutation_draws((mask,), 3, 6)
    w = lin[1].weight[1].detach()
    for k in range(3):
        on = mask[0, 0] == k
        drop = ((x[:, 0] - x[perms[k, 0], 0]) * w * on).sum(dim=1)  # f(x) - f(permuted)
        _close(got[:, 0, on], drop[:, None].expand(3, int(on.sum())))
    assert fed == [6, 6]  # the cases with 1 permuted copy, then 2 copies of 3 cases (about 6 samples a pass)


def test_feature_permutation_across_views_and_a_batch_of_one():
    torch.manual_seed(0)
    model = KneeNet((4, 4, 8)).eval()
    x = tuple(torch.randn(3, 3, 16, 16) for _ in range(3))
    masks = tuple(_mask((1, 3, 16, 16), 4, s) + 2 * s for s in range(3))  # ids shared between views
    torch.manual_seed(3)
    expected = ca.FeaturePermutation(model).attribute(x, target=1, feature_mask=masks, perturbations_per_eval=5)
    torch.manual_seed(3)
    got = ablation.FeaturePermutation(model).attribute(x, target=1, feature_mask=masks, perturbations_per_eval=5)
    for a, b in zip(got, expected):
        _close(a, b)
    one = ablation.FeaturePermutation(model).attribute(tuple(t[:1] for t in x), target=1, feature_mask=masks)
    assert all(not a.any() for a in one)  # nothing to permute with: zero, as captum (which skips the features)


def test_forward_only_runs_relus_in_place_on_its_copy_only():
    model = _model()
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False  # as explain() leaves it for captum's hooks
    fast = ForwardOnly(model, (torch.randn(2, 2, 8, 8, 8),))
    assert all(m.inplace for m in fast.model.modules() if isinstance(m, nn.ReLU))
    assert not any(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))

    class Reuse(nn.Module):  # adds a ReLU's input after the ReLU: in place, the ReLU would overwrite it
        def __init__(self):
            super().__init__()
            self.conv, self.relu = nn.Conv3d(2, 2, 3, padding=1), nn.ReLU()

        def forward(self, x):
            y = self.conv(x)
            return (self.relu(y) + y).mean(dim=(2, 3, 4))

    reuse = Reuse().eval()
    x = (torch.randn(2, 2, 8, 8, 8),)
    assert ForwardOnly(reuse, x).model is reuse and not reuse.relu.inplace


def test_coalition_inputs_are_exactly_the_case_or_the_baseline():
    # lerp's two-sided formula returns either end itself: bit for bit where(present, x, baseline)
    x = (torch.randn(1, 2, 5, 6, 7) * 1e3, torch.randn(1, 3, 4, 4))
    base = (torch.randn(1, 2, 5, 6, 7), 0.25)
    masks = (_mask((1, 2, 5, 6, 7), 9), _mask((1, 1, 4, 4), 9, 1))
    c = ablation.Coalitions(None, x, base, masks, 0, 4, 9)
    rows = torch.rand(6, 9) > 0.5
    for got, t, b, m in zip(c.inputs(rows), x, c.base, c.masks):
        assert torch.equal(got, torch.where(rows[:, m[0]], t, b))
