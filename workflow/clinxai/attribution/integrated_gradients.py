"""IntegratedGradients through the model's linear stem: below the pass limit, the same maps as captum's.

captum evaluates the model on every point b + a(x - b) of the path (n_steps forward + backward passes per case).
A network's first layer — a convolution or linear layer that reads the input — is linear, so on the path its output
is stem(b) + a * stem_nobias(x - b): computed once per case, each step's stem output is an add and a multiply. The
step sizes w_k weight the steps' gradients, and the gradient through a linear layer is linear too, so the input
gradient sum_k w_k stem^T(g_k) is stem^T(sum_k w_k g_k): one transposed pass per case instead of one per step. At the
demo's sizes the first convolution and its gradient are about 40 % of a glioma or knee pass (24 % for the synthetic
DenseNet), all but one n_steps-th of which this saves. The maps equal captum's up to float rounding (the sums are
taken in the stem's output instead of the input; tests/test_integrated_gradients.py).

A stem is a call of a convolution or linear layer whose input is one of the model's inputs or a contiguous view of
it (the knee network's encoders reshape a view's slices into a batch). `prepare` finds the stems on one case and
checks that the model's output depends on its inputs through them alone (the model's input is NaN in the substituted
pass, and its logits must equal the model's own); where it does not (no linear first layer, an input read twice,
extra forward arguments, a convergence delta asked for) captum's IntegratedGradients runs instead, and
`implementation` says which one did.
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


class _Stem:
    """One call of a linear layer on input `index` (reshaped to `rows_per_case` rows per case x `shape`)."""

    def __init__(self, module: nn.Module, index: int, rows_per_case: int, shape: tuple):
        self.module, self.index, self.rows_per_case, self.shape = module, index, rows_per_case, shape

    def without_bias(self, x: torch.Tensor) -> torch.Tensor:
        return _without_bias(self.module, x.reshape(x.shape[0] * self.rows_per_case, *self.shape))

    def bias(self, out: torch.Tensor) -> torch.Tensor | None:
        b = self.module.bias
        return None if b is None else b.view(-1, *[1] * (out.dim() - 2)) if out.dim() > 2 else b


class IntegratedGradients:
    """captum's IntegratedGradients (attribute's arguments, gausslegendre or any of captum's approximations,
    internal_batch_size) with the stem's forward and backward run once per case."""

    batch_key = "internal_batch_size"

    def __init__(self, model: nn.Module):
        import captum.attr as ca

        self.model = model
        self.captum = ca.IntegratedGradients(model)
        self.stems: list[_Stem] | None = None
        self.implementation = "captum"

    # ---- finding and checking the stems (once, on one case) ----
    def prepare(self, example: tuple | None) -> None:
        if example is None:
            return
        example = tuple(t.detach() for t in example)
        try:
            stems = self._find(example)
            ok = bool(stems) and self._check(example, stems)
        except Exception:  # any model this cannot follow runs captum's
            ok = False
        self.stems = stems if ok else None
        self.implementation = "clinxai, linear stem once per case" if ok else "captum (no linear stem)"

    def _find(self, xs: tuple) -> list[_Stem]:
        found = []

        def pre(module, args):
            for j, x in enumerate(xs):
                if args and _view_of(args[0], x):
                    t = args[0]
                    found.append(_Stem(module, j, t.shape[0] // x.shape[0], tuple(t.shape[1:])))
                    return

        handles = [m.register_forward_pre_hook(pre) for m in self.model.modules() if isinstance(m, LINEAR)]
        try:
            with torch.no_grad():
                self.model(*xs)
        finally:
            for h in handles:
                h.remove()
        return found

    def _check(self, xs: tuple, stems: list[_Stem]) -> bool:
        alphas = (1.0, 0.375)
        with torch.no_grad():
            direct = torch.cat([self.model(*(a * x for x in xs)) for a in alphas])
            outs = [s.without_bias(xs[s.index]) for s in stems]
            z = [self._path(o, None, s, alphas) for o, s in zip(outs, stems)]
            through = self._forward(stems, xs, z, len(alphas))
        scale = float(direct.abs().max().clamp(min=1.0))
        return bool(torch.isfinite(through).all()) and torch.allclose(through, direct, rtol=1e-4, atol=1e-5 * scale)

    # ---- the path through the stems ----
    def _path(self, u: torch.Tensor, c: torch.Tensor | None, stem: _Stem, alphas) -> torch.Tensor:
        """The stem's outputs at the path points of `alphas` (step-major, as captum orders them)."""
        b, start = stem.bias(u), c
        if b is not None:
            start = b if start is None else start + b
        parts = [u * a if start is None else torch.add(start, u, alpha=a) for a in alphas]
        return torch.cat(parts)

    def _forward(self, stems: list[_Stem], xs: tuple, outputs: list[torch.Tensor], n_steps: int) -> torch.Tensor:
        """The model on n_steps copies of the cases with each stem call returning its given output, in call order;
        the model's inputs are NaN, so an input read anywhere else shows in the logits."""
        queue = iter(outputs)
        patched = {id(s.module): s.module for s in stems}

        def returns_next(*_args, **_kwargs):
            return next(queue)

        for m in patched.values():
            m.forward = returns_next
        try:
            dummy = tuple(torch.full((), math.nan, dtype=x.dtype, device=x.device).expand(n_steps * x.shape[0],
                                                                                         *x.shape[1:]) for x in xs)
            return self.model(*dummy)
        finally:
            for m in patched.values():
                del m.forward

    # ---- attribute ----
    def attribute(self, inputs, baselines=None, target=None, additional_forward_args=None, n_steps: int = 50,
                  method: str = "gausslegendre", internal_batch_size: int | None = None,
                  return_convergence_delta: bool = False):
        if self.stems is None or additional_forward_args is not None or return_convergence_delta:
            return self.captum.attribute(inputs, baselines=baselines, target=target,
                                         additional_forward_args=additional_forward_args, n_steps=n_steps,
                                         method=method, internal_batch_size=internal_batch_size,
                                         return_convergence_delta=return_convergence_delta)
        from captum._utils.common import _format_output, _is_tuple
        from captum.attr._utils.approximation_methods import approximation_parameters
        from captum.attr._utils.common import _format_input_baseline, _validate_input

        is_tuple = _is_tuple(inputs)
        xs, bs = _format_input_baseline(inputs, baselines)
        _validate_input(xs, bs, n_steps, method)
        step_sizes_func, alphas_func = approximation_parameters(method)
        step_sizes, alphas = step_sizes_func(n_steps), alphas_func(n_steps)
        n = xs[0].shape[0]
        per_chunk = n_steps if internal_batch_size is None else max(1, internal_batch_size // n)
        device = xs[0].device
        target = torch.as_tensor(target if target is not None else 0, device=device).reshape(-1).expand(n)

        with torch.enable_grad():
            diffs = tuple((x - b).detach().requires_grad_() for x, b in zip(xs, bs))  # captum's (input - baseline)
            u = [s.without_bias(diffs[s.index]) for s in self.stems]
        with torch.no_grad():
            c = [None if isinstance(bs[s.index], (int, float)) and bs[s.index] == 0
                 else s.without_bias(torch.as_tensor(bs[s.index], dtype=xs[s.index].dtype, device=device)
                                     .expand_as(xs[s.index]).contiguous()) for s in self.stems]
        ud = [t.detach() for t in u]
        sums = [None] * len(self.stems)
        for start in range(0, n_steps, per_chunk):
            a, w = alphas[start:start + per_chunk], step_sizes[start:start + per_chunk]
            k = len(a)
            z = [self._path(ui, ci, s, a).requires_grad_() for ui, ci, s in zip(ud, c, self.stems)]
            with torch.enable_grad():
                logits = self._forward(self.stems, xs, z, k)
                chosen = logits.gather(1, target.repeat(k)[:, None])
                grads = torch.autograd.grad(torch.unbind(chosen), z)
            weights = torch.tensor(w).float().to(device)
            for i, g in enumerate(grads):
                g = g.unflatten(0, (k, -1))
                part = (g * weights.view(k, *[1] * (g.dim() - 1))).sum(0)
                sums[i] = part if sums[i] is None else sums[i] + part
            del z, grads, logits, chosen
        total = torch.autograd.grad(u, diffs, grad_outputs=sums, allow_unused=True)
        attributions = tuple(torch.zeros_like(d) if t is None else t * d.detach() for t, d in zip(total, diffs))
        return _format_output(is_tuple, attributions)
