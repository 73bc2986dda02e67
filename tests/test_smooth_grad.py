"""clinxai's SmoothGrad over a batch of cases (clinxai.attribution.smooth_grad) draws each case's noise as captum's
NoiseTunnel(Saliency) does when called on that case alone after seeding with the case's seed: the same maps, bit for
bit where a pass holds one case (or one of captum's partitions of it), within float rounding where it holds several."""

import numpy as np
import pytest
import torch
import yaml
from captum import attr as ca

from clinxai.attribution.explain import build, explain
from clinxai.attribution.registry import METHODS
from clinxai.attribution.smooth_grad import SmoothGrad, plan_passes
from clinxai.models import GeneNet3D, KneeNet
from clinxai.tasks import kind_of
from own_vs_captum import SEEDS, check_maps, model_with_biases



def _captum_per_case(model, inputs, target, **kw):
    """captum's NoiseTunnel(Saliency) on each case alone, seeded as clinxai.attribution.explain seeds a case."""
    out = []
    for i, s in enumerate(SEEDS[:inputs[0].shape[0]]):
        torch.manual_seed(s)
        out.append(ca.NoiseTunnel(ca.Saliency(model)).attribute(tuple(x[i:i + 1] for x in inputs),
                                                                target=int(target[i]), **kw))
    return tuple(torch.cat(parts) for parts in zip(*out))



def test_passes_hold_whole_cases_or_captums_partitions_of_one():
    assert plan_passes(5, 4, 8) == [[(0, 4), (1, 4)], [(2, 4), (3, 4)], [(4, 4)]]
    assert plan_passes(2, 4, 4) == plan_passes(2, 4, None) == [[(0, 4)], [(1, 4)]]
    assert plan_passes(2, 5, 2) == [[(0, 2)], [(0, 2)], [(0, 1)], [(1, 2)], [(1, 2)], [(1, 1)]]


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_genenet_equals_captum_per_case(nt_type):
    model = model_with_biases(GeneNet3D(3, (12, 12, 8), (4, 8), 16))
    torch.manual_seed(1)
    x, target = (torch.randn(4, 3, 12, 12, 8),), torch.tensor([0, 1, 1, 0])
    # captum splitting a case's 5 copies into passes of 2, 2 and 1, or all in one; clinxai the same, or whole cases
    for captum_batch, per_pass, exact in ((2, 2, True), (None, 5, True), (None, 9, True), (None, 10, False),
                                          (None, 64, False)):
        expected = _captum_per_case(model, x, target, nt_type=nt_type, nt_samples=5, stdevs=0.4,
                                    nt_samples_batch_size=captum_batch)
        got = SmoothGrad(ca.Saliency(model)).attribute(x, target, nt_type=nt_type, nt_samples=5, stdevs=0.4,
                                                       case_seeds=SEEDS, samples_per_pass=per_pass)
        check_maps(got, expected, exact)


@pytest.mark.parametrize("stdevs", [0.3, (0.0, 0.3, 0.2)])
def test_the_three_view_knee_network_equals_captum_per_case(stdevs):
    model = model_with_biases(KneeNet(widths=(4, 8)))
    torch.manual_seed(2)
    views = tuple(torch.randn(3, 3, 16, 16) for _ in range(3))
    target = torch.tensor([1, 0, 1])
    expected = _captum_per_case(model, views, target, nt_samples=4, stdevs=stdevs)
    sg = SmoothGrad(ca.Saliency(model))
    check_maps(sg.attribute(views, target, nt_samples=4, stdevs=stdevs, case_seeds=SEEDS[:3], samples_per_pass=4),
           expected, True)
    check_maps(sg.attribute(views, target, nt_samples=4, stdevs=stdevs, case_seeds=SEEDS[:3], samples_per_pass=16),
           expected, False)
    signed = _captum_per_case(model, views, target, nt_samples=4, stdevs=stdevs, abs=False)
    check_maps(sg.attribute(views, target, nt_samples=4, stdevs=stdevs, case_seeds=SEEDS[:3], abs=False), signed, True)


