"""Running the registry's captum methods on a trained model: batching, seeding, timing.

Inputs of one case are a tuple of tensors with a batch dimension of 1: `(image,)` for glioma (1 x C x H x W x D)
and synthetic (1 x C x H x W), `(axial, coronal, sagittal)` for the knee (1 x S x H x W each). A map is returned as a
list of per-modality arrays (channels, or knee views); GradCAM returns its single layer map.

Batching: deterministic gradient methods explain `batch_size` cases per call. Sampled methods run one case per
call with a per-case seed, so a map's draws do not depend on the batch or shard it was computed in; an own sampled
implementation that seeds each case itself (`seeds_per_case`: GradientShap, SmoothGrad) takes `batch_size` cases
per call with the same draws (the numbers then differ only by the float rounding of a larger batch, as for
Gradient). Perturbation methods evaluate `perturbations_per_eval` perturbed copies per forward pass.
"""

from __future__ import annotations

import copy
import logging
import random
import time
import zlib

import numpy as np
import torch
from torch import nn

from .. import ClinxaiError
from ..progress import Progress
from ..tasks import TaskKind
from .registry import BATCH_KWARGS, METHODS, Method, method_params

log = logging.getLogger("clinxai.heatmaps")


def case_seed(seed: int, method: str, case: str) -> int:
    """A seed per (model seed, method, case): independent of batching and sharding."""
    return (zlib.crc32(f"{method}/{case}".encode()) + 1_000_003 * int(seed)) % (2**31 - 1)


def seed_globals(seed: int) -> None:
    """Every global generator a method may draw from: captum's GradientShap draws its interpolation points from
    numpy's, which a fresh process seeds from the OS (two identical runs gave different maps)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def explainable(model: nn.Module) -> nn.Module:
    """Eval mode and out-of-place ReLUs (captum's hooks for DeepLift/GuidedBackprop need them)."""
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return model.eval()


def gradcam_layer(model: nn.Module, kind: TaskKind, which: str = "last") -> nn.Module:
    """The layer GradCAM attributes: the model family's (clinxai.models.MODEL_FAMILIES); `which: previous` is the
    block before it (the hyperparameter grid)."""
    from ..models import MODEL_FAMILIES

    return MODEL_FAMILIES[kind.model].gradcam_layer(model, which)


def layer_chain(model: nn.Module, kind: TaskKind):
    """(layers, head) of the model's family (clinxai.models) if incremental inference handles every layer."""
    from ..models import MODEL_FAMILIES
    from .occlusion import supported

    family = MODEL_FAMILIES.get(kind.model)
    split = family.chain(model) if family else None
    return split if split is not None and supported(split[0]) else None


def forward_only_copy(forward, given: nn.Module) -> nn.Module:
    """The model a ForwardOnly evaluates (BatchNorm folded if that was exact, ReLUs in place), in the default
    memory layout; the model as given for anything else."""
    from ..inference import ForwardOnly, fuse_batchnorm

    if not isinstance(forward, ForwardOnly) or not forward.folded:
        return given
    model = fuse_batchnorm(given)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = True
    return model


def incremental(method: Method, model: nn.Module, kind: TaskKind, batching: dict, example: tuple | None = None):
    """clinxai's Occlusion (clinxai.attribution.occlusion) for a method that occludes local windows, unless config
    switches it off (`incremental_windows: 0`): by incremental inference where the model's family names its layer
    chain (or, for the knee network, its per-slice chains), else, for a model of one input tensor, windows batched
    through the whole (BatchNorm-folded) model; None otherwise (captum's)."""
    from ..inference import ForwardOnly
    from ..models import MODEL_FAMILIES
    from .occlusion import IncrementalOcclusion
    from .occlusion_slices import SliceOcclusion

    windows = int(batching.get("incremental_windows", 128))
    if not method.local_window or windows <= 0:
        return None
    family = MODEL_FAMILIES.get(kind.model)
    split = layer_chain(model, kind)
    if split is not None:
        return IncrementalOcclusion(*split, windows)
    views = family.slices(model) if family else None
    if views is not None and SliceOcclusion.applies(views[0]):
        return SliceOcclusion(*views, windows)
    if example is not None and len(example) == 1:
        head = ForwardOnly(model, example, compile=bool(batching.get("compile", False)), inference=True)
        return IncrementalOcclusion([], head, int(batching.get("perturbations_per_eval", 16)))
    return None


def _own_class(path: str):
    """clinxai's implementation of a method (`Method.own`, "<module>.<class>" in clinxai.attribution)."""
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def build(method: Method, model: nn.Module, kind: TaskKind, layer: str = "last", batching: dict | None = None,
          example: tuple | None = None):
    """The method's explainer. With `batching.fast` (the default), methods that need only forward passes get the
    model with BatchNorm folded (clinxai.inference.ForwardOnly: checked on `example`, one case's inputs), and
    clinxai's implementation replaces captum's where the registry names one that supports the model (batched
    ablation, Shapley sampling and permutation, DeepLift without hooks, Lime and KernelShap on coalitions) or the
    method occludes local windows (incremental)."""
    import captum.attr as ca

    batching = batching or {}
    given = model
    if batching.get("fast", True):
        fast = incremental(method, model, kind, batching, example)
        if fast is not None:
            return fast
        if method.model_agnostic and example is not None:
            from ..inference import ForwardOnly

            model = ForwardOnly(model, example, compile=bool(batching.get("compile", False)), inference=False)
    cls = getattr(ca, method.captum)
    if batching.get("fast", True) and method.own:
        own = _own_class(method.own)
        if getattr(own, "supports", lambda _: True)(model):
            cls = own
    if method.wraps:
        return cls(getattr(ca, method.wraps)(model))
    if method.needs_layer:
        return cls(model, gradcam_layer(model, kind, layer))
    if method.surrogate:
        from captum._utils.models import linear_model

        return cls(model, interpretable_model=getattr(linear_model, method.surrogate)())
    explainer = cls(model)
    if hasattr(explainer, "use_chain") and int(batching.get("incremental_windows", 128)) > 0:
        # coalitions by incremental inference where a case's features are small, on the model the batched path
        # uses (BatchNorm folded where ForwardOnly found that exact), weights in the default layout (the boxes are)
        chain = layer_chain(forward_only_copy(model, given), kind)
        if chain is not None:
            explainer.use_chain(*chain, int(batching.get("incremental_features", 4)))
    if hasattr(explainer, "prepare_for_inputs"):  # an own class that looks at one case's inputs first (linear stem)
        explainer.prepare_for_inputs(example)
    return explainer


def _gaussian_baseline(inputs, gen: torch.Generator | list):
    """Per-channel Gaussian noise N(mean_c, std_c) of the case itself (Occlusion's reference baseline). `gen`: one
    generator for the batch, or one per case (a batch whose cases each draw as if alone)."""
    out = []
    for x in inputs:
        dims = tuple(range(2, x.dim())) if x.dim() > 3 else tuple(range(1, x.dim()))
        mean, std = x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True)
        if isinstance(gen, list):
            z = torch.cat([torch.randn((1, *x.shape[1:]), generator=g, dtype=x.dtype) for g in gen])
        else:
            z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        out.append(mean + std * z.to(x.device))
    return tuple(out)


