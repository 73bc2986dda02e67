"""The one registry of heatmap methods (SPEC §3): captum class, reference parameters and metadata.

Adding a method means adding one `Method` here; rules, config validation, timing and reports read this table.
`params` are the reference keyword arguments of `attribute`; `layout_params` override them per input layout of the
task registry (window shapes follow the input's dimensions). Config may override any parameter per task and method
(`heatmaps.params.<task>.<method>`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..tasks import SLICE, VIEWS


@dataclass(frozen=True)
class Vary:
    """A consequential hyperparameter of a method and the values tried besides the one in use (issue 19's
    hyperparameter dependence, one at a time). `relative`: the values are factors of the value in use (for a window:
    of every entry but the first, the channel or slice entry, and the strides with it). Pseudo-parameters:
    `n_segments` (the supervoxel count of the feature mask) and `layer` (GradCAM's layer, clinxai.models)."""
    param: str
    values: tuple
    relative: bool = False


SCALE = (0.5, 2.0)  # the factors tried around a count or a scale in use


@dataclass(frozen=True)
class Method:
    name: str
    captum: str                      # class in captum.attr
    family: str                      # "gradient" or "perturbation"
    params: dict = field(default_factory=dict)
    layout_params: dict = field(default_factory=dict)  # clinxai.tasks layout -> parameters
    wraps: str | None = None         # NoiseTunnel's inner method
    needs_layer: bool = False        # GradCAM family: attributes a conv layer
    feature_mask: str | None = None  # "specific" (per modality) or "unified" supervoxels
    sampled: bool = False            # random draws: seeded per case
    model_agnostic: bool = False     # needs only forward passes
    modality_specific: bool = True   # False: identical map on every modality (MI correlation undefined)
    batch_of_cases: bool = False     # one call explains several cases (gradient methods)
    needs_case_batch: bool = False   # FeaturePermutation permutes features across cases
    grid: tuple = ()                 # Vary entries: the hyperparameter-dependence grid (none: nothing to tune)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("Gradient", "Saliency", "gradient", {"abs": False}, batch_of_cases=True),
    Method("SmoothGrad", "NoiseTunnel", "gradient", {"nt_type": "smoothgrad", "nt_samples": 10, "stdevs": 1.0},
           wraps="Saliency", sampled=True, grid=(Vary("stdevs", SCALE, True), Vary("nt_samples", SCALE, True))),
    Method("GuidedBackProp", "GuidedBackprop", "gradient", batch_of_cases=True),
    Method("Deconvolution", "Deconvolution", "gradient", batch_of_cases=True),
    Method("InputXGradient", "InputXGradient", "gradient", batch_of_cases=True),
    Method("IntegratedGradients", "IntegratedGradients", "gradient", {"baselines": 0.0, "n_steps": 50},
           batch_of_cases=True, grid=(Vary("n_steps", SCALE, True), Vary("baselines", ("mean", "blurred")))),
    Method("GradientShap", "GradientShap", "gradient", {"baselines": 0.0, "n_samples": 5, "stdevs": 0.0},
           sampled=True, grid=(Vary("n_samples", SCALE, True), Vary("baselines", ("mean", "blurred")))),
    Method("DeepLift", "DeepLift", "gradient", {"baselines": 0.0}, batch_of_cases=True,
           grid=(Vary("baselines", ("mean", "blurred")),)),
    Method("GradCAM", "LayerGradCam", "gradient", needs_layer=True, modality_specific=False, batch_of_cases=True,
           grid=(Vary("layer", ("previous",)),)),
    Method("GuidedGradCAM", "GuidedGradCam", "gradient", needs_layer=True, batch_of_cases=True,
           grid=(Vary("layer", ("previous",)),)),
    Method("Occlusion", "Occlusion", "perturbation",
           {"sliding_window_shapes": (1, 11, 11, 11), "strides": (1, 5, 5, 5), "baselines": "gaussian"},
           layout_params={VIEWS: {"sliding_window_shapes": (3, 11, 11), "strides": (2, 5, 5)},
                          SLICE: {"sliding_window_shapes": (1, 11, 11), "strides": (1, 5, 5)}},
           sampled=True, model_agnostic=True, grid=(Vary("window", (0.5, 1.5), True),)),
    Method("FeatureAblation", "FeatureAblation", "perturbation", {"baselines": 0.0}, feature_mask="specific",
           model_agnostic=True, grid=(Vary("n_segments", SCALE, True),)),
    Method("ShapleyValueSampling", "ShapleyValueSampling", "perturbation", {"baselines": 0.0, "n_samples": 25},
           feature_mask="specific", sampled=True, model_agnostic=True,
           grid=(Vary("n_samples", SCALE, True), Vary("n_segments", SCALE, True))),
    Method("KernelShap", "KernelShap", "perturbation", {"baselines": 0.0, "n_samples": 300},
           feature_mask="unified", sampled=True, model_agnostic=True, modality_specific=False,
           grid=(Vary("n_samples", SCALE, True), Vary("n_segments", SCALE, True))),
    Method("Lime", "Lime", "perturbation", {"baselines": 0.0, "n_samples": 500}, feature_mask="specific",
           sampled=True, model_agnostic=True, grid=(Vary("n_samples", SCALE, True), Vary("n_segments", SCALE, True))),
    Method("FeaturePermutation", "FeaturePermutation", "perturbation", feature_mask="unified", sampled=True,
           model_agnostic=True, modality_specific=False, needs_case_batch=True,
           grid=(Vary("n_segments", SCALE, True),)),
)}

# Keyword arguments that batch work inside one call; their values come from config (heatmaps.batching).
BATCH_KWARGS = {
    "IntegratedGradients": "internal_batch_size",
    "SmoothGrad": "nt_samples_batch_size",
    "Occlusion": "perturbations_per_eval",
    "FeatureAblation": "perturbations_per_eval",
    "ShapleyValueSampling": "perturbations_per_eval",
    "KernelShap": "perturbations_per_eval",
    "Lime": "perturbations_per_eval",
}


def method_params(name: str, layout: str, overrides: dict | None = None) -> dict:
    """Reference parameters of a method for a task's input layout, with config overrides applied last."""
    m = METHODS[name]
    return {**m.params, **m.layout_params.get(layout, {}), **(overrides or {})}


def metadata_table():
    """The registry as rows (for reports and Table 4)."""
    return [{"method": m.name, "captum": m.captum if not m.wraps else f"{m.captum}({m.wraps})", "family": m.family,
             "needs_layer": m.needs_layer, "feature_mask": m.feature_mask or "", "sampled": m.sampled,
             "model_agnostic": m.model_agnostic, "modality_specific": m.modality_specific}
            for m in METHODS.values()]
