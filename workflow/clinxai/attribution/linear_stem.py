"""A network's linear stem: the calls of a convolution or linear layer that read the model's inputs.

Gradient methods that evaluate the model on points linear in the input — IntegratedGradients' path b + a(x - b),
GradientShap's b + a(x - b) with a baseline drawn per sample — can evaluate the stem once per case and baseline
(stem(b + a(x - b)) = stem(b) + a * stem_without_bias(x - b)) and take the gradient through it once per case (the sum
over samples of stem^T(g) is stem^T of the sum). `LinearStem.find` finds the stem calls on one case (their input is a
model input, or a contiguous view of one whose rows are blocks of the input's rows, as the knee encoders' reshape of
a view's slices) and checks that the model reaches its output only through them: in the substituted pass the
model's inputs are NaN, its logits must equal the model's own on three points of the ray (a = 1, 0.375, 0), and
the input gradient taken through the stem must equal the model's own (which also catches in-place operations on the
stem's output and checkpointed stems). None where a model reads its input otherwise, or the check fails. A finite
check cannot see every model: one that gates on its input's values (a comparison, `where`, a Python branch) in a way
those points do not reveal would be computed wrongly — the pipeline's networks do not; a model of your own that does
can run captum's class with `heatmaps.batching.fast: false`.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

log = logging.getLogger("clinxai.heatmaps")

LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _without_bias(module: nn.Module, t: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return nn.functional.linear(t, module.weight)
    return module._conv_forward(t, module.weight, None)  # the module's own padding mode


def _view_of(t, x: torch.Tensor) -> bool:
    """t is x, or a contiguous view of all of x whose rows are blocks of x's rows."""
    if not isinstance(t, torch.Tensor):
        return False
    base = t if t._base is None else t._base
    return (base is x and t.data_ptr() == x.data_ptr() and t.numel() == x.numel() and t.is_contiguous()
            and x.is_contiguous() and t.dim() > 0 and t.shape[0] % x.shape[0] == 0)


def empty_rows(like: torch.Tensor, rows: int) -> torch.Tensor:
    """An uninitialised tensor of `rows` rows shaped and laid out (channels-last or not) like `like`'s rows."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(like.dim())
    if fmt is None or like.is_contiguous() or not like.is_contiguous(memory_format=fmt):
        fmt = torch.contiguous_format
    return torch.empty((rows, *like.shape[1:]), dtype=like.dtype, device=like.device, memory_format=fmt)


class StemCall:
    """One call of a linear layer on input `index`, reshaped to `rows_per_case` rows per case x `shape`."""

    def __init__(self, module: nn.Module, index: int, rows_per_case: int, shape: tuple):
        self.module, self.index, self.rows_per_case, self.shape = module, index, rows_per_case, shape

    def without_bias(self, x: torch.Tensor) -> torch.Tensor:
        """The call's output for input tensor x (cases first), without the bias."""
        return _without_bias(self.module, x.reshape(x.shape[0] * self.rows_per_case, *self.shape))

    def bias(self, out: torch.Tensor) -> torch.Tensor | None:
        """The bias, shaped to add to an output like `out`."""
        b = None if self.module.bias is None else self.module.bias.detach()
        if b is None or isinstance(self.module, nn.Linear):  # a linear layer's bias is on the last dimension
            return b
        return b.view(-1, *[1] * (out.dim() - 2))


