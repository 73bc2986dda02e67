"""DeepLift's rescale rule without hooks (issue 22): the same multipliers as captum.attr.DeepLift, computed by autograd
functions that replace the network's non-linear modules in a copy of the model.

captum registers four module hooks and two tensor hooks on every non-linearity and clones its input three times per
call; on the demo's networks that costs as much again as the two passes the method needs. Here the copy runs one
forward and one backward pass over the inputs and baselines stacked in one batch (as captum), and each replaced
module applies captum's rule (captum.attr._core.deep_lift: `nonlinear` for ReLU, `maxpool` for max pooling) on
both halves of the batch, as captum does, with captum's operations in captum's order (tests/test_deeplift.py: the
same maps on the same weights; the sign of a zero aside); a ReLU's differences come from its forward pass. Where a non-finite
value meets one of the rules' fast selections (`_lerp`), the call runs again with captum's `where`. Two details of
captum's hooks are kept so that the maps are the same: a module's "output gradient" is the one recorded on its
output tensor before the next replaced module's rule rewrites it (a ReLU straight into a max pool sees the pool's
plain gradient), and the max-pool rule falls back to the first sample's plain gradient where input and reference
coincide (captum indexes `grad_input[0]` of a tensor).

A model holding a non-linearity captum's DeepLift treats with another rule (ELU, Sigmoid, Softmax, 1-D max pooling,
...), or a ReLU / pool module used twice (captum refuses those), keeps captum's DeepLift (`DeepLift.supports`). The
equality assumes what captum's hooks assume: the tensor a replaced module reads feeds that module only (no skip
connection branches off a ReLU's input), as in the pipeline's networks.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .. import ClinxaiError
from .occlusion import per_axis

EPS = 1e-10  # captum's DeepLift eps: below it a difference counts as zero and the plain gradient is used
REPLACED = (nn.ReLU, nn.MaxPool2d, nn.MaxPool3d)
# captum's other non-linear rules (its SUPPORTED_NON_LINEAR; tests/test_deeplift.py keeps the two in step)
OTHER_RULES = (nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softmax, nn.MaxPool1d)


def _twice(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([t, t])


def _halves(t: torch.Tensor) -> torch.Tensor:
    """2B x ... -> 2 x B x ...: the inputs' half and the references' half of the stacked batch."""
    return t.unflatten(0, (2, -1))


def _difference(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a - b as a divisor, mask): the mask is 1.0 where |a - b| < EPS (captum's rules take the plain gradient there)
    and 0.0 elsewhere, in a's dtype and layout, the weight of `_Replaced.select`; the divisor is a - b with the mask
    added: 1 there (finite quotients, discarded), exact elsewhere."""
    d = a - b
    small = d.abs().lt_(EPS)
    return d.add_(small), small


def _lerp(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, out=None) -> torch.Tensor:
    """b where w is 1, a where it is 0: with such weights lerp returns either end itself (the sign of a zero aside),
    5-10x faster than `torch.where` over a boolean mask on CPU; but a non-finite discarded end makes NaN."""
    return torch.lerp(a, b, w, out=out)


def _where(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, out=None) -> torch.Tensor:
    return torch.where(w.bool(), b, a, out=out)


class _Slot:
    """The gradient of a replaced module's output as captum's hook on that tensor records it: before the rule of a
    replaced module that consumes the tensor directly (a ReLU before a max pool) has rewritten it."""
    plain = None


class _Rule(torch.autograd.Function):
    """y = module(z); backward: captum's rule for the module, given the upstream gradient (possibly rewritten by the
    next rule) and the gradient as recorded before that rewrite."""

    @staticmethod
    def forward(ctx, z, rule, out_slot):
        in_slot = getattr(z, "_deeplift_slot", None)
        out, saved = rule.compute(z, in_slot is not None)
        ctx.save_for_backward(*saved)
        ctx.rule, ctx.out_slot, ctx.in_slot = rule, out_slot, in_slot
        return out

    @staticmethod
    def backward(ctx, grad):
        recorded = grad if ctx.out_slot.plain is None else ctx.out_slot.plain
        result, plain = ctx.rule.backward(grad, recorded, ctx.in_slot is not None, *ctx.saved_tensors)
        if ctx.in_slot is not None:  # the module's own gradient of the upstream gradient, for the rule before it
            ctx.in_slot.plain = plain
        return result, None, None


