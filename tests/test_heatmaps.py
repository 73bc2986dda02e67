"""Heatmap methods on tiny 2-D, 3-D and three-view models: every method runs, batching does not change maps,
seeded methods reproduce, post-processing matches hand-computed values, flagged maps are kept."""
import numpy as np
import pytest
import torch

from clinxai.attribution.explain import explain
from clinxai.attribution.postprocess import normalisation_value, postprocess, upsample_nearest
from clinxai.attribution.registry import METHODS, method_params
from clinxai.attribution.supervoxels import image_masks, view_masks
from clinxai.models import GeneNet3D, KneeNet, build_model
from clinxai.tasks import KINDS, VIEWS, VOLUME

KNEE_EXCLUDED = {"GradCAM", "GuidedGradCAM", "DeepLift", "FeaturePermutation"}
# Small sample counts and windows so every method runs in well under a second on these inputs.
FAST = {
    "glioma": {"IntegratedGradients": {"n_steps": 4}, "ShapleyValueSampling": {"n_samples": 1},
               "KernelShap": {"n_samples": 16}, "Lime": {"n_samples": 16}, "SmoothGrad": {"nt_samples": 3},
               "Occlusion": {"sliding_window_shapes": (1, 4, 4, 4), "strides": (1, 4, 4, 4)}},
    "synthetic": {"IntegratedGradients": {"n_steps": 4}, "ShapleyValueSampling": {"n_samples": 1},
                  "KernelShap": {"n_samples": 16}, "Lime": {"n_samples": 16}, "SmoothGrad": {"nt_samples": 3},
                  "Occlusion": {"sliding_window_shapes": (1, 8, 8), "strides": (1, 8, 8)}},
    "knee": {"IntegratedGradients": {"n_steps": 4}, "ShapleyValueSampling": {"n_samples": 1},
             "KernelShap": {"n_samples": 16}, "Lime": {"n_samples": 16}, "SmoothGrad": {"nt_samples": 3},
             "Occlusion": {"sliding_window_shapes": (2, 8, 8), "strides": (2, 8, 8)}},
}
BATCH = {"batch_size": 4, "internal_batch_size": 4, "nt_samples_batch_size": 3, "perturbations_per_eval": 8,
         "permutation_batch": 4}
SV = {"n_segments": 4, "compactness": 0.1, "sigma": 1, "unified_channel": 0}


def _glioma_setup(n=4):
    torch.manual_seed(0)
    model = GeneNet3D(4, (8, 8, 8), widths=(4, 8), fc=8).eval()
    rng = np.random.default_rng(0)
    images = rng.normal(size=(n, 4, 8, 8, 8)).astype(np.float32)
    brain = np.ones((8, 8, 8), bool)
    masks = [image_masks(im, brain, SV) for im in images]
    return model, [(torch.from_numpy(im)[None],) for im in images], masks


def _synthetic_setup(n=4):
    torch.manual_seed(0)
    model = build_model("densenet2d", {"in_channels": 4}).eval()
    rng = np.random.default_rng(1)
    images = rng.normal(size=(n, 4, 32, 32)).astype(np.float32)
    masks = [image_masks(im, np.ones((32, 32), bool), SV) for im in images]
    return model, [(torch.from_numpy(im)[None],) for im in images], masks


def _knee_setup(n=4):
    torch.manual_seed(0)
    model = KneeNet(widths=(4, 8)).eval()
    rng = np.random.default_rng(2)
    cases = [{v: rng.normal(size=(4, 16, 16)).astype(np.float32) for v in ("axial", "coronal", "sagittal")}
             for _ in range(n)]
    masks = [view_masks(c, SV) for c in cases]
    return model, [tuple(torch.from_numpy(c[v])[None] for v in c) for c in cases], masks


SETUPS = {"glioma": _glioma_setup, "synthetic": _synthetic_setup, "knee": _knee_setup}


def _run(task, method, model, inputs, masks, seed=10, batching=BATCH, cases=None, targets=None):
    cases = cases or [f"c{i}" for i in range(len(inputs))]
    targets = targets or [1, 0, 1, 0][: len(inputs)]
    kind = METHODS[method].feature_mask
    ms = [m[kind] for m in masks] if kind else None
    return explain(model, KINDS[task], method, cases, inputs, targets, ms, seed,
                   FAST[task].get(method), batching)[0]


@pytest.mark.parametrize("task", ["glioma", "synthetic", "knee"])
def test_every_method_runs_on_every_input_kind(task):
    model, inputs, masks = SETUPS[task]()
    for method in METHODS:
        if task == "knee" and method in KNEE_EXCLUDED:
            continue
        maps = _run(task, method, model, inputs, masks)
        assert len(maps) == len(inputs)
        parts = maps[0]
        if METHODS[method].captum == "LayerGradCam":
            assert len(parts) == 1 and parts[0].ndim == inputs[0][0].dim() - 2
        elif task == "knee":
            assert [p.shape for p in parts] == [tuple(x.shape[1:]) for x in inputs[0]]
        else:
            assert len(parts) == 4 and parts[0].shape == tuple(inputs[0][0].shape[2:])
        assert all(np.isfinite(p).all() for p in parts), method


