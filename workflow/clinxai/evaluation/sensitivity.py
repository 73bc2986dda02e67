"""Sensitivity of a method's maps (issue 19; started: not wired into rules yet): input sensitivity under MRI scanner
shifts (seed 001 §5.1.3) and model sensitivity by cascading randomisation (Adebayo et al. 2018). The similarity
formulas are in clinxai.metrics.similarity.

`explain_fn(model, x) -> parts` is any map of one case (per-modality arrays) -- a captum method through
clinxai.attribution.explain, or in the tests a map that ignores the model -- post-processed as every metric's maps are.
Still to come (see the issue): the spatial shift with its inverse (RandAffine), label sensitivity, determinism and
hyperparameter grids as stage runners, and the rules, statistics and report around them.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..metrics.similarity import relative_change, spearman, ssim, top_iou

SHIFTS = ("bias_field", "rician_noise", "gibbs", "contrast")  # intensity shifts; strengths from config


def shift_transform(name: str, strength: float):
    """The MONAI transform of a scanner shift at a strength: bias field coefficients up to s, Rician noise of std s
    relative to the image's intensity spread, Gibbs ringing of k-space truncation s, gamma in [1 − s, 1 + s]."""
    from monai import transforms as mt

    make = {"bias_field": lambda s: mt.RandBiasField(coeff_range=(0.0, s), prob=1.0),
            # relative to the image's intensity spread (MONAI's channel_wise with one std leaves the image as it is)
            "rician_noise": lambda s: mt.RandRicianNoise(std=s, prob=1.0, relative=True, sample_std=False),
            "gibbs": lambda s: mt.RandGibbsNoise(alpha=(s, s), prob=1.0),
            "contrast": lambda s: mt.RandAdjustContrast(gamma=(1.0 - s, 1.0 + s), prob=1.0, retain_stats=True)}
    return make[name](strength)


def shifted(x: tuple, name: str, strength: float, seed: int) -> tuple:
    """One seeded draw of a scanner shift applied to each input tensor (1 x C x ... -> the same shape)."""
    transform = shift_transform(name, strength)
    transform.set_random_state(seed=seed)
    return tuple(torch.as_tensor(np.asarray(transform(t[0].numpy())), dtype=t.dtype)[None] for t in x)


def similarity_row(original, other, seed: int = 0, key: str = "") -> dict:
    return {"spearman": spearman(original, other), "top10_iou": top_iou(original, other, 0.1, seed, key),
            "ssim": ssim(original, other), "relative_change": relative_change(original, other)}


def input_sensitivity(model: nn.Module, explain_fn, x: tuple, shifts: dict, draws: int, seed: int = 0,
                      key: str = "") -> list[dict]:
    """Per (shift, draw): whether the shift flipped the predicted class, and -- for draws that did not -- the
    similarity of the shifted input's map to the original's. `shifts`: name -> strength."""
    model = model.eval()
    with torch.no_grad():
        pred = int(model(*x).argmax(1))
    original = explain_fn(model, x)
    rows = []
    for name, strength in shifts.items():
        for d in range(draws):
            xs = shifted(x, name, strength, seed * 1000 + d)
            with torch.no_grad():
                flipped = int(model(*xs).argmax(1)) != pred
            row = {"shift": name, "strength": strength, "draw": d, "flipped": flipped}
            if not flipped:
                row.update(similarity_row(original, explain_fn(model, xs), seed, f"{key}/{name}/{d}"))
            rows.append(row)
    return rows


def parameter_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules with parameters of their own and an initialiser, input to output (module order)."""
    return [(n, m) for n, m in model.named_modules()
            if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))]


def cascading_randomisation(model: nn.Module, explain_fn, x: tuple, seed: int = 0, key: str = "",
                            depths: int | None = None) -> list[dict]:
    """Adebayo et al.'s cascade: re-initialise the layers from the output down, one more at each depth (each with its
    own initialiser, seeded per depth), recompute the map and compare it with the original's."""
    original = explain_fn(model.eval(), x)
    randomised = copy.deepcopy(model).eval()
    layers = parameter_layers(randomised)[::-1]
    rows = []
    for depth, (name, layer) in enumerate(layers[:depths] if depths else layers, start=1):
        torch.manual_seed(seed * 1000 + depth)
        layer.reset_parameters()
        rows.append({"depth": depth, "layer": name, **similarity_row(original, explain_fn(randomised, x), seed,
                                                                    f"{key}/{depth}")})
    return rows
