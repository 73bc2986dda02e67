"""The sensitivity stage's runners (issue 19, not wired yet) on models whose answers are known: a map that ignores
the model survives randomisation, Gradient does not; a linear model's Gradient does not change under any intensity
shift."""
import numpy as np
import pytest
import torch
from torch import nn

from clinxai.evaluation.sensitivity import SHIFTS, cascading_randomisation, input_sensitivity, shifted


def gradient_map(model, x):
    inputs = tuple(t.clone().requires_grad_(True) for t in x)
    out = model(*inputs)
    out[0, int(out.argmax(1))].backward()
    return [np.abs(g[0, c].numpy()) for g in (inputs[0].grad,) for c in range(g.shape[1])]


def input_map(model, x):  # "a map" that does not depend on the model at all
    return [np.abs(x[0][0, c].numpy()) for c in range(x[0].shape[1])]


def trained_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    x = torch.randn(64, 2, 16, 16)
    y = (x[:, 0, 4:8, 4:8].mean((1, 2)) > 0).long()  # the class lives in one patch of one channel
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), (x[:1],)


def test_randomisation_keeps_a_model_free_map_and_breaks_gradient():
    model, x = trained_cnn()
    free = cascading_randomisation(model, input_map, x, seed=1)
    assert [r["layer"] for r in free] == ["6", "2", "0"]  # output layer first
    assert all(r["spearman"] == pytest.approx(1) and r["relative_change"] == 0 for r in free)
    grad = cascading_randomisation(model, gradient_map, x, seed=1)
    assert grad[-1]["spearman"] < 0.5 and grad[-1]["relative_change"] > 0.5  # fully randomised: another map
    assert all(np.isfinite([r["spearman"], r["ssim"], r["top10_iou"]]).all() for r in grad)


def test_a_linear_models_gradient_ignores_every_intensity_shift():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(2 * 12 * 12, 2)).eval()
    x = (torch.rand(1, 2, 12, 12) + 0.5,)
    rows = input_sensitivity(linear, gradient_map, x, {s: 0.1 for s in SHIFTS}, draws=3, seed=2)
    kept = [r for r in rows if not r["flipped"]]
    assert len(rows) == 3 * len(SHIFTS) and kept
    assert all(r["relative_change"] == 0 and r["spearman"] == pytest.approx(1) for r in kept)


def test_shifts_are_seeded_and_change_the_input():
    x = (torch.rand(1, 2, 12, 12) + 0.5,)
    for name in SHIFTS:
        a, b = shifted(x, name, 0.2, 5), shifted(x, name, 0.2, 5)
        assert torch.equal(a[0], b[0]) and a[0].shape == x[0].shape
        assert not torch.equal(a[0], x[0]), name