def test_gradcam_is_refused_for_the_knee_network():
    from clinxai import ClinxaiError

    model, inputs, masks = _knee_setup()
    with pytest.raises(ClinxaiError, match="Exclude them for this task"):
        _run("knee", "GradCAM", model, inputs, masks)


@pytest.mark.parametrize("method", ["Gradient", "InputXGradient", "IntegratedGradients", "DeepLift",
                                    "GuidedGradCAM", "FeatureAblation", "Occlusion"])
def test_batched_equals_one_case_at_a_time(method):
    model, inputs, masks = _glioma_setup()
    batched = _run("glioma", method, model, inputs, masks)
    single = _run("glioma", method, model, inputs, masks,
                  batching={**BATCH, "batch_size": 1, "perturbations_per_eval": 1, "internal_batch_size": 1})
    for b, s in zip(batched, single):
        for pb, ps in zip(b, s):
            np.testing.assert_allclose(pb, ps, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(ps).max()))


@pytest.mark.parametrize("task", ["glioma", "synthetic", "knee"])
def test_gradient_methods_on_channels_last_weights_equal_the_model_as_given(task):
    """`fast` gives gradient methods a copy with channels-last weights: the same maps up to float rounding, and the
    caller's model keeps its layout. In the DenseNet a rounding-level change of a forward pass (the layout's, or a
    batch's) can move a pre-activation across a ReLU's kink and with it the gradient over that unit's receptive field
    (measured against float64: both layouts within 5e-7 of the float64 gradient, case by case; in a batch of four one
    unit flipped): there, most voxels agree tightly and the maps correlate at 0.999."""
    model, inputs, masks = SETUPS[task]()
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    methods = ["Gradient", "GuidedBackProp", "IntegratedGradients", "SmoothGrad"] + \
        ([] if task == "knee" else ["DeepLift", "GuidedGradCAM"])
    for method in methods:
        fast = _run(task, method, model, inputs, masks)
        assert all(p.is_contiguous() for p in model.parameters())
        plain = _run(task, method, model, inputs, masks, batching={**BATCH, "fast": False})
        for f, p in zip(fast, plain):
            for a, b in zip(f, p):
                close = np.isclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(b).max()))
                if task != "synthetic" or close.all():
                    assert close.all(), method
                else:
                    assert close.mean() > 0.9 and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999, method


@pytest.mark.parametrize("method", ["Lime", "KernelShap", "ShapleyValueSampling", "Occlusion", "SmoothGrad"])
def test_same_seed_same_maps_and_another_seed_differs(method):
    model, inputs, masks = _glioma_setup(2)
    a = _run("glioma", method, model, inputs, masks, seed=10)
    b = _run("glioma", method, model, inputs, masks, seed=10)
    c = _run("glioma", method, model, inputs, masks, seed=20)
    assert all(np.array_equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))
    assert any(not np.array_equal(x, y) for pa, pc in zip(a, c) for x, y in zip(pa, pc))


def test_sampled_maps_do_not_depend_on_the_other_cases():
    model, inputs, masks = _glioma_setup(3)
    full = _run("glioma", "SmoothGrad", model, inputs, masks, cases=["a", "b", "c"])
    alone = _run("glioma", "SmoothGrad", model, inputs[1:2], masks[1:2], cases=["b"], targets=[0])
    assert all(np.array_equal(x, y) for x, y in zip(full[1], alone[0]))


def test_normalisation_value_by_hand():
    # |attr| sorted: 10 x ten, then 1 (second modality). Total 101; 99 % = 99.99 is reached at the 10th value.
    a = np.zeros((2, 4, 4))
    a[0].flat[:10] = 10.0
    a[1, 0, 0] = -1.0
    assert normalisation_value(list(a)) == 10.0
    cfg = {"upsample_gradcam": True, "smooth_sigma": None, "normalise": True, "mass": 0.99, "positive_only": False}
    parts, status = postprocess(list(a), [(4, 4)] * 2, cfg)
    assert status == "ok" and parts[0].max() == 1.0 and parts[1][0, 0] == pytest.approx(-0.1)
    parts, _ = postprocess(list(a), [(4, 4)] * 2, {**cfg, "positive_only": True})
    assert parts[1].min() == 0.0
    # One voxel with 99 % of the mass: it alone sets the scale; values above it would be clipped to 1.
    assert normalisation_value([np.array([99.0, 1.0])]) == 99.0
    # Ascending cumulative sums 1, 3, 6, 10, 20 first reach 99 % of 20 at the largest value (captum's rule): only the
    # top 1 % of the mass saturates. (Summing from the top would give 1 and clip almost every voxel to 1.)
    assert normalisation_value([np.array([1.0, 2.0]), np.array([3.0, 4.0, 10.0])]) == 10.0
    assert normalisation_value([np.array([1.0, 2.0, 3.0, 4.0, 10.0])], mass=0.5) == 4.0


