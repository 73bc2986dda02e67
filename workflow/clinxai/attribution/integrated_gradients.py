"""IntegratedGradients through the model's linear stem: below the pass limit, the same maps as captum's.

captum evaluates the model on every point b + a(x - b) of the path (n_steps forward + backward passes per case).
A network's first layer — a convolution or linear layer that reads the input — is linear, so on the path its output
is stem(b) + a * stem_without_bias(x - b): computed once per case, each step's stem output is an add and a multiply.
The step sizes w_k weight the steps' gradients, and the gradient through a linear layer is linear too, so the input
gradient sum_k w_k stem^T(g_k) is stem^T(sum_k w_k g_k): one transposed pass per case instead of one per step. At the
demo's sizes the first convolution and its input gradient are 42 % of a glioma forward + backward pass, 49 % of a knee
one and 24 % of the synthetic DenseNet's, all but one n_steps-th of which this saves. The maps equal captum's up to
float rounding (the sums are taken in the stem's output instead of the input; tests/test_integrated_gradients.py).
Where the model has no such stem (clinxai.attribution.linear_stem), the inputs are not of the shape the stem was
found on, no target is given, extra forward arguments are given or a convergence delta is asked for, captum's
IntegratedGradients runs, and `implementation` says which one computed the last call's maps.
"""

from __future__ import annotations

import torch
from torch import nn

from .linear_stem import LinearStem, empty_rows


class IntegratedGradients:
    """captum's IntegratedGradients (attribute's arguments, gausslegendre or any of captum's approximations,
    internal_batch_size) with the stem's forward and backward run once per case."""

    THROUGH_STEM = "clinxai, linear stem once per case"

    def __init__(self, model: nn.Module):
        import captum.attr as ca

        self.model = model
        self.captum = ca.IntegratedGradients(model)
        self.stem: LinearStem | None = None
        self.implementation = "captum"  # what computed the last call's maps

    def prepare_for_inputs(self, example: tuple | None) -> None:
        """Find the stem on one case's inputs (explain calls this once per model and method)."""
        if example is not None:
            self.stem = LinearStem.find(self.model, example)
            self.implementation = self.THROUGH_STEM if self.stem else "captum (no linear stem)"

    def attribute(self, inputs, baselines=None, target=None, additional_forward_args=None, n_steps: int = 50,
                  method: str = "gausslegendre", internal_batch_size: int | None = None,
                  return_convergence_delta: bool = False):
        from captum._utils.common import _format_output, _is_tuple
        from captum.attr._utils.approximation_methods import approximation_parameters
        from captum.attr._utils.common import _format_input_baseline, _validate_input

        is_tuple = _is_tuple(inputs)
        xs, bs = _format_input_baseline(inputs, baselines)
        if (self.stem is None or not self.stem.fits(xs) or target is None or additional_forward_args is not None
                or return_convergence_delta):  # what the stem path does not cover: captum's (it decides on target)
            self.implementation = "captum" if self.stem is not None else self.implementation
            return self.captum.attribute(inputs, baselines=baselines, target=target,
                                         additional_forward_args=additional_forward_args, n_steps=n_steps,
                                         method=method, internal_batch_size=internal_batch_size,
                                         return_convergence_delta=return_convergence_delta)
        self.implementation = self.THROUGH_STEM
        _validate_input(xs, bs, n_steps, method)
        step_sizes_func, alphas_func = approximation_parameters(method)
        step_sizes, alphas = step_sizes_func(n_steps), alphas_func(n_steps)
        n, device = xs[0].shape[0], xs[0].device
        per_pass = n_steps if internal_batch_size is None else max(1, internal_batch_size // n)  # captum's steps
        target = torch.as_tensor(target, device=device).reshape(-1).expand(n)

        diffs, u, starts = self.stem.on_ray(xs, bs)
        ud = [t.detach() for t in u]
        sums = [torch.zeros_like(t) for t in ud]
        for first in range(0, n_steps, per_pass):
            a, w = alphas[first:first + per_pass], step_sizes[first:first + per_pass]
            k = len(a)
            z = []  # the steps' stem outputs written in place: no temporaries (at 4 x 128^3 one is 134 MB)
            for ui, s in zip(ud, starts):
                zi, rows = empty_rows(ui, k * ui.shape[0]), ui.shape[0]
                for j, ak in enumerate(a):
                    torch.mul(ui, ak, out=zi[j * rows:(j + 1) * rows]) if s is None else \
                        torch.add(s, ui, alpha=ak, out=zi[j * rows:(j + 1) * rows])
                z.append(zi.requires_grad_())
            with torch.enable_grad():
                chosen = self.stem.forward(xs, z, k).gather(1, target.repeat(k)[:, None])
                grads = torch.autograd.grad(torch.unbind(chosen), z, allow_unused=True)
            weights = torch.tensor(w).float().tolist()  # captum's float32 step sizes
            for total, g in zip(sums, grads):
                if g is None:  # a stem call whose output the logits do not use
                    continue
                rows = total.shape[0]
                for j, wj in enumerate(weights):
                    total.add_(g[j * rows:(j + 1) * rows], alpha=wj)
            del z, grads, chosen
        total = self.stem.input_gradients(u, diffs, sums)
        return _format_output(is_tuple, tuple(t * d.detach() for t, d in zip(total, diffs)))  # captum's order
