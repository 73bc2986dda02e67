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
    batch_of_cases: bool = False     # one call explains several cases (gradient methods; a sampled one only where
    #                                  its own implementation seeds each case itself)
    needs_case_batch: bool = False   # FeaturePermutation permutes features across cases
    local_window: bool = False       # occludes local windows: incremental inference where the model allows it
    own: str | None = None           # clinxai's implementation replacing captum's: "<module>.<class>" in attribution/
    count_param: str | None = None   # the parameter that counts its samples (steps, noise draws, coalitions, orders)
    passes: str = "1"                # passes per case: a formula of samples, features (of its mask) and windows
    surrogate: str | None = None     # captum._utils.models.linear_model class of the interpretable model (Lime)
    baseline_tensors: bool = False   # draws from a baseline distribution: baselines must be tensors (GradientShap)
    layer_map: bool = False          # its raw map is one layer map, upsampled to every modality (GradCAM)
    grid: tuple = ()                 # Vary entries: the hyperparameter-dependence grid (none: nothing to tune)
    about: str = ""                  # what the method computes (the saliency card's methodology paragraph)
    meaning: str = ""                # what a map value means (the card's semantic directness)

    def batches_cases(self, fast: bool = True) -> bool:
        """Whether one call explains several cases: a sampled method only through its own implementation (`fast`),
        which seeds each case's draws itself."""
        return self.batch_of_cases and (not self.sampled or (fast and self.own is not None))


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("Gradient", "Saliency", "gradient", {"abs": False}, batch_of_cases=True,
           about=("The gradient of the explained class's logit with respect to each input voxel (Simonyan et al. "
                  "2014)."),
           meaning=("How fast the logit changes when the voxel's intensity changes, at this input only (local, "
                    "signed).")),
    Method("SmoothGrad", "NoiseTunnel", "gradient", {"nt_type": "smoothgrad", "nt_samples": 10, "stdevs": 1.0},
           wraps="Saliency", sampled=True, count_param="nt_samples", passes="samples", batch_of_cases=True,
           own="smooth_grad.SmoothGrad",
           grid=(Vary("stdevs", SCALE, True), Vary("nt_samples", SCALE, True)),
           about=("The mean absolute gradient over copies of the input with Gaussian noise added (Smilkov et al. "
                  "2017)."),
           meaning=("Average local sensitivity of the logit to the voxel in a noisy neighbourhood of the input "
                    "(unsigned).")),
    Method("GuidedBackProp", "GuidedBackprop", "gradient", batch_of_cases=True,
           about=("The gradient with negative gradients zeroed at every ReLU on the way back (Springenberg et al. "
                  "2015)."),
           meaning="Which voxels drive positive activations towards the logit; not a sensitivity of the output."),
    Method("Deconvolution", "Deconvolution", "gradient", batch_of_cases=True,
           about=("Backpropagation that applies ReLU to the backward signal instead of the forward mask (Zeiler & "
                  "Fergus 2014)."),
           meaning="Image structure that excites the network's filters; largely class-independent."),
    Method("InputXGradient", "InputXGradient", "gradient", batch_of_cases=True,
           about=("The input times its gradient: a first-order estimate of each voxel's contribution (Shrikumar et "
                  "al. 2016)."),
           meaning="Approximate logit change if the voxel were set to 0 (a linear estimate)."),
    Method("IntegratedGradients", "IntegratedGradients", "gradient", {"baselines": 0.0, "n_steps": 50},
           batch_of_cases=True, count_param="n_steps", passes="samples", own="integrated_gradients.IntegratedGradients",
           grid=(Vary("n_steps", SCALE, True), Vary("baselines", ("mean", "blurred"))),
           about=("The gradient integrated along the straight path from a baseline to the input, times the "
                  "difference (Sundararajan et al. 2017)."),
           meaning=("The voxel's share of the logit difference between the input and the baseline; the shares add up"
                    " to that difference.")),
    Method("GradientShap", "GradientShap", "gradient", {"baselines": 0.0, "n_samples": 5, "stdevs": 0.0},
           sampled=True, count_param="n_samples", passes="samples", baseline_tensors=True, batch_of_cases=True,
           own="gradient_shap.GradientShap",
           grid=(Vary("n_samples", SCALE, True), Vary("baselines", ("mean", "blurred"))),
           about=("Expected gradients times input differences over baselines and random points on the path (Lundberg"
                  " & Lee 2017)."),
           meaning=("An approximate SHAP value: the voxel's expected contribution relative to the baseline "
                    "distribution.")),
    Method("DeepLift", "DeepLift", "gradient", {"baselines": 0.0}, batch_of_cases=True, own="deeplift.DeepLift",
           passes="2",  # the inputs and their baselines in one batch
           grid=(Vary("baselines", ("mean", "blurred")),),
           about=("Contributions propagated by DeepLIFT's rescale rule relative to a baseline (Shrikumar et al. "
                  "2017)."),
           meaning="The voxel's contribution to the logit difference from the baseline; contributions add up to it."),
    Method("GradCAM", "LayerGradCam", "gradient", needs_layer=True, modality_specific=False, batch_of_cases=True,
           layer_map=True,
           grid=(Vary("layer", ("previous",)),),
           about=("Channel activations of one convolutional layer weighted by their mean gradients, ReLU, upsampled "
                  "(Selvaraju et al. 2017)."),
           meaning=("Coarse: where the layer's class-relevant features are, at the layer's resolution, the same on "
                    "every modality.")),
    Method("GuidedGradCAM", "GuidedGradCam", "gradient", needs_layer=True, batch_of_cases=True, passes="2",
           grid=(Vary("layer", ("previous",)),),
           about="GradCAM's map times Guided Backpropagation's (Selvaraju et al. 2017).",
           meaning="Fine-grained structure inside GradCAM's class-relevant regions."),
    Method("Occlusion", "Occlusion", "perturbation",
           {"sliding_window_shapes": (1, 11, 11, 11), "strides": (1, 5, 5, 5), "baselines": "gaussian"},
           layout_params={VIEWS: {"sliding_window_shapes": (3, 11, 11), "strides": (2, 5, 5)},
                          SLICE: {"sliding_window_shapes": (1, 11, 11), "strides": (1, 5, 5)}},
           sampled=True, model_agnostic=True, local_window=True, passes="1 + windows",
           grid=(Vary("window", (0.5, 1.5), True),),
           about=("The logit drop when a sliding window is replaced by a noise baseline, spread over the window's "
                  "voxels (Zeiler & Fergus 2014)."),
           meaning="How much the prediction relies on the region around the voxel (a measured drop, window-sized)."),
    Method("FeatureAblation", "FeatureAblation", "perturbation", {"baselines": 0.0}, feature_mask="specific",
           model_agnostic=True, own="ablation.FeatureAblation", passes="1 + features",
           grid=(Vary("n_segments", SCALE, True),),
           about="The logit drop when a supervoxel of one modality is set to the baseline, one at a time.",
           meaning="The measured effect of removing the voxel's supervoxel alone; every voxel of it shares the value."),
    Method("ShapleyValueSampling", "ShapleyValueSampling", "perturbation", {"baselines": 0.0, "n_samples": 25},
           feature_mask="specific", sampled=True, model_agnostic=True, own="ablation.ShapleyValueSampling",
           count_param="n_samples", passes="1 + samples * features",
           grid=(Vary("n_samples", SCALE, True), Vary("n_segments", SCALE, True)),
           about="Shapley values of supervoxels estimated from random permutations (Castro et al. 2009).",
           meaning="The supervoxel's average marginal contribution to the logit over orders of adding features."),
    Method("KernelShap", "KernelShap", "perturbation", {"baselines": 0.0, "n_samples": 300},
           feature_mask="unified", sampled=True, model_agnostic=True, modality_specific=False,
           own="surrogate.KernelShap", count_param="n_samples", passes="samples",
           grid=(Vary("n_samples", SCALE, True), Vary("n_segments", SCALE, True)),
           about=("Shapley values of supervoxels from a weighted linear regression on random coalitions (Lundberg & "
                  "Lee 2017)."),
           meaning=("The supervoxel's estimated Shapley contribution; every modality shares the unified supervoxel's"
                    " value.")),
    Method("Lime", "Lime", "perturbation", {"baselines": 0.0, "n_samples": 500}, feature_mask="specific",
           sampled=True, model_agnostic=True, own="surrogate.Lime", count_param="n_samples", passes="samples",
           surrogate="SkLearnLinearRegression",  # the paper's linear-regression surrogate
           grid=(Vary("n_samples", SCALE, True), Vary("n_segments", SCALE, True)),
           about=("Coefficients of a linear surrogate fitted to the model's outputs on random supervoxel coalitions "
                  "(Ribeiro et al. 2016)."),
           meaning="The supervoxel's weight in a local linear surrogate of the model, not the model itself."),
    Method("FeaturePermutation", "FeaturePermutation", "perturbation", feature_mask="unified", sampled=True,
           model_agnostic=True, modality_specific=False, needs_case_batch=True, own="ablation.FeaturePermutation",
           passes="1 + features",
           grid=(Vary("n_segments", SCALE, True),),
           about="The logit drop when a supervoxel's values are permuted across the cases of a batch (Breiman 2001).",
           meaning=("How much the prediction depends on the supervoxel's content relative to other cases; batch-"
                    "dependent.")),
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
    "FeaturePermutation": "perturbations_per_eval",
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
