"""GradientShap for a batch of cases, each with its own seed: captum draws a case's samples from numpy's and torch's
global generators, so clinxai called it one case at a time — five samples per forward + backward pass, where a small
model needs larger batches to fill the CPU. This class makes each case's draws exactly as captum would for that case
alone (after seeding with the case's seed), then evaluates several cases' samples per pass. Without noise (stdevs 0,
the pipeline's) a sample is b + a(x - b), linear in the input, so where the model has a linear stem
(clinxai.attribution.linear_stem) the stem's forward and input gradient run once per case instead of once per sample,
as in clinxai's IntegratedGradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .explain import seed_globals
from .linear_stem import LinearStem, empty_rows
from .smooth_grad import captum_noise


class GradientShap:
    """captum's GradientShap (SmoothGrad over InputBaselineXGradient, a baseline drawn per sample) on a batch of
    cases. `baselines` hold one row per case (that case's baseline distribution of one) or rows shared by every case;
    `case_seeds` seed each case's draws; `samples_per_pass` caps the samples of one forward + backward pass (whole
    cases per pass, all of a case's samples in one, as in captum's call)."""

    implementation = "clinxai, cases batched with per-case seeds"  # an instance's: what computed its last call's maps
    THROUGH_STEM = f"{implementation}, linear stem once per case"
    seeds_per_case = True
    batch_key = "internal_batch_size"  # heatmaps.batching: samples per pass

    def __init__(self, model: nn.Module):
        self.model = model
        self.stem: LinearStem | None = None

    def prepare_for_inputs(self, example: tuple | None) -> None:
        """Find the model's linear stem on one case's inputs (explain calls this once per model and method)."""
        if example is not None:
            self.stem = LinearStem.find(self.model, example)
            if self.stem is not None:
                self.implementation = self.THROUGH_STEM

    def attribute(self, inputs, target, baselines, n_samples: int = 5, stdevs: float = 0.0, case_seeds=None,
                  samples_per_pass: int | None = None):
        single = isinstance(inputs, torch.Tensor)
        inputs = (inputs,) if single else tuple(inputs)
        baselines = (baselines,) if isinstance(baselines, torch.Tensor) else tuple(baselines)
        n_cases = inputs[0].shape[0]
        if case_seeds is None or len(case_seeds) != n_cases:
            raise ValueError(f"GradientShap needs one seed per case: {n_cases} cases, seeds {case_seeds}")
        per_case = [b.shape[0] == n_cases for b in baselines]
        if any(b.shape[0] not in (1, n_cases) for b in baselines):
            raise ValueError(f"GradientShap baselines need 1 or {n_cases} rows (one per case): "
                             f"{[b.shape[0] for b in baselines]}")
        stdevs = tuple(stdevs) if isinstance(stdevs, (tuple, list)) else (stdevs,) * len(inputs)
        if len(stdevs) != len(inputs):
            raise ValueError(f"GradientShap stdevs {stdevs}: one deviation, or one per input ({len(inputs)})")
        target = torch.as_tensor(target, device=inputs[0].device).reshape(-1).expand(n_cases)

        # captum's order per case: a baseline index per sample for each input (numpy), the noise for each input
        # (torch), the interpolation points (numpy). The numpy draws are made here; torch's, which nothing else in
        # the call draws from, per pass (so that no case's noise is held longer than its pass), reseeded per case.
        # A deviation of 0 draws zeros that still advance the generator: drawn up to the last non-zero one, none
        # after it (then an input keeps the sign of a zero that captum's + 0 noise would make positive).
        rows, alphas = [], []
        for i, s in enumerate(case_seeds):
            seed_globals(int(s))  # as explain seeds a case's own call
            rows.append([torch.as_tensor(np.random.choice(1 if own else b.shape[0], n_samples)) + (i if own else 0)
                         for b, own in zip(baselines, per_case)])
            alphas.append(torch.tensor(np.random.uniform(0.0, 1.0, n_samples), dtype=inputs[0].dtype))
        drawn = max((k + 1 for k, sd in enumerate(stdevs) if sd), default=0)  # inputs whose noise is drawn

        per_pass = max(1, (samples_per_pass or n_samples) // n_samples)  # whole cases per pass
        if self.stem is not None:
            self.implementation = GradientShap.implementation if drawn or not self.stem.fits(inputs) \
                else self.THROUGH_STEM
        if self.implementation == self.THROUGH_STEM:
            base = [b.index_select(0, torch.stack([rows[i][k][0] for i in range(n_cases)]).to(b.device))
                    for k, b in enumerate(baselines)]  # a case's samples all draw its one baseline row
            out = self._through_stem(inputs, base, alphas, target, n_samples, per_pass)
            return out[0] if single else out
        out = [torch.empty_like(x) for x in inputs]
        for start in range(0, n_cases, per_pass):
            cases = range(start, min(start + per_pass, n_cases))
            ci = torch.arange(start, cases.stop, device=inputs[0].device).repeat_interleave(n_samples)
            noisy = [x.index_select(0, ci) for x in inputs]
            noise = [[] for _ in range(drawn)]
            for i in cases if drawn else ():
                torch.manual_seed(int(case_seeds[i]))
                for k in range(drawn):
                    x = inputs[k]
                    noise[k].append(captum_noise((n_samples, *x.shape[1:]), stdevs[k], x.device))
            for k in range(drawn):
                noisy[k] = noisy[k] + torch.cat(noise[k])
            del noise
            base = [b.index_select(0, torch.cat([rows[i][k] for i in cases]).to(b.device))
                    for k, b in enumerate(baselines)]
            a = torch.cat([alphas[i] for i in cases]).to(inputs[0].device)
            shaped = [a.view(-1, *[1] * (x.dim() - 1)) for x in noisy]
            scaled = tuple((c * x + (1.0 - c) * b).requires_grad_() for c, x, b in zip(shaped, noisy, base))
            with torch.enable_grad():
                chosen = self.model(*scaled).gather(1, target.index_select(0, ci)[:, None])
                grads = torch.autograd.grad(torch.unbind(chosen), scaled)
            for k, (x, b, g) in enumerate(zip(noisy, base, grads)):
                attr = (x - b) * g
                out[k][start:cases.stop] = attr.view(len(cases), n_samples, *attr.shape[1:]).sum(dim=1) * 1 / n_samples
        return out[0] if single else tuple(out)

    def _through_stem(self, inputs, base, alphas, target, n_samples: int, per_pass: int) -> tuple:
        """The samples b + c (x - b) through the stem: stem(b) + bias + c stem(x - b), from one stem pass of the
        cases' differences from their baselines and one of the baselines; the input gradient as stem^T of the sum of
        a case's samples' gradients, times (x - b) / n_samples (captum's mean of the samples' gradient x (x - b))."""
        n, device = inputs[0].shape[0], inputs[0].device
        # a sample's stem output is start + c * step: stem(b) + bias + c * stem(x - b); no more than three
        # stem-output-sized tensors per call (steps, starts, sums)
        diffs, u, starts = self.stem.on_ray(inputs, base)
        steps = [t.detach() for t in u]
        sums = [torch.zeros_like(t) for t in steps]
        for start in range(0, n, per_pass):
            stop = min(start + per_pass, n)
            ci = torch.arange(start, stop, device=device).repeat_interleave(n_samples)
            z = []  # rows (case, sample, stem row), written in place: no temporaries of the stem output's size
            for call, first, step in zip(self.stem.calls, starts, steps):
                m = call.rows_per_case  # stem rows per model input row
                zi = empty_rows(step, (stop - start) * n_samples * m)
                for r, i in enumerate(range(start, stop)):
                    for k, c in enumerate(alphas[i].tolist()):
                        row = (r * n_samples + k) * m
                        torch.add(first[i * m:(i + 1) * m], step[i * m:(i + 1) * m], alpha=c, out=zi[row:row + m])
                z.append(zi.requires_grad_())
            with torch.enable_grad():
                logits = self.stem.forward(tuple(x[start:stop] for x in inputs), z, n_samples)
                chosen = logits.gather(1, target.index_select(0, ci)[:, None])
                grads = torch.autograd.grad(torch.unbind(chosen), z, allow_unused=True)
            for call, total, g in zip(self.stem.calls, sums, grads):
                if g is None:  # a stem call whose output the logits do not use
                    continue
                m = call.rows_per_case
                for r, i in enumerate(range(start, stop)):  # a case's samples' gradients summed
                    torch.sum(g[r * n_samples * m:(r + 1) * n_samples * m].unflatten(0, (n_samples, m)), dim=0,
                              out=total[i * m:(i + 1) * m])
            del z, grads, chosen, logits
        total = self.stem.input_gradients(u, diffs, sums)
        return tuple(d.detach() * t * 1 / n_samples for d, t in zip(diffs, total))  # captum's order