class LinearStem:
    """The stem calls of a model, in call order."""

    def __init__(self, model: nn.Module, calls: list[StemCall], example: tuple):
        self.model, self.calls = model, calls
        self.case_shapes = [tuple(x.shape[1:]) for x in example]  # what the calls' reshapes were found on

    def fits(self, xs: tuple) -> bool:
        """Inputs of the example's shape (a case's shape decides how a call reshapes it)."""
        return len(xs) == len(self.case_shapes) and all(
            isinstance(x, torch.Tensor) and tuple(x.shape[1:]) == s for x, s in zip(xs, self.case_shapes))

    @classmethod
    def find(cls, model: nn.Module, example: tuple | None) -> LinearStem | None:
        """The model's stem, found and checked on one case's inputs; None where there is none or the model reads its
        inputs otherwise."""
        if example is None:
            return None
        example = tuple(t.detach() for t in example)
        try:
            calls = cls._calls(model, example)
            stem = cls(model, calls, example) if calls else None
            return stem if stem is not None and stem._check(example) else None
        except Exception as err:  # any model this cannot follow runs without the stem
            log.debug("no linear stem: %s: %s", type(err).__name__, err)
            return None

    @staticmethod
    def _calls(model: nn.Module, xs: tuple) -> list[StemCall]:
        found = []

        def pre(module, args):
            for j, x in enumerate(xs):
                if args and _view_of(args[0], x):
                    t = args[0]
                    found.append(StemCall(module, j, t.shape[0] // x.shape[0], tuple(t.shape[1:])))
                    return

        handles = [m.register_forward_pre_hook(pre) for m in model.modules() if isinstance(m, LINEAR)]
        try:
            with torch.no_grad():
                model(*xs)
        finally:
            for h in handles:
                h.remove()
        return found

    def _check(self, xs: tuple) -> bool:
        """On three points of the ray a * x, the logits through the stem equal the model's, and so does the input
        gradient of their sum (taken as the methods take it: the stem's outputs as leaves, then stem^T)."""
        alphas = (1.0, 0.375, 0.0)
        with torch.enable_grad():
            points = tuple(torch.cat([a * x for a in alphas]).requires_grad_() for x in xs)
            direct = self.model(*points)
            if direct.dim() != 2:  # the methods select a class per row of 2-D logits
                return False
            grad_direct = torch.autograd.grad(direct.sum(), points, allow_unused=True)
            leaves = tuple(x.detach().requires_grad_() for x in xs)
            u = self.without_bias(leaves)
            outs = []
            for call, ui in zip(self.calls, u):
                b, ud = call.bias(ui), ui.detach()
                outs.append(torch.cat([ud * a if b is None else torch.add(b, ud, alpha=a) for a in alphas])
                            .requires_grad_())
            through = self.forward(xs, outs, len(alphas))
            g = torch.autograd.grad(through.sum(), outs, allow_unused=True)
            sums = [torch.zeros_like(o[:ui.shape[0]]) if gi is None else gi.unflatten(0, (len(alphas), -1)).sum(0)
                    for o, ui, gi in zip(outs, u, g)]
            grad_through = torch.autograd.grad(u, leaves, grad_outputs=sums, allow_unused=True)
        direct, through = direct.detach(), through.detach()
        scale = float(direct.abs().max().clamp(min=1.0))
        if not (bool(torch.isfinite(through).all()) and torch.allclose(through, direct, rtol=1e-4, atol=1e-5 * scale)):
            return False
        for gd, gt, x in zip(grad_direct, grad_through, xs):
            gd = torch.zeros((len(alphas), *x.shape[1:]), dtype=x.dtype, device=x.device) if gd is None else gd
            gd = gd.unflatten(0, (len(alphas), -1)).sum(0)  # the points' gradients summed, as the stem's were
            gt = torch.zeros_like(x) if gt is None else gt
            if not torch.allclose(gt, gd, rtol=1e-4, atol=1e-5 * float(gd.abs().max().clamp(min=1e-30))):
                return False
        return True

    def without_bias(self, xs: tuple) -> list[torch.Tensor]:
        """Each call's output for the inputs xs (cases first), without the bias."""
        return [call.without_bias(xs[call.index]) for call in self.calls]

    def on_ray(self, xs: tuple, baselines: tuple) -> tuple[tuple, list[torch.Tensor], list]:
        """The ray b + a(x - b) in the stem's output: the differences x - b as leaves (captum's `input - baseline`),
        each call's stem(x - b) without bias (its graph back to them) and its start stem(b) + bias (None for a zero
        baseline where the layer has no bias). `baselines`: per input, a number or a tensor broadcastable to it."""
        with torch.enable_grad():
            diffs = tuple((x - b).detach().requires_grad_() for x, b in zip(xs, baselines))
            u = self.without_bias(diffs)
        starts = []
        with torch.no_grad():
            for call, ui in zip(self.calls, u):
                b = baselines[call.index]
                start = None if isinstance(b, (int, float)) and b == 0 else call.without_bias(
                    torch.as_tensor(b, dtype=ui.dtype, device=ui.device).expand_as(xs[call.index]).contiguous())
                bias = call.bias(ui)
                starts.append(start if bias is None else bias if start is None else start.add_(bias))
        return diffs, u, starts

    @staticmethod
    def input_gradients(u: list[torch.Tensor], diffs: tuple, sums: list[torch.Tensor]) -> tuple:
        """stem^T of each call's summed output gradients, per input (zeros for an input no call reads)."""
        total = torch.autograd.grad(u, diffs, grad_outputs=sums, allow_unused=True)
        return tuple(torch.zeros_like(d) if t is None else t for d, t in zip(diffs, total))

    def forward(self, xs: tuple, outputs: list[torch.Tensor], copies: int) -> torch.Tensor:
        """The model on `copies` x the cases of xs, each stem call returning its given output (in call order) instead
        of computing it; the model's inputs are NaN, so an input read anywhere else shows in the logits."""
        queue = iter(outputs)
        patched = {id(c.module): c.module for c in self.calls}
        own = {k: m.__dict__.get("forward") for k, m in patched.items()}  # a forward set on the instance, kept

        def returns_next(*_args, **_kwargs):
            return next(queue)

        for m in patched.values():
            m.forward = returns_next
        try:
            dummy = tuple(torch.full((), math.nan, dtype=x.dtype, device=x.device).expand(copies * x.shape[0],
                                                                                         *x.shape[1:]) for x in xs)
            return self.model(*dummy)
        finally:
            for k, m in patched.items():
                if own[k] is None:
                    del m.forward
                else:
                    m.forward = own[k]
