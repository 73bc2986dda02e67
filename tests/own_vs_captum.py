"""Shared by the tests of clinxai's own sampled methods against captum's per-case calls (GradientShap, SmoothGrad)."""
import torch

from clinxai.attribution.explain import explainable

SEEDS = [11, 22, 33, 44]  # one seed per case, as clinxai.attribution.explain.case_seed would give


def model_with_biases(net):
    """Non-zero biases: a bias-free ReLU net has the same gradient along a ray from 0."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.5)
    return explainable(net).eval()


def check_maps(got, expected, exact):
    """Bit for bit (`exact`: a pass held one case, as captum's call does), else within float rounding."""
    for a, b in zip(got, expected):
        assert b.abs().max() > 0
        if exact:
            assert torch.equal(a, b), (a - b).abs().max()
        else:
            assert torch.allclose(a, b, atol=1e-7, rtol=1e-5), (a - b).abs().max()