BLURRED_BASELINE_SIGMA = 2.0  # voxels: the "blurred input" baseline of the hyperparameter grid (Sturmfels et al. 2020)


def _named_baseline(name: str, inputs) -> tuple:
    """"mean": each channel (each slice of a knee view) at its mean over the case; "blurred": the input under a
    Gaussian blur."""
    from scipy import ndimage

    out = []
    for x in inputs:
        if name == "mean":
            out.append(x.mean(dim=tuple(range(2, x.dim())), keepdim=True).expand_as(x).contiguous())
        else:  # blurred: over a volume's three axes, in-plane for a slice or each slice of a knee view
            k = 3 if x.dim() == 5 else 2
            sigma = [0] * (x.dim() - k) + [BLURRED_BASELINE_SIGMA] * k
            out.append(torch.from_numpy(ndimage.gaussian_filter(x.detach().cpu().numpy(), sigma)).to(x))
    return tuple(out)


def implementation(explainer) -> str:
    """What computes a method's maps (the timing table's `implementation` column): clinxai's explainers say so
    themselves; a captum one runs on the model as given or folded (clinxai.inference.ForwardOnly)."""
    if hasattr(explainer, "implementation"):
        return explainer.implementation
    from ..inference import describe

    return "captum" + describe(getattr(explainer, "forward_func", None))


def _kwargs(method: Method, params: dict, inputs, masks, batching: dict, gen: torch.Generator | list) -> dict:
    kw = dict(params)
    if method.feature_mask:
        kw["feature_mask"] = masks
    if kw.get("baselines") == "gaussian":
        kw["baselines"] = _gaussian_baseline(inputs, gen)
    elif kw.get("baselines") in ("mean", "blurred"):
        kw["baselines"] = _named_baseline(kw["baselines"], inputs)
    elif method.baseline_tensors:  # a baseline distribution: tensors needed
        kw["baselines"] = tuple(torch.full_like(x, float(kw["baselines"])) for x in inputs)
    elif isinstance(kw.get("baselines"), (int, float)):
        kw["baselines"] = tuple(float(kw["baselines"]) for _ in inputs)
    if method.local_window and len(inputs) > 1:  # one window per knee view
        for k in ("sliding_window_shapes", "strides"):
            kw[k] = tuple(tuple(kw[k]) for _ in inputs)
    elif method.local_window:
        kw["sliding_window_shapes"], kw["strides"] = tuple(kw["sliding_window_shapes"]), tuple(kw["strides"])
    if method.local_window:
        windows = kw["sliding_window_shapes"] if len(inputs) > 1 else (kw["sliding_window_shapes"],)
        for x, w in zip(inputs, windows):
            if any(a > b for a, b in zip(w, x.shape[1:])):
                raise ClinxaiError(f"{method.name} window {list(w)} exceeds the input {list(x.shape[1:])}: make "
                                   f"heatmaps.params.<task>.{method.name}.sliding_window_shapes fit the data grid.")
    batch_key = BATCH_KWARGS.get(method.name)
    if batch_key and batching.get(batch_key):
        kw[batch_key] = batching[batch_key]
    return kw


