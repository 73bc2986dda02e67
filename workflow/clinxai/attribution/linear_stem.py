"""A network's linear stem: the calls of a convolution or linear layer that read the model's inputs.

Gradient methods that evaluate the model on points linear in the input — IntegratedGradients' path b + a(x - b),
GradientShap's b + a(x - b) with a baseline drawn per sample — can evaluate the stem once per case and baseline
(stem(b + a(x - b)) = stem(b) + a * stem_without_bias(x - b)) and take the gradient through it once per case (the sum
over samples of stem^T(g) is stem^T of the sum). `LinearStem.find` finds the stem calls on one case (their input is a
model input, or a contiguous view of one whose rows are blocks of the input's rows, as the knee encoders' reshape of
a view's slices) and checks that the model reaches its output only through them: in the substituted pass the
model's inputs are NaN, and its logits must equal the model's own. None where a model reads its input otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

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
    size = (rows, *like.shape[1:])
    for fmt in (torch.channels_last, torch.channels_last_3d):
        if like.dim() == (4 if fmt is torch.channels_last else 5) and like.is_contiguous(memory_format=fmt) \
                and not like.is_contiguous():
            return torch.empty(size, dtype=like.dtype, device=like.device, memory_format=fmt)
    return torch.empty(size, dtype=like.dtype, device=like.device)


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
        return None if b is None else b.view(-1, *[1] * (out.dim() - 2)) if out.dim() > 2 else b


class LinearStem:
    """The stem calls of a model, in call order."""

    def __init__(self, model: nn.Module, calls: list[StemCall]):
        self.model, self.calls = model, calls

    @classmethod
    def find(cls, model: nn.Module, example: tuple | None) -> LinearStem | None:
        """The model's stem, found and checked on one case's inputs; None where there is none or the model reads its
        inputs otherwise."""
        if example is None:
            return None
        example = tuple(t.detach() for t in example)
        try:
            calls = cls._calls(model, example)
            stem = cls(model, calls) if calls else None
            return stem if stem is not None and stem._check(example) else None
        except Exception:  # any model this cannot follow runs without the stem
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
        """The model through the stem on two points of the ray a * x equals the model itself."""
        alphas = (1.0, 0.375)
        with torch.no_grad():
            direct = torch.cat([self.model(*(a * x for x in xs)) for a in alphas])
            outs = []
            for call in self.calls:
                u = call.without_bias(xs[call.index])
                b = call.bias(u)
                outs.append(torch.cat([u * a if b is None else torch.add(b, u, alpha=a) for a in alphas]))
            through = self.forward(xs, outs, len(alphas))
        scale = float(direct.abs().max().clamp(min=1.0))
        return bool(torch.isfinite(through).all()) and torch.allclose(through, direct, rtol=1e-4, atol=1e-5 * scale)

    def without_bias(self, xs: tuple) -> list[torch.Tensor]:
        """Each call's output for the inputs xs (cases first), without the bias."""
        return [call.without_bias(xs[call.index]) for call in self.calls]

    def forward(self, xs: tuple, outputs: list[torch.Tensor], copies: int) -> torch.Tensor:
        """The model on `copies` x the cases of xs, each stem call returning its given output (in call order) instead
        of computing it; the model's inputs are NaN, so an input read anywhere else shows in the logits."""
        queue = iter(outputs)
        patched = {id(c.module): c.module for c in self.calls}

        def returns_next(*_args, **_kwargs):
            return next(queue)

        for m in patched.values():
            m.forward = returns_next
        try:
            dummy = tuple(torch.full((), math.nan, dtype=x.dtype, device=x.device).expand(copies * x.shape[0],
                                                                                         *x.shape[1:]) for x in xs)
            return self.model(*dummy)
        finally:
            for m in patched.values():
                del m.forward
