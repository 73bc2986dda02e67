"""Lime and KernelShap with captum's draws and surrogate fit, and coalitions as the model's inputs (issue 22).

captum's LimeBase draws one interpretable sample at a time (a 0/1 vector over the features of the mask), turns each
into a full-size model input (the case where a feature is on, the baseline elsewhere), weighs it (Lime: an
exponential kernel of the cosine distance between that input and the case, over every voxel) and concatenates
`perturbations_per_eval` of them for a forward pass; at the demo's sizes that per-sample work cost as much as the
passes. Here captum's loop runs unchanged (the same draws from the same generators in the same order, the same
weights, the same surrogate fit) but a sample's "model input" is its 0/1 vector: the forward function turns a batch
of vectors into the model's inputs in one tensor operation (`Coalitions.inputs`), and Lime's cosine kernel comes
from per-feature sums (x·x, x·b, b·b over each feature's voxels), so no full-size input exists outside a forward
pass. The maps equal captum's within float tolerance (tests/test_surrogate.py).

One case per captum call, as clinxai's explain calls sampled methods: a batch is explained case after case, each
with the features its own mask holds, as separate captum calls would.
"""

from __future__ import annotations

import math

import captum.attr as ca
import torch
from captum._utils.common import _format_output
from captum.attr._utils.common import _format_input_baseline
from captum.attr._core.lime import construct_feature_mask

from ..inference import describe
from .ablation import Coalitions

KERNEL_WIDTH = 1.0  # captum's default kernel: exp(-d^2 / (2 w^2)) of the cosine distance d
COSINE_EPS = 1e-8   # torch.nn.CosineSimilarity's clamp of each norm


def _coalition(curr_sample, original_inputs, **kwargs):
    """from_interp_rep_transform: the sample itself stands for its input (built in the forward pass)."""
    return curr_sample


class _CoalitionForward:
    """captum's forward_func: a batch of interpretable samples (B x features, 0/1) -> the model's outputs on the
    inputs they stand for."""

    def __init__(self, coalitions: Coalitions):
        self.coalitions = coalitions

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        return self.coalitions.forward(*self.coalitions.inputs(samples.bool()))


class _OneCaseAtATime:
    """attribute() per case with a coalition forward function; the rest is captum's."""

    def _set_up(self, forward_func):
        self.model = forward_func
        self.from_interp_rep_transform = _coalition

    @property
    def implementation(self) -> str:  # read when asked: a compiled model may fall back to uncompiled mid-job
        return "captum draws and fit, clinxai coalition batches" + describe(self.model)

    @staticmethod
    def supports(model) -> bool:
        return True

    def _prepare(self, coalitions: Coalitions) -> None:
        pass

    def attribute(self, inputs, baselines=None, target=None, feature_mask=None, **kw):
        if feature_mask is None:
            raise ValueError("clinxai's Lime / KernelShap need a feature mask (the supervoxels)")
        as_tuple = isinstance(inputs, tuple)
        x, base = _format_input_baseline(inputs, baselines)
        masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
        targets = torch.as_tensor(target).reshape(-1).tolist() if target is not None else [None]
        out = []
        for i in range(len(x[0])):
            xi = tuple(t[i:i + 1] for t in x)
            bi = tuple(b[i:i + 1] if torch.is_tensor(b) and b.dim() and len(b) > 1 else b for b in base)
            mi, n = construct_feature_mask(tuple(m[i:i + 1] if len(m) > 1 else m for m in masks), xi)
            ti = targets[i if len(targets) > 1 else 0]
            coalitions = Coalitions(self.model, xi, bi, mi, ti or 0, 1, n)
            self._prepare(coalitions)
            self.forward_func = _CoalitionForward(coalitions)
            try:
                attr = super().attribute(xi if as_tuple else xi[0], baselines=bi if as_tuple else bi[0], target=ti,
                                         feature_mask=mi if as_tuple else mi[0], **kw)
            finally:
                self.forward_func = self.model
            out.append(attr if as_tuple else (attr,))
        joined = tuple(torch.cat(parts) for parts in zip(*out))
        return joined if as_tuple else joined[0]

    def _convert_output_shape(self, formatted_inp, feature_mask, coefs, num_interp_features, is_inputs_tuple,
                              leading_dim_one=False):
        """captum's coefficients -> maps, by one gather per input instead of a full-size compare, multiply and add
        per feature (12 ms of a glioma demo case's ~170 ms): the same float32 values, +0.0 where captum adds up
        zeros. A non-finite coefficient goes to captum's loop, whose products with 0 spread it to every voxel."""
        flat = coefs.flatten()
        if not torch.isfinite(flat).all():
            return super()._convert_output_shape(formatted_inp, feature_mask, coefs, num_interp_features,
                                                 is_inputs_tuple, leading_dim_one)
        n = int(num_interp_features)
        values = torch.cat([flat[:n].float(), flat.new_zeros(1, dtype=torch.float)])  # an id outside 0..n-1 gets 0
        attr = []
        for inp, m in zip(formatted_inp, feature_mask):  # the coefficients come on the CPU, the inputs maybe not
            ids = m.long().to(inp.device)
            ids = torch.where((ids >= 0) & (ids < n), ids, n)
            a = torch.zeros_like(inp, dtype=torch.float) + values.to(inp.device)[ids]  # + 0.0: no -0.0, as captum
            attr.append(a[0:1] if leading_dim_one else a)
        return _format_output(is_inputs_tuple, tuple(attr))


class Lime(_OneCaseAtATime, ca.Lime):
    """captum.attr.Lime(forward_func, interpretable_model) with its default sampling and cosine kernel."""

    def __init__(self, forward_func, interpretable_model=None):
        ca.Lime.__init__(self, forward_func, interpretable_model=interpretable_model)
        self._set_up(forward_func)
        self.similarity_func = self._cosine_kernel

    def _prepare(self, coalitions: Coalitions) -> None:
        """Per feature, in float64: the sums of x·x, x·b and b·b over its voxels in every input."""
        sums = torch.zeros(3, coalitions.n, dtype=torch.float64, device=coalitions.x[0].device)
        for t, b, m in zip(coalitions.x, coalitions.base, coalitions.masks):
            t, b, ids = t.double().reshape(-1), b.double().reshape(-1), m.reshape(-1)
            for row, v in enumerate((t * t, t * b, b * b)):
                sums[row].index_add_(0, ids, v)
        self._sums = sums

    def _cosine_kernel(self, original_inp, perturbed_inp, interpretable_sample, **kwargs) -> float:
        """captum's default similarity: exp(-d^2 / 2) of the cosine distance d between the case and the input the
        sample stands for (x where a feature is on, b where it is off)."""
        xx, xb, bb = self._sums
        on = interpretable_sample[0].bool().to(xx.device)
        dot = torch.where(on, xx, xb).sum()
        norm_p = torch.where(on, xx, bb).sum().sqrt().clamp_min(COSINE_EPS)
        cos = float(dot / (xx.sum().sqrt().clamp_min(COSINE_EPS) * norm_p))
        return math.exp(-((1 - cos) ** 2) / (2 * KERNEL_WIDTH**2))


class KernelShap(_OneCaseAtATime, ca.KernelShap):
    """captum.attr.KernelShap(forward_func): its coalition sampling, weights and linear regression."""

    def __init__(self, forward_func, interpretable_model=None):
        ca.KernelShap.__init__(self, forward_func)
        self._set_up(forward_func)