def test_it_asks_for_a_seed_per_case_a_known_type_and_a_deviation_per_input():
    sg = SmoothGrad(ca.Saliency(model_with_biases(GeneNet3D(1, (8, 8, 8), (4,), 8))))
    x = torch.randn(3, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="one seed per case: 3 cases"):
        sg.attribute(x, [0, 0, 0], case_seeds=[1, 2])
    with pytest.raises(ValueError, match="nt_type 'smooth'"):
        sg.attribute(x, [0, 0, 0], nt_type="smooth", case_seeds=[1, 2, 3])
    with pytest.raises(ValueError, match=r"one deviation, or one per input \(1\)"):
        sg.attribute(x, [0, 0, 0], stdevs=(0.1, 0.2), case_seeds=[1, 2, 3])


def test_explain_batches_cases_and_keeps_each_cases_map():
    """A case's map does not depend on the cases it was batched with, and equals captum's one call per case."""
    kind = kind_of(yaml.safe_load(open("config/config.yaml")), "glioma")
    model = model_with_biases(GeneNet3D(2, (8, 8, 8), (4, 8), 8))
    torch.manual_seed(3)
    inputs = [(torch.randn(1, 2, 8, 8, 8),) for _ in range(3)]
    assert isinstance(build(METHODS["SmoothGrad"], model, kind), SmoothGrad)
    assert isinstance(build(METHODS["SmoothGrad"], model, kind, batching={"fast": False}), ca.NoiseTunnel)
    used, runs = [], []
    for fast, cases, per_pass in ((True, "abc", 10), (False, "abc", 10), (True, "c", 4), (True, "abc", 4)):
        idx = [ord(c) - ord("a") for c in cases]
        runs.append(explain(model, kind, "SmoothGrad", list(cases), [inputs[i] for i in idx],
                            [[0, 1, 1][i] for i in idx], None, 10, {"nt_samples": 4},
                            {"batch_size": 8, "nt_samples_batch_size": per_pass, "fast": fast}, used=used)[0])
    assert used == [SmoothGrad.implementation, "captum"] + [SmoothGrad.implementation] * 2
    for own, ref in zip(*runs[:2]):
        for a, b in zip(own, ref):
            assert np.abs(b).max() > 0 and np.abs(a - b).max() <= 1e-7 + 1e-5 * np.abs(b).max()
    # a pass of 4 holds one case: c alone and c batched give the same numbers as each other
    assert all(np.array_equal(a, b) for a, b in zip(runs[2][0], runs[3][2]))


def test_a_double_input_keeps_its_precision_as_in_captum():
    model = model_with_biases(GeneNet3D(1, (8, 8, 8), (4,), 8)).double()
    x = torch.randn(2, 1, 8, 8, 8, dtype=torch.float64)
    expected = _captum_per_case(model, (x,), [0, 1], nt_samples=3, stdevs=0.5)
    got = SmoothGrad(ca.Saliency(model)).attribute((x,), [0, 1], nt_samples=3, stdevs=0.5, case_seeds=SEEDS[:2],
                                                   samples_per_pass=3)
    assert got[0].dtype == torch.float64
    check_maps(got, expected, True)


@pytest.mark.parametrize("numel", [1, 3, 7, 15, 16, 17, 33, 4097])
@pytest.mark.parametrize("sd", [0.4, 0.15, 2.5, 0.0])
def test_the_noise_is_captums_draw_at_every_size(numel, sd):
    """Below 16 elements the CPU kernel's scalar path of normal_ multiplies in double: captum's own draw is made."""
    from clinxai.attribution.smooth_grad import captum_noise

    torch.manual_seed(7)
    expected = torch.normal(0, torch.tensor(sd).repeat((numel,)))
    torch.manual_seed(7)
    got = captum_noise((numel,), sd, "cpu")
    assert torch.equal(got, expected) and torch.equal(torch.signbit(got), torch.signbit(expected))
    assert torch.equal(torch.rand(1), (torch.manual_seed(7), torch.normal(0, torch.tensor(sd).repeat((numel,))),
                                       torch.rand(1))[2])  # the generator advanced as far as captum's draw