def test_normalisation_value_is_exact_on_a_paper_sized_map():
    """4 x 128^3 float32 map: the value equals a reference that accumulates in extended precision. A float32
    cumulative sum drifts by up to 1e-3 of the total over so many voxels and picks a different voxel."""
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], (4, 1, 1, 1))
    parts = list((rng.lognormal(0, 2, size=(4, 128, 128, 128)) * signs).astype(np.float32))
    a = np.sort(np.abs(np.concatenate([p.ravel() for p in parts])).astype(np.longdouble))
    cum = np.cumsum(a)
    ref = float(a[np.searchsorted(cum, np.longdouble(0.99) * cum[-1])])
    assert normalisation_value(parts) == ref
    f32 = np.sort(np.abs(np.concatenate([p.ravel() for p in parts])))  # the old float32 way, for contrast
    c32 = np.cumsum(f32)
    assert abs(float(c32[-1]) - float(cum[-1])) / float(cum[-1]) > 1e-5


def test_smoothing_is_per_modality_and_gradcam_is_upsampled_to_every_modality():
    cfg = {"upsample_gradcam": True, "smooth_sigma": [1, 1, 0], "normalise": False, "mass": 0.99,
           "positive_only": True}
    layer = np.zeros((2, 2, 2), np.float32)
    layer[0, 0, 0] = 1.0
    parts, _ = postprocess([layer], [(4, 4, 4)] * 4, {**cfg, "smooth_sigma": None}, gradcam=True)
    assert len(parts) == 4 and parts[0].shape == (4, 4, 4)
    assert parts[0][:2, :2, :2].min() == 1.0 and parts[0][2:].max() == 0.0
    np.testing.assert_array_equal(upsample_nearest(layer, (4, 4, 4)), parts[3])
    vol = np.zeros((5, 5, 3), np.float32)
    vol[2, 2, 1] = 1.0
    smooth, _ = postprocess([vol, np.zeros_like(vol)], [vol.shape] * 2, cfg)
    assert smooth[0][2, 2, 0] == 0.0 and smooth[0][1, 2, 1] > 0  # no smoothing along the last axis
    assert not smooth[1].any()  # modalities do not bleed into each other


def test_all_zero_and_non_finite_maps_are_flagged_not_dropped():
    cfg = {"upsample_gradcam": True, "smooth_sigma": [1, 1], "normalise": True, "mass": 0.99, "positive_only": True}
    parts, status = postprocess([np.zeros((4, 4)), np.zeros((4, 4))], [(4, 4)] * 2, cfg)
    assert status == "all_zero" and len(parts) == 2
    bad = np.ones((4, 4))
    bad[0, 0] = np.nan
    parts, status = postprocess([bad], [(4, 4)], cfg)
    assert status == "non_finite" and np.isnan(parts[0][0, 0])
    # A purely negative map is all zero after keeping positive values.
    assert postprocess([-np.ones((4, 4))], [(4, 4)], cfg)[1] == "all_zero"
    # A model whose output ignores the input gives an all-zero gradient map: flagged.
    model, inputs, masks = _glioma_setup(2)
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    maps = _run("glioma", "Gradient", model, inputs, masks)
    assert postprocess(maps[0], [(8, 8, 8)] * 4, {**cfg, "smooth_sigma": None})[1] == "all_zero"


def test_registry_parameters_and_overrides():
    assert method_params("Occlusion", VIEWS)["sliding_window_shapes"] == (3, 11, 11)
    assert method_params("Lime", VOLUME, {"n_samples": 7})["n_samples"] == 7
    assert len(METHODS) == 16
    assert METHODS["KernelShap"].feature_mask == "unified" and not METHODS["KernelShap"].modality_specific


def test_modality_specific_masks_are_disjoint_and_unified_is_shared():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4, 8, 8, 8)).astype(np.float32)
    brain = np.zeros((8, 8, 8), bool)
    brain[1:7, 1:7, 1:7] = True
    m = image_masks(image, brain, SV)
    ids = [set(np.unique(m["specific"][c])) for c in range(4)]
    assert all(not (ids[i] & ids[j]) for i in range(4) for j in range(i + 1, 4))
    assert all(np.array_equal(m["unified"][0], m["unified"][c]) for c in range(4))
    assert len(np.unique(m["specific"][0][~brain])) == 1  # background is one feature per channel


@pytest.mark.parametrize("method", [m for m, spec in METHODS.items() if spec.sampled])
def test_sampled_methods_do_not_depend_on_the_process_random_state(method):
    """A fresh process seeds numpy's and Python's global generators from the OS; captum's GradientShap draws from
    numpy's. Every sampled method must give the same map whatever state the globals were left in."""
    import random

    model, inputs, masks = _glioma_setup(2)
    with torch.no_grad():  # non-zero biases: a bias-free ReLU net has the same gradient at every point of a ray
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.5)
    maps = []
    for state in (1, 2):
        np.random.seed(state)
        random.seed(state)
        torch.manual_seed(state)
        maps.append(_run("glioma", method, model, inputs, masks))
    for a, b in zip(*maps):
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), method
