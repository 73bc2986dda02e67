"""The performance harness's pass counts (benchmarks/performance.py, issue 22) against the samples captum really
feeds the model: the limit it reports is only as good as these counts. Not a timing test."""
import importlib.util

import pytest
import yaml

from helpers import ROOT

spec = importlib.util.spec_from_file_location("performance", ROOT / "benchmarks/performance.py")
performance = importlib.util.module_from_spec(spec)
spec.loader.exec_module(performance)


@pytest.fixture(scope="module")
def synthetic():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["data"]["synthetic"]["size"] = 32
    return config, *performance.setting(config, "synthetic", 1)


@pytest.mark.parametrize("method, params", [
    ("Gradient", {}), ("IntegratedGradients", {"n_steps": 7}), ("SmoothGrad", {"nt_samples": 3}),
    ("GradientShap", {"n_samples": 4}), ("DeepLift", {}), ("GuidedGradCAM", {}),
    ("Occlusion", {"sliding_window_shapes": (1, 12, 12), "strides": (1, 7, 7)}), ("FeatureAblation", {}),
    ("FeaturePermutation", {}),
    ("ShapleyValueSampling", {"n_samples": 2}), ("KernelShap", {"n_samples": 9}), ("Lime", {"n_samples": 9}),
])
def test_pass_counts_are_the_samples_captum_feeds_the_model(synthetic, method, params):
    from clinxai.attribution.explain import explain
    from clinxai.attribution.registry import METHODS, method_params

    config, kind, model, inputs, masks = synthetic
    if method == "FeaturePermutation":  # permutes features across the cases of a batch: three cases, one batch
        kind, model, inputs, masks = performance.setting(config, "synthetic", 3)
    full = method_params(method, kind.layout, params)
    expected, backward = performance.passes(method, full, kind, inputs[0], masks[0])
    fed = []
    hook = model.register_forward_hook(lambda m, args, out: fed.append(args[0].shape[0]))
    try:
        mask_kind = METHODS[method].feature_mask
        explain(model, kind, method, [f"c{i}" for i in range(len(inputs))], inputs, [0] * len(inputs),
                [m[mask_kind] for m in masks] if mask_kind else None, 10, params,
                {"perturbations_per_eval": 1, "permutation_batch": len(inputs), "fast": False})  # captum's own
    finally:
        hook.remove()
    # explain's untimed warm-up is one forward + backward; everything else is the method's (per case)
    assert sum(fed) - 1 == expected * len(inputs), (fed, expected)
    assert backward == (METHODS[method].family == "gradient")


@pytest.mark.parametrize("task", ["glioma", "knee"])
def test_sampled_incremental_windows_are_the_models_occluded_logits(task):
    # the paper-size timing runs a sample of the real windows through clinxai's incremental Occlusion: their logits
    # must be the model's on the occluded input
    import torch

    from clinxai.attribution.explain import explainable, incremental
    from clinxai.attribution.occlusion import window_grid
    from clinxai.attribution.registry import METHODS

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    kind, model, inputs, _ = performance.setting(config, task, 1)
    model, case = explainable(model), list(inputs[0])
    fast = incremental(METHODS["Occlusion"], model, kind, {"incremental_windows": 4}, inputs[0])
    baselines = [torch.full_like(x, -1.0) for x in case]
    evaluate = performance.prepared(fast, case, baselines)
    v, window = len(case) - 1, config["heatmaps"]["params"][task]["Occlusion"]["sliding_window_shapes"]
    starts, ends = window_grid(case[v].shape[1:], window, window)
    expected = []
    for s, e in zip(starts[:3], ends[:3]):
        occluded = [x.clone() for x in case]
        box = (slice(None),) + tuple(slice(int(a), int(b)) for a, b in zip(s, e))
        occluded[v][box] = -1.0
        with torch.no_grad():
            expected.append(model(*occluded)[0])
    got = evaluate(v, starts[:3], ends[:3])
    assert torch.allclose(got, torch.stack(expected), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got[0], got[1])
