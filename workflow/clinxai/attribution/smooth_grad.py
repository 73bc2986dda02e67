"""SmoothGrad for a batch of cases, each with its own seed: captum's NoiseTunnel draws a case's noise from torch's
global generator, so clinxai called it one case at a time — ten noisy copies per forward + backward pass, where the
demo's small models need larger batches to fill the CPU. This class draws each case's noise exactly as captum's
NoiseTunnel(Saliency) would for that case alone (after seeding with the case's seed), then evaluates several cases'
noisy copies per pass."""

from __future__ import annotations

import math

import torch

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def captum_noise(shape: tuple, sd: float, device) -> torch.Tensor:
    """The noise captum's NoiseTunnel draws, `torch.normal(0, a tensor of the deviation repeated to shape)`, from
    torch's generator. `normal_` on an empty tensor draws the same numbers in half the time (7.8 against 15.3 ms for
    a glioma demo case's ten copies) where the CPU kernel's vectorised path runs, from 16 elements; below that its
    scalar path multiplies in double (one ulp apart), so captum's own call is made there."""
    if math.prod(shape) < 16:
        return torch.normal(0, torch.tensor(sd, device=device).repeat(shape))
    return torch.empty(shape, device=device).normal_(0, sd)


def plan_passes(n_cases: int, n_samples: int, samples_per_pass: int | None) -> list[list[tuple[int, int]]]:
    """Each pass as (case, samples) chunks. A pass that holds a case's samples holds whole cases; a smaller one
    splits each case's samples as captum's `nt_samples_batch_size` does (full partitions, then the remainder), so
    that a case's noise is drawn in captum's order."""
    per_pass = samples_per_pass or n_samples
    if per_pass >= n_samples:
        step = per_pass // n_samples
        return [[(i, n_samples) for i in range(s, min(s + step, n_cases))] for s in range(0, n_cases, step)]
    sizes = [per_pass] * (n_samples // per_pass) + ([n_samples % per_pass] if n_samples % per_pass else [])
    return [[(i, k)] for i in range(n_cases) for k in sizes]


class SmoothGrad:
    """captum's NoiseTunnel(Saliency) on a batch of cases: built like it, on the Saliency object; `case_seeds` seed
    each case's draws; `samples_per_pass` caps the noisy copies of one forward + backward pass."""

    implementation = "clinxai, cases batched with per-case seeds"
    seeds_per_case = True
    batch_key = "nt_samples_batch_size"  # heatmaps.batching: noisy copies per pass

    def __init__(self, saliency):
        self.model = saliency.forward_func

    def attribute(self, inputs, target, nt_type: str = "smoothgrad", nt_samples: int = 5, stdevs=1.0,
                  case_seeds=None, samples_per_pass: int | None = None, abs: bool = True):
        single = isinstance(inputs, torch.Tensor)
        inputs = (inputs,) if single else tuple(inputs)
        n_cases = inputs[0].shape[0]
        if case_seeds is None or len(case_seeds) != n_cases:
            raise ValueError(f"SmoothGrad needs one seed per case: {n_cases} cases, seeds {case_seeds}")
        if nt_type not in NT_TYPES:
            raise ValueError(f"SmoothGrad nt_type {nt_type!r}: one of {', '.join(NT_TYPES)}")
        stdevs = tuple(stdevs) if isinstance(stdevs, (tuple, list)) else (float(stdevs),) * len(inputs)
        if len(stdevs) != len(inputs):
            raise ValueError(f"SmoothGrad stdevs {stdevs}: one deviation, or one per input ({len(inputs)})")
        target = torch.as_tensor(target, device=inputs[0].device).reshape(-1).expand(n_cases)

        sums = [[None] * n_cases for _ in inputs]
        squares = [[None] * n_cases for _ in inputs]
        seeded = set()
        for chunks in plan_passes(n_cases, nt_samples, samples_per_pass):
            noisy = [[] for _ in inputs]
            for i, k in chunks:
                if i not in seeded:  # a case's first draw; its later partitions continue its stream, as in captum
                    torch.manual_seed(int(case_seeds[i]))
                    seeded.add(i)
                for j, (x, sd) in enumerate(zip(inputs, stdevs)):  # every input draws, a deviation of 0 too
                    noise = captum_noise((k, *x.shape[1:]), sd, x.device)
                    case = x[i:i + 1]
                    noisy[j].append(noise.add_(case) if case.dtype == noise.dtype else case + noise)  # as captum
            noisy = tuple(torch.cat(parts).requires_grad_() for parts in noisy)
            ci = torch.tensor([i for i, k in chunks for _ in range(k)], device=inputs[0].device)
            with torch.enable_grad():
                chosen = self.model(*noisy).gather(1, target.index_select(0, ci)[:, None])
                grads = torch.autograd.grad(torch.unbind(chosen), noisy)
            del noisy
            k = chunks[0][1]  # a pass's chunks have one size: whole cases, or one partition of one case
            for j, g in enumerate(grads):
                attr = (torch.abs(g) if abs else g).view(len(chunks), k, *g.shape[1:])
                part = attr.sum(dim=1)
                part_sq = torch.sum(torch.pow(attr, 2), dim=1) if nt_type != "smoothgrad" else None  # unused there
                for c, (i, _) in enumerate(chunks):
                    sums[j][i] = part[c] if sums[j][i] is None else sums[j][i] + part[c]
                    if part_sq is not None:
                        squares[j][i] = part_sq[c] if squares[j][i] is None else squares[j][i] + part_sq[c]

        out = []
        for s, sq in zip(sums, squares):
            mean = torch.stack(s) * 1 / nt_samples  # captum's order of operations
            if nt_type == "smoothgrad":
                out.append(mean)
                continue
            mean_sq = torch.stack(sq) * 1 / nt_samples
            out.append(mean_sq if nt_type == "smoothgrad_sq" else mean_sq - mean * mean)
        return out[0] if single else tuple(out)
