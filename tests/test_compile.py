"""`compile` (heatmaps.batching, truthfulness): the forward-only model through torch.compile, checked against the
model on the first case, and left uncompiled where compiling fails or changes the logits."""

import logging
import os
import shutil

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from clinxai.attribution import ablation
from clinxai.attribution.explain import build, explain
from clinxai.attribution.registry import METHODS
from clinxai.config import degradation_cfg, removal_cfg, task_batching
from clinxai.inference import FlatLayout, ForwardOnly, Predictor
from clinxai.tasks import kind_of
from test_ablation import _model  # a GeneNet with BatchNorm statistics that folding must carry

DEMO = yaml.safe_load(open("config/config.yaml"))
PAPER = yaml.safe_load(open("config/paper.yaml"))
# inductor builds C++ kernels on CPU: without a compiler the switch falls back (tested below with a stand-in)
needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                                    reason="no C++ compiler for torch.compile's CPU backend")


class Counted:
    """torch.compile's stand-in: the model itself, with its calls counted."""

    def __init__(self):
        self.compiled, self.calls = 0, 0

    def __call__(self, model, **kw):
        self.compiled += 1

        def run(*x):
            self.calls += 1
            return model(*x)

        return run


@needs_compiler
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
    predict = Predictor(model, FlatLayout(x), fast=True, compile=True)  # under inference mode, as the stages run
    flat = torch.randn(4, 2 * 8 * 8 * 8)
    prob, _ = predict(flat)
    assert predict.model.compiled and predict.model._compiled is not None
    with torch.no_grad():
        expected = torch.softmax(model(*FlatLayout(x).unflatten(flat)), dim=1).numpy()
    assert np.allclose(prob, expected, atol=1e-6)


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

    for wrong in (lambda m, **kw: (lambda *a: m(*a) + 1.0),  # changes the logits
                  lambda m, **kw: (lambda *a: m(*a) + (len(a[0]) > 1))):  # only at the second batch size
        monkeypatch.setattr(torch, "compile", wrong)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="clinxai"):
            fast = ForwardOnly(model, x, compile=True)
        assert not fast.compiled and "changes this model's logits" in caplog.text
        with torch.no_grad():
            assert torch.allclose(fast(*x), model(*x), atol=1e-5, rtol=1e-4)

    def later_fails(m, **kw):  # compiles and checks, then a recompile at a third size fails
        def run(*a):
            if len(a[0]) > 2:
                raise RuntimeError("recompile failed")
            return m(*a)
        return run

    monkeypatch.setattr(torch, "compile", later_fails)
    fast = ForwardOnly(model, x, compile=True)
    explainer = ablation.FeatureAblation(fast)
    assert fast.compiled and explainer.implementation.endswith(", compiled")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clinxai"), torch.no_grad():
        assert torch.allclose(fast(torch.cat([x[0]] * 3)), model(torch.cat([x[0]] * 3)), atol=1e-5, rtol=1e-4)
    assert "a compiled forward pass failed (RuntimeError: recompile failed)" in caplog.text
    assert not fast.compiled and not explainer.implementation.endswith(", compiled")


def test_the_switch_reaches_the_perturbation_methods_and_the_evaluation(monkeypatch):
    kind, model, x = kind_of(DEMO, "glioma"), _model(), (torch.randn(1, 2, 8, 8, 8),)
    mask = torch.from_numpy(np.random.default_rng(0).integers(0, 4, size=(1, 2, 8, 8, 8))).long()
    windows = kind_of(DEMO, "synthetic")  # a family without a layer chain: Occlusion batches whole windows
    for name, kw, k in (("FeatureAblation", {"feature_mask": mask}, kind), ("KernelShap", {"feature_mask": mask}, kind),
                        ("Occlusion", {"sliding_window_shapes": (2, 4, 4, 4), "strides": (2, 4, 4, 4)}, windows)):
        for batching, n in (({"compile": True}, 1), ({}, 0), ({"compile": True, "fast": False}, 0)):
            stand_in = Counted()
            monkeypatch.setattr(torch, "compile", stand_in)
            explainer = build(METHODS[name], model, k, batching=batching, example=x)
            checked = stand_in.calls  # the check's passes (two batch sizes)
            assert stand_in.compiled == n and checked == 2 * n
            explainer.attribute(x, target=0, **kw)
            assert (stand_in.calls > checked) == bool(n)  # the method's passes ran through it
            assert ("compiled" in getattr(explainer, "implementation", "")) == bool(n), name
    stand_in = Counted()
    monkeypatch.setattr(torch, "compile", stand_in)
    predict = Predictor(model, FlatLayout(x), fast=True, compile=True)
    prob, _ = predict(torch.randn(3, 2 * 8 * 8 * 8))
    assert stand_in.compiled == 1 and stand_in.calls == 3 and predict.model.compiled and prob.shape == (3, 2)

    # the evaluation's jobs see the key only when it is on: adding it would change every finished job's params
    assert "compile" not in removal_cfg(DEMO, "glioma") and "compile" not in degradation_cfg(DEMO, "glioma")
    on = {**DEMO, "truthfulness": {**DEMO["truthfulness"], "compile": True}}
    assert removal_cfg(on, "glioma")["compile"] and degradation_cfg(on, "glioma")["compile"]
    assert "compile" not in DEMO["heatmaps"]["batching"]  # the demo's jobs are too short to repay a compile
    off = {**DEMO, "heatmaps": {**DEMO["heatmaps"], "batching": {**DEMO["heatmaps"]["batching"], "compile": False}}}
    assert task_batching(off, "glioma") == task_batching(DEMO, "glioma")  # false is absent: the same job params
    assert PAPER["heatmaps"]["batching"]["compile"] and PAPER["truthfulness"]["compile"]


@needs_compiler
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
