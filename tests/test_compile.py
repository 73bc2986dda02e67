"""`compile` (heatmaps.batching, truthfulness): the forward-only model through torch.compile, checked against the
model on the first case, and left uncompiled where compiling fails or changes the logits."""

import logging

import numpy as np
import torch
import yaml
from torch import nn

from clinxai.attribution.explain import build, explain
from clinxai.attribution.registry import METHODS
from clinxai.config import degradation_cfg, removal_cfg
from clinxai.inference import FlatLayout, ForwardOnly, Predictor
from clinxai.models import GeneNet3D
from clinxai.tasks import kind_of

DEMO = yaml.safe_load(open("config/config.yaml"))
PAPER = yaml.safe_load(open("config/paper.yaml"))


def _model():
    torch.manual_seed(0)
    model = GeneNet3D(2, (8, 8, 8), (4, 8), 8).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    return model


def test_compiled_forward_only_model_gives_the_models_logits_at_any_batch_size():
    model, x = _model(), (torch.randn(1, 2, 8, 8, 8),)
    fast = ForwardOnly(model, x, compile=True)
    assert fast.compiled and fast.folded
    assert sum(1 for m in fast.modules() if isinstance(m, nn.Conv3d)) == sum(
        1 for m in model.modules() if isinstance(m, nn.Conv3d))  # the compiled copy is not a second submodule
    with torch.no_grad():
        for b in (1, 5, 3):  # a batch size other than the example's recompiles once (dynamic shapes)
            xb = torch.randn(b, 2, 8, 8, 8)
            assert torch.allclose(fast(xb), model(xb), atol=1e-5, rtol=1e-4)
    assert not ForwardOnly(model, x).compiled  # off unless asked for


def test_a_failed_or_wrong_compile_leaves_the_model_uncompiled(monkeypatch, caplog):
    model, x = _model(), (torch.randn(1, 2, 8, 8, 8),)

    def fails(m, **kw):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", fails)
    with caplog.at_level(logging.WARNING, logger="clinxai"):
        fast = ForwardOnly(model, x, compile=True)
    assert not fast.compiled and "torch.compile failed (RuntimeError: no C++ compiler found)" in caplog.text
    with torch.no_grad():
        assert torch.allclose(fast(*x), model(*x), atol=1e-5, rtol=1e-4)

    monkeypatch.setattr(torch, "compile", lambda m, **kw: (lambda *a: m(*a) + 1.0))  # changes the logits
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clinxai"):
        fast = ForwardOnly(model, x, compile=True)
    assert not fast.compiled and "changes this model's logits" in caplog.text
    with torch.no_grad():
        assert torch.allclose(fast(*x), model(*x), atol=1e-5, rtol=1e-4)


def test_the_switch_reaches_the_perturbation_methods_and_the_evaluation(monkeypatch):
    calls = []

    def counted(m, **kw):  # torch.compile's stand-in: the model itself, counted
        calls.append(m)
        return m

    monkeypatch.setattr(torch, "compile", counted)
    kind, model, x = kind_of(DEMO, "glioma"), _model(), (torch.randn(1, 2, 8, 8, 8),)
    for batching, n in (({"compile": True}, 1), ({}, 0), ({"compile": True, "fast": False}, 0)):
        calls.clear()
        explainer = build(METHODS["FeatureAblation"], model, kind, batching=batching, example=x)
        assert len(calls) == n
        assert ("compiled" in getattr(explainer, "implementation", "")) == bool(n)
    calls.clear()
    predict = Predictor(model, FlatLayout(x), fast=True, compile=True)
    prob, _ = predict(torch.randn(3, 2 * 8 * 8 * 8))
    assert len(calls) == 1 and predict.model.compiled and prob.shape == (3, 2)

    # the evaluation's jobs see the key only when it is on: adding it would change every finished job's params
    assert "compile" not in removal_cfg(DEMO, "glioma") and "compile" not in degradation_cfg(DEMO, "glioma")
    on = {**DEMO, "truthfulness": {**DEMO["truthfulness"], "compile": True}}
    assert removal_cfg(on, "glioma")["compile"] and degradation_cfg(on, "glioma")["compile"]
    assert "compile" not in DEMO["heatmaps"]["batching"]  # the demo's jobs are too short to repay a compile
    assert PAPER["heatmaps"]["batching"]["compile"] and PAPER["truthfulness"]["compile"]


def test_feature_ablation_on_the_compiled_model_equals_the_uncompiled():
    kind, model = kind_of(DEMO, "glioma"), _model()
    inputs = [(torch.randn(1, 2, 8, 8, 8),) for _ in range(2)]
    masks = [np.random.default_rng(s).integers(0, 5, size=(2, 8, 8, 8)) for s in range(2)]
    runs = []
    for compile_ in (False, True):
        used = []
        maps, _ = explain(model, kind, "FeatureAblation", ["a", "b"], inputs, [0, 1], masks, 10, {},
                          {"perturbations_per_eval": 4, "compile": compile_}, used=used)
        runs.append(maps)
        assert ("compiled" in used[0]) == compile_
    for own, ref in zip(*runs):
        a, b = np.stack(own), np.stack(ref)
        assert np.abs(b).max() > 0 and np.allclose(a, b, atol=1e-5 * np.abs(b).max())