class _Replaced(nn.Module):
    select = staticmethod(_lerp)  # `_where` in DeepLift.attribute's exact rerun

    def forward(self, z):
        slot = _Slot()
        out = _Rule.apply(z, self, slot)
        out._deeplift_slot = slot
        return out


class RescaleReLU(_Replaced):
    """captum's `nonlinear` rule: g * delta_out / delta_in where the input differs from its reference, the plain
    gradient where it does not.

    The differences are taken once, for both halves of the batch, in the forward pass, so the backward pass is a
    product and a quotient (captum's operations in captum's order: the same numbers) and, only where some input
    equals its reference, the plain gradient selected there; captum's hooks recompute the differences, the plain
    gradient and a `where` over both halves in every backward pass."""

    @staticmethod
    def compute(z, plain_needed):
        out = torch.relu(z)
        zh, oh = _halves(z), _halves(out)
        d_in, small = _difference(zh[0], zh[1])
        d_out = oh[0] - oh[1]
        if not small.any():
            return out, (d_out, d_in, None, out if plain_needed else None)
        return out, (d_out, d_in, small, out)

    def backward(self, grad, recorded, plain_needed, d_out, d_in, small, out):
        plain = None if out is None else torch.ops.aten.threshold_backward(grad, out, 0)
        rescaled = (_halves(recorded) * d_out).div_(d_in)
        if small is not None:  # captum: the plain gradient where input = reference (e.g. a zero background) ...
            # ... of the gradient as the next rule rewrote it (a ReLU straight into a pool sees the pool's)
            rescaled = self.select(rescaled, _halves(plain), small)
        return rescaled.flatten(0, 1), plain