def _split_parts(attr, method: Method) -> list[list[np.ndarray]]:
    """captum output (tensor or tuple, batch first) -> per case, a list of per-modality arrays."""
    attr = attr if isinstance(attr, tuple) else (attr,)
    attr = [a.detach().float().cpu().numpy() for a in attr]
    n = attr[0].shape[0]
    if len(attr) > 1:  # knee: one tensor per view
        return [[a[i] for a in attr] for i in range(n)]
    if method.layer_map:  # one layer map per case
        return [[attr[0][i, 0]] for i in range(n)]
    return [list(attr[0][i]) for i in range(n)]


def _warm_up(model: nn.Module, x: tuple, device) -> None:
    """One untimed forward and backward pass, so the first timed case does not carry one-off set-up costs."""
    x = tuple(t.detach().to(device).requires_grad_() for t in x)  # detach: never mark the caller's tensors
    model(*x).sum().backward()
    model.zero_grad(set_to_none=True)


def explain(model: nn.Module, kind: TaskKind, method_name: str, cases: list[str], inputs: list[tuple], targets: list[int],
            masks: list | None, seed: int, overrides: dict | None = None, batching: dict | None = None,
            device="cpu", used: list | None = None) -> tuple[list[list[np.ndarray]], list[float]]:
    """Maps (per case, per modality) and seconds per case for one method over a list of cases; progress (cases done,
    elapsed, ETA) in the job's log. `used`, if given, receives what computed them (`implementation`)."""
    method = METHODS[method_name]
    batching = batching or {}
    params = method_params(method_name, kind.layout, overrides)
    layer = params.pop("layer", "last")
    model = explainable(model).to(device)
    if batching.get("fast", True) and not method.model_agnostic:  # gradients: channels-last weights, a copy
        from ..inference import to_channels_last

        model = to_channels_last(copy.deepcopy(model))
    explainer = build(method, model, kind, layer, batching, tuple(t.to(device) for t in inputs[0]) if cases else None)
    masks = masks if masks is not None else [None] * len(cases)
    if cases:
        _warm_up(model, inputs[0], device)
        log.info("%s: %s", method_name, implementation(explainer))

    def mask_tensors(mask):  # one case's mask (array, or a list per knee view) -> tuple of 1 x ... tensors
        parts = mask if isinstance(mask, list) else [mask]
        return tuple(torch.from_numpy(np.asarray(p)).long()[None].to(device) for p in parts)

    seeds_per_case = getattr(explainer, "seeds_per_case", False)  # own sampled methods that seed each case
    if method.needs_case_batch:
        n_groups = max(1, int(np.ceil(len(cases) / batching.get("permutation_batch", 4))))
        groups = np.array_split(np.arange(len(cases)), n_groups)
    elif method.batches_cases(batching.get("fast", True)) and (not method.sampled or seeds_per_case):
        size = max(1, int(batching.get("batch_size", 8)))
        groups = [np.arange(i, min(i + size, len(cases))) for i in range(0, len(cases), size)]
    else:
        groups = [np.array([i]) for i in range(len(cases))]

    maps, seconds = [None] * len(cases), [0.0] * len(cases)
    progress = Progress(len(cases), method_name, log)
    for g in groups:
        g = [int(i) for i in g]
        seeds = [case_seed(seed, method_name, cases[i]) for i in g]
        gen = torch.Generator().manual_seed(seeds[0])
        seed_globals(seeds[0])
        x = tuple(torch.cat([inputs[i][k] for i in g]).to(device) for k in range(len(inputs[0])))
        target = torch.tensor([targets[i] for i in g], device=device)
        if method.feature_mask:
            if method.needs_case_batch:  # one mask for the whole permutation batch: the first case's
                m = mask_tensors(masks[g[0]])
            else:
                m = tuple(torch.cat(t) for t in zip(*[mask_tensors(masks[i]) for i in g]))
        else:
            m = None
        if seeds_per_case:  # each case draws (a drawn baseline too) what a call of its own would draw
            gen = [torch.Generator().manual_seed(s) for s in seeds]
        kw = _kwargs(method, params, x, m, batching, gen)
        if seeds_per_case:
            per_pass = kw.pop(BATCH_KWARGS.get(method_name), None)  # what captum's call would take, if it has one
            kw.update(case_seeds=seeds, samples_per_pass=per_pass or batching.get(explainer.batch_key))
        t0 = time.perf_counter()
        attr = explainer.attribute(x, target=target, **kw)
        if device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / len(g)
        for i, parts in zip(g, _split_parts(attr, method)):
            maps[i], seconds[i] = parts, dt
        progress.update(len(g))
    if cases and used is not None:  # after the calls: an own class says what computed them (the linear stem's)
        used.append(implementation(explainer))
    return maps, seconds