class RescaleMaxPool(_Replaced):
    """captum's `maxpool` rule: the larger of the two pooled outputs carries the difference back to its argmax."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.dims = 2 if isinstance(pool, nn.MaxPool2d) else 3
        self.args = tuple(per_axis(v, self.dims) for v in (pool.kernel_size, pool.stride, pool.padding, pool.dilation))
        self.ceil_mode = pool.ceil_mode

    def compute(self, z, plain_needed):
        k, s, p, d = self.args
        out, idx = (F.max_pool2d if self.dims == 2 else F.max_pool3d)(z, k, s, p, d, self.ceil_mode, True)
        return out, (z, out, idx)

    def plain(self, grad, z, idx):
        backward = (torch.ops.aten.max_pool2d_with_indices_backward if self.dims == 2
                    else torch.ops.aten.max_pool3d_with_indices_backward)
        return backward(grad, z, *self.args, self.ceil_mode, idx)

    def backward(self, grad, recorded, plain_needed, z, out, idx):
        # the rule needs the first sample's plain gradient only; a replaced module before it (a ReLU) every sample's
        plain = self.plain(grad, z, idx) if plain_needed else self.plain(grad[:1], z[:1], idx[:1])
        return self.rescale(plain, recorded, z, out, idx), plain

    def rescale(self, plain, recorded, z, out, idx):
        h = len(z) // 2
        xmax = torch.max(out[:h], out[h:])
        carried = recorded * torch.cat([xmax - out[h:], out[:h] - xmax])
        spread = self._spread(carried, idx, z)  # both halves get the sum (captum repeats it)
        d_in, small = _difference(z[:h], z[h:])
        spread.div_(d_in)
        both = torch.empty_like(z)
        # captum takes `grad_input[0]` of a tensor here: the first sample's gradient stands in for every sample's
        self.select(spread, plain[0], small, out=both[:h])
        both[h:] = both[:h]
        return both

    def _spread(self, carried, idx, z):
        """The sum over both halves of `carried` unpooled to the argmaxes, in z's memory layout.

        Where no two windows overlap (stride >= kernel, no dilation), each half's values are added at their argmaxes
        (`scatter_add_`) into one zeroed tensor in z's layout: the same sums as captum's unpooling of both halves,
        without two full-size unpooled tensors in the default layout, whose mixed layouts slowed every op after
        them. Other windows unpool as captum does (a voxel that is the maximum of two windows keeps one value)."""
        k, s, p, d = self.args
        h = len(z) // 2
        layouts = (torch.contiguous_format, torch.channels_last if self.dims == 2 else torch.channels_last_3d)
        if all(si >= ki and di == 1 for ki, si, di in zip(k, s, d)) and \
                any(z.is_contiguous(memory_format=f) for f in layouts):  # (dilated windows: captum's unpooling)
            spread = torch.zeros_like(z[:h])
            flat = spread.view(h, spread.shape[1], -1)  # a view in both layouts: the spatial axes merge
            for half in (slice(None, h), slice(h, None)):
                flat.scatter_add_(2, idx[half].flatten(2), carried[half].flatten(2))
            return spread
        unpool = F.max_unpool2d if self.dims == 2 else F.max_unpool3d
        spread = unpool(carried, idx, k, s, p, list(z.shape))
        return spread[:h] + spread[h:]


def _replace(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is nn.ReLU:  # captum hooks a module by its exact type
            setattr(module, name, RescaleReLU())
        elif type(child) in (nn.MaxPool2d, nn.MaxPool3d):
            setattr(module, name, RescaleMaxPool(child))
        else:
            _replace(child)


class DeepLift:
    """captum.attr.DeepLift(model).attribute(inputs, target, baselines) with multiplication by the inputs."""

    implementation = "clinxai rescale rule"

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).eval()
        _replace(self.model)

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Whether every non-linearity captum's DeepLift would hook is one this module replaces, each used once."""
        replaced = [m for m in model.modules(remove_duplicate=False) if type(m) in REPLACED]
        return not any(type(m) in OTHER_RULES for m in model.modules()) and \
            len({id(m) for m in replaced}) == len(replaced)

    def attribute(self, inputs, target, baselines=0.0, **unsupported):
        if any(v is not None for v in unsupported.values()):
            raise ClinxaiError(f"clinxai's DeepLift takes no {sorted(unsupported)}: use captum.attr.DeepLift.")
        baselines = 0.0 if baselines is None else baselines
        as_tuple = isinstance(inputs, tuple)
        x = tuple(t.detach().requires_grad_() for t in (inputs if as_tuple else (inputs,)))
        baselines = baselines if isinstance(baselines, tuple) else (baselines,) * len(x)
        refs = tuple(torch.full_like(t, float(b)) if not torch.is_tensor(b) else b.to(t).expand_as(t)
                     for t, b in zip(x, baselines))
        attr = self._attribute(x, refs, target)
        if not all(torch.isfinite(a).all() for a in attr):
            # a non-finite value met one of lerp's selections, which spreads it where `where` would not (into every
            # case, through the pool rule's first-sample gradient): the same call again with captum's selection
            rules = [m for m in self.model.modules() if isinstance(m, _Replaced)]
            for m in rules:
                m.select = _where
            try:
                attr = self._attribute(x, refs, target)
            finally:
                for m in rules:
                    del m.select
        return attr if as_tuple else attr[0]

    def _attribute(self, x, refs, target):
        with torch.enable_grad():
            out = self.model(*(torch.cat([t, r]) for t, r in zip(x, refs)))
            rows = torch.arange(len(out), device=out.device)
            target = torch.as_tensor(target, device=out.device).reshape(-1)
            picked = out[rows, _twice(target.expand(len(out) // 2))]
            grads = torch.autograd.grad(torch.unbind(picked), x)
        return tuple(((t - r) * g).detach() for t, r, g in zip(x, refs, grads))
