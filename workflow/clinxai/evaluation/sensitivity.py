"""The sensitivity stage (issue 19, torch): how a method's maps respond to what should and should not change them.

Per model, method and case (a subset of the test set, both classes), every map post-processed as every metric's:
- input: scanner shifts (seed 001 §5.1.3) -- MONAI's bias field and Rician noise (on the magnitude image: the inputs
  are z-scored), Gibbs ringing, contrast, and a small rigid move (RandAffine; the moved input's map is moved back
  with the inverse transform and compared where both maps exist) -- K seeded draws each; a draw that flips the
  predicted class is recorded (a finding about the model) and not compared; the others give Spearman, top-10 % IoU
  and SSIM against the original map;
- max_sensitivity: Quantus 0.6 / Yeh et al. 2019 -- N draws of per-voxel uniform noise in ±r, the largest relative
  change of the raw map (the one score on raw maps: Quantus and LATEC do not post-process);
- model: Adebayo et al. 2018's cascading randomisation, layers re-initialised from the output down;
- data: the map of a model trained on permuted labels (when one is given);
- label: the map of the runner-up class (the other class of a binary task) against the predicted class's; where the
  two logits are ±z/2 of one output, a map linear in the output is the exact negative (`negated`): a property of the
  model, recorded, not a score of the method;
- determinism: R repeats with other seeds for a sampled method (mean pairwise Spearman, per-voxel CV); a
  deterministic method is recomputed once and must be bit-identical;
- hyperparameters: the registry's grid, one hyperparameter at a time, against the reference setting (and, where
  configured, ΔAUPC of each setting on the same cases: its spread);
- minimality (clinxai.metrics.minimality) of the original maps.
Draws are seeded per (model, case, shift, draw) -- the same for every method -- and a sampled method keeps its
per-case seed, so what changes between two maps is the input, the model, the class or the setting, not the draw.
"""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..analysis.sensitivity import better
from ..attribution.explain import case_seed, explain
from ..attribution.grid import REFERENCE, grid_settings
from ..attribution.registry import METHODS
from ..attribution.supervoxels import compute_masks
from ..inference import FlatLayout, Predictor, resolve_device
from ..io import save_csv
from ..metrics.minimality import MINIMALITY
from ..metrics.removal import delta_aupc
from ..metrics.similarity import max_sensitivity as max_change
from ..metrics.similarity import mean_pairwise_spearman, relative_change, spearman, ssim, top_iou, voxel_cv
from ..models import MODEL_FAMILIES, load_checkpoint
from ..progress import Progress
from ..runtime import use_threads
from ..tasks import VIEWS, TaskKind
from .perturbation import removal_curves
from .truthfulness import case_subset, processed_map, test_set

log = logging.getLogger("clinxai.sensitivity")
SHIFTS = ("bias_field", "rician_noise", "gibbs", "contrast")  # intensity shifts; strengths from config
# Shifts of the magnitude image: the inputs are z-scored (negative values), so these act on each channel minus its
# minimum and the minimum is added back -- Rician noise sqrt((x + n1)² + n2²) of a negative value would flip its sign.
MAGNITUDE = ("bias_field", "rician_noise")
AFFINE = "affine"


# ---- the perturbations ----
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
    out = []
    for t in x:
        a = t[0].numpy()
        low = a.min(axis=tuple(range(1, a.ndim)), keepdims=True) if name in MAGNITUDE else 0.0
        out.append(torch.as_tensor(np.asarray(transform(a - low)) + low, dtype=t.dtype)[None])
    return tuple(out)


def _as_images(parts, x: tuple) -> list[np.ndarray]:
    """A map's parts as channel-first images, one per input tensor: the channels of a volume or slice stacked; a
    knee view (slices x H x W) as it is, its slices the channels of 2-D images."""
    return [np.stack(parts)] if len(x) == 1 else [np.asarray(p) for p in parts]


def _as_parts(images: list[np.ndarray], x: tuple) -> list[np.ndarray]:
    return list(images[0]) if len(x) == 1 else images


class RigidMove:
    """One seeded draw of MONAI's RandAffine per input tensor (translation up to `translate` voxels, rotation up to
    `rotate_deg` degrees about each axis), with the inverse that moves a map back and the voxels where a moved-back
    map is defined (inside the field of view after both moves). Voxels moved in from outside repeat the border
    (the inputs are z-scored: zero would be a bright edge); supervoxel masks move along (nearest neighbour)."""

    def __init__(self, x: tuple, translate: float, rotate_deg: float, seed: int):
        from monai.data import MetaTensor

        self.x, self.moves, self.moved, valid = x, [], [], []
        for k, t in enumerate(x):
            move, probe = (self._affine(t.dim() - 2, translate, rotate_deg, seed + k, pad) for pad in ("border", "zeros"))
            self.moved.append(move(MetaTensor(t[0].clone())))
            self.moves.append(move)
            # where the moved-back map exists: a map of ones on the moved grid moved back, zeros from outside
            probed = probe(MetaTensor(torch.ones(t.shape[1:])))
            ones = MetaTensor(torch.ones(t.shape[1:]), affine=probed.affine,
                              applied_operations=copy.deepcopy(probed.applied_operations))
            valid.append(np.asarray(probe.inverse(ones).as_tensor()) > 1 - 1e-3)
        self.inputs = tuple(torch.as_tensor(m.as_tensor(), dtype=t.dtype)[None] for m, t in zip(self.moved, x))
        self.valid = valid

    @staticmethod
    def _affine(spatial: int, translate: float, rotate_deg: float, seed: int, padding: str):
        from monai.transforms import RandAffine

        rot = math.radians(rotate_deg)
        move = RandAffine(prob=1.0, rotate_range=(rot,) * (3 if spatial == 3 else 1),
                          translate_range=(translate,) * spatial, padding_mode=padding, mode="bilinear")
        move.set_random_state(seed=seed)
        return move

    def back(self, parts) -> list[np.ndarray]:
        """A map of the moved input moved back onto the original grid (per modality)."""
        from monai.data import MetaTensor

        out = []
        for img, moved, move in zip(_as_images(parts, self.x), self.moved, self.moves):
            m = MetaTensor(torch.as_tensor(np.ascontiguousarray(img, dtype=np.float32)), affine=moved.affine,
                           applied_operations=copy.deepcopy(moved.applied_operations))
            out.append(move.inverse(m).as_tensor().numpy())
        return _as_parts(out, self.x)

    def valid_parts(self) -> list[np.ndarray]:
        return _as_parts(self.valid, self.x)

    def move_masks(self, masks):
        """A case's supervoxel mask(s) moved like the input: one C x spatial array, or one per knee view."""
        from monai.data import MetaTensor

        parts = masks if isinstance(masks, list) else [masks]
        out = [np.rint(np.asarray(move(MetaTensor(torch.as_tensor(np.asarray(m, np.float32))), mode="nearest",
                                       randomize=False).as_tensor())).astype(np.asarray(m).dtype)
               for m, move in zip(parts, self.moves)]
        return out if isinstance(masks, list) else out[0]


def uniform_noise(x: tuple, radius: float, seed: int) -> tuple:
    """x + δ, δ ~ U(−r, r) per voxel (Quantus 0.6's uniform_noise for max-sensitivity)."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(t + (2 * torch.rand(t.shape, generator=gen, dtype=t.dtype) - 1) * radius for t in x)


# ---- comparing maps ----
def similarity_row(original, other, seed: int = 0, key: str = "", valid=None) -> dict:
    """Spearman, top-10 % IoU, SSIM and relative change of two maps; `valid` (per-modality booleans) restricts the
    comparison to the voxels where both exist (SSIM: both set to 0 elsewhere)."""
    if valid is not None:
        flat_a = [np.asarray(p)[v] for p, v in zip(original, valid)]
        flat_b = [np.asarray(p)[v] for p, v in zip(other, valid)]
        images = ([np.where(v, p, 0) for p, v in zip(original, valid)],
                  [np.where(v, p, 0) for p, v in zip(other, valid)])
    else:
        flat_a, flat_b, images = original, other, (original, other)
    return {"spearman": spearman(flat_a, flat_b), "top10_iou": top_iou(flat_a, flat_b, 0.1, seed, key),
            "ssim": ssim(*images), "relative_change": relative_change(flat_a, flat_b)}


def predictions(model: nn.Module, xs: list[tuple], batch_size: int = 16) -> np.ndarray:
    """Logits (cases x classes) of a list of single-case (CPU) inputs, in batches, on the model's device."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(xs), batch_size):
            chunk = xs[i:i + batch_size]
            out.append(model(*[torch.cat(t).to(device) for t in zip(*chunk)]).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2))


def parameter_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules with parameters of their own and an initialiser, input to output (module order)."""
    return [(n, m) for n, m in model.named_modules()
            if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))]


def randomisation_depths(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The cascade's depths, output first: each convolution or linear layer with the normalisation layers that
    follow it, and the same layer of parallel branches (the entries of a ModuleList, e.g. the knee network's three
    view encoders) at one depth, named with `*` for the branch."""
    lists = {n for n, m in model.named_modules() if isinstance(m, nn.ModuleList)}
    units: list[tuple[str, list[nn.Module]]] = []
    for name, m in parameter_layers(model):
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) or not units:
            units.append((name, [m]))
        else:  # a normalisation layer goes with the weights before it
            units[-1][1].append(m)
    depths: dict[str, list[nn.Module]] = {}
    for name, modules in units:
        parts = name.split(".")
        key = ".".join("*" if k and ".".join(parts[:k]) in lists and p.isdigit() else p for k, p in enumerate(parts))
        depths.setdefault(key, []).extend(modules)
    return list(depths.items())[::-1]


def cascade(model: nn.Module, seed: int, depths: int | None = None):
    """Adebayo et al.'s cascade: yields (depth, layer name, model) with the depths from the output down
    re-initialised, one more at each depth, each layer by its own initialiser seeded per depth -- the same models
    for every method of a job."""
    randomised = copy.deepcopy(model).eval()
    levels = randomisation_depths(randomised)
    for depth, (name, modules) in enumerate(levels[:depths] if depths else levels, start=1):
        torch.manual_seed(seed * 1000 + depth)
        for m in modules:
            m.reset_parameters()
        yield depth, name, randomised


# ---- the measurements: `maps(model, xs, idx, targets=, seed=, overrides=, supervoxels=, moved=)` gives the
# post-processed maps of the job's cases `idx` for inputs `xs`, `maps.raw` the raw ones (CaseMaps) ----
def _rows(case, attribute, setting, draw, values: dict) -> list[dict]:
    return [{"case": case, "attribute": attribute, "setting": setting, "draw": draw, "metric": k, "value": v}
            for k, v in values.items()]


def input_sensitivity(model, maps, cases, inputs, original, preds, cfg: dict, seed: int) -> list[dict]:
    """Scanner shifts: per (case, shift, draw) whether the predicted class flipped, and for draws that did not the
    similarity of the shifted input's map (moved back for the rigid move) to the original map."""
    rows, kept = [], []  # kept: (case index, shift, draw, inputs, rigid move or None)
    for name, strength in cfg["shifts"].items():
        for d in range(cfg["draws"]):
            draws = []
            for i, (case, x) in enumerate(zip(cases, inputs)):
                s = case_seed(seed, f"{name}/{d}", case)
                if name == AFFINE:
                    move = RigidMove(x, strength["translate"], strength["rotate_deg"], s)
                    draws.append((i, name, d, move.inputs, move))
                else:
                    draws.append((i, name, d, shifted(x, name, strength, s), None))
            flipped = predictions(model, [xs for _, _, _, xs, _ in draws]).argmax(1) != preds
            for (i, _, _, _, _), f in zip(draws, flipped):
                rows += _rows(cases[i], "input", name, d, {"flipped": float(f)})
            kept += [draw for draw, f in zip(draws, flipped) if not f]
    masks = [None if move is None else move.move_masks for _, _, _, _, move in kept]
    shifted_maps = maps(model, [xs for _, _, _, xs, _ in kept], [i for i, *_ in kept], moved=masks) if kept else []
    for (i, name, d, _, move), m in zip(kept, shifted_maps):
        valid = None if move is None else move.valid_parts()
        m = m if move is None else move.back(m)
        rows += _rows(cases[i], "input", name, d, similarity_row(original[i], m, seed, f"{cases[i]}/{name}/{d}",
                                                                 valid))
    return rows


def max_sensitivity(model, maps, cases, inputs, raw, radius: float, draws: int, seed: int) -> list[dict]:
    """Quantus 0.6's max-sensitivity on the raw maps (so that it compares with Quantus and LATEC, which do not
    post-process): the largest relative change of the max-normalised map over `draws` uniform-noise draws."""
    idx = [i for i in range(len(cases)) for _ in range(draws)]
    noisy = [uniform_noise(inputs[i], radius, case_seed(seed, f"uniform/{d}", cases[i]))
             for i in range(len(cases)) for d in range(draws)]
    out = maps.raw(model, noisy, idx) if noisy else []
    return [r for i, case in enumerate(cases)
            for r in _rows(case, "max_sensitivity", f"r={radius:g}", 0,
                           {"max_sensitivity": max_change(raw[i], out[i * draws:(i + 1) * draws])})]


def label_sensitivity(model, maps, cases, inputs, original, raw, logits: np.ndarray, seed: int) -> list[dict]:
    """The runner-up class's map against the predicted class's; `negated`: the other class's raw map is the exact
    negative (logits ±z/2 of one output), and `antisymmetric_logits` of the model on the case."""
    explained = np.asarray(maps.preds)
    rest = logits.astype(float).copy()
    rest[np.arange(len(rest)), explained] = -np.inf  # the runner-up to the class the original map explains
    other = rest.argmax(1)
    raw_other = maps.raw(model, inputs, list(range(len(cases))), targets=[int(t) for t in other])
    processed = maps.process(raw_other, list(range(len(cases))))
    rows = []
    for i, case in enumerate(cases):
        a, b = np.concatenate([np.ravel(p) for p in raw[i]]), np.concatenate([np.ravel(p) for p in raw_other[i]])
        scale = max(float(np.abs(a).max()), 1e-30)
        negated = bool(np.allclose(b, -a, rtol=1e-4, atol=1e-5 * scale))
        antisymmetric = bool(abs(logits[i, 0] + logits[i, 1]) <= 1e-6 * max(abs(logits[i]).max(), 1e-30)) \
            if logits.shape[1] == 2 else False
        rows += _rows(case, "label", "other_class", 0, {**similarity_row(original[i], processed[i], seed, case),
                                                         "negated": float(negated),
                                                         "antisymmetric_logits": float(antisymmetric)})
    return rows


def model_sensitivity(model, maps, cases, inputs, original, depths, seed: int) -> list[dict]:
    rows, idx = [], list(range(len(cases)))
    for depth, layer, randomised in cascade(model, seed, depths):
        for i, m in enumerate(maps(randomised, inputs, idx)):
            rows += _rows(cases[i], "model", f"{depth}:{layer}", 0, similarity_row(original[i], m, seed, cases[i]))
    return rows


def data_randomisation(permuted: nn.Module, maps, cases, inputs, original, seed: int) -> list[dict]:
    """Adebayo et al.'s data randomisation test: the map of a model trained on permuted labels."""
    out = maps(permuted, inputs, list(range(len(cases))))
    return [r for i, m in enumerate(out)
            for r in _rows(cases[i], "data", "permuted_labels", 0, similarity_row(original[i], m, seed, cases[i]))]


def determinism(model, maps, cases, inputs, original, raw, repeats: int, sampled: bool, seed: int) -> list[dict]:
    """A sampled method repeated `repeats` times in all (other seeds); a deterministic one recomputed once with the
    same seed: bit-identical raw maps expected."""
    idx = list(range(len(cases)))
    runs, raws = [original], [raw]
    for r in range(1, repeats if sampled else 2):
        raws.append(maps.raw(model, inputs, idx, seed=seed * 1000 + r if sampled else seed))
        runs.append(maps.process(raws[-1], idx))
    rows = []
    for i, case in enumerate(cases):
        values = {"spearman": mean_pairwise_spearman([run[i] for run in runs]),
                  "voxel_cv": voxel_cv([run[i] for run in runs])}
        if not sampled:
            values["bit_identical"] = float(all(np.array_equal(a, b) for a, b in zip(raws[0][i], raws[1][i])))
        rows += _rows(case, "determinism", f"repeats={len(runs)}", 0, values)
    return rows


def hyperparameter_dependence(model, maps, cases, inputs, original, settings, seed: int, removal=None) -> list[dict]:
    """Every grid setting against the reference map; `removal(setting name, maps) -> ΔAUPC` adds a model-level row
    per setting (case empty)."""
    rows, idx = [], list(range(len(cases)))
    for s in settings:
        out = original if s.name == REFERENCE else maps(model, inputs, idx, overrides=s.overrides,
                                                        supervoxels=s.supervoxels)
        if s.name != REFERENCE:
            for i, m in enumerate(out):
                rows += _rows(cases[i], "hyperparameters", s.name, 0, similarity_row(original[i], m, seed, cases[i]))
        if removal is not None:
            rows += _rows("", "hyperparameters", s.name, 0, {"delta_aupc": removal(s.name, out)})
    return rows


def minimality(cases, original) -> list[dict]:
    return [r for i, case in enumerate(cases)
            for r in _rows(case, "minimality", "map", 0, {k: f(original[i]) for k, f in MINIMALITY.items()})]


# ---- one model's job ----
class CaseMaps:
    """Post-processed maps of one method for the job's cases (`idx` into them) under any model, inputs, classes,
    seed or hyperparameter setting; a case keeps its name, so a sampled method keeps its per-case seed."""

    def __init__(self, kind: TaskKind, method: str, cases, inputs, preds, masks, seed: int, overrides: dict | None,
                 batching: dict, post_cfg: dict, device: str = "cpu"):
        self.kind, self.method, self.cases, self.inputs, self.preds = kind, method, cases, inputs, preds
        self.masks, self.seed, self.overrides = masks, seed, overrides
        self.batching, self.post_cfg, self.device = batching, post_cfg, device

    def raw(self, model, xs, idx, targets=None, seed=None, overrides=None, supervoxels=None, moved=None) -> list:
        """Raw maps of inputs `xs` of the cases `idx`; `moved`: per item None or a function moving the case's
        supervoxel mask like its input (the rigid move)."""
        targets = [int(self.preds[i]) for i in idx] if targets is None else [int(t) for t in targets]
        masks = [None] * len(idx)
        if METHODS[self.method].feature_mask:
            masks = self.masks(idx, supervoxels)
            masks = [m if f is None else f(m) for m, f in zip(masks, moved or [None] * len(idx))]
        seed = self.seed if seed is None else seed
        overrides = self.overrides if overrides is None else overrides
        if METHODS[self.method].needs_case_batch:
            return [self._in_group(model, x, i, t, m, seed, overrides) for x, i, t, m in zip(xs, idx, targets, masks)]
        out, _ = explain(model, self.kind, self.method, [self.cases[i] for i in idx], xs, targets,
                         masks if METHODS[self.method].feature_mask else None, seed, overrides, self.batching,
                         self.device)
        return out

    def _in_group(self, model, x, i, target, mask, seed, overrides):
        """A method that permutes features across a batch of cases (FeaturePermutation): the case's input, class and
        mask among the partners its original map was computed with (explain's grouping of the job's cases), so that
        only the input differs -- not the cases it is permuted with, nor the seed."""
        n = len(self.cases)
        groups = np.array_split(np.arange(n), max(1, int(np.ceil(n / self.batching.get("permutation_batch", 4)))))
        group = [int(j) for j in next(g for g in groups if i in g)]
        at = group.index(i)
        inputs = [x if j == i else self.inputs[j] for j in group]
        targets = [target if j == i else int(self.preds[j]) for j in group]
        masks = self.masks(group, None)
        masks[at] = mask
        out, _ = explain(model, self.kind, self.method, [self.cases[j] for j in group], inputs, targets, masks, seed,
                         overrides, self.batching, self.device)
        return out[at]

    def process(self, raw: list, idx) -> list:
        return [processed_map(parts, self.inputs[i], self.method, self.post_cfg)[0] for parts, i in zip(raw, idx)]

    def __call__(self, model, xs, idx, **kw) -> list:
        return self.process(self.raw(model, xs, idx, **kw), idx)


class SupervoxelMasks:
    """Feature masks of the job's cases: the task's (the supervoxels rule's file), or computed for another
    supervoxel config of the hyperparameter grid (cached per config)."""

    def __init__(self, kind: TaskKind, method: str, cases, masks_path, data_dir, cache: dict):
        from ..attribution.supervoxels import load_masks

        self.kind, self.mask_kind, self.cases, self.data_dir, self.cache = kind, METHODS[method].feature_mask, \
            cases, data_dir, cache
        if self.mask_kind and ("task", self.mask_kind) not in cache:
            cache[("task", self.mask_kind)] = [load_masks(masks_path, c, self.mask_kind, kind.layout) for c in cases]

    def __call__(self, idx, supervoxels=None) -> list:
        if supervoxels is None:
            masks = self.cache[("task", self.mask_kind)]
        else:
            key = tuple(sorted(supervoxels.items()))
            if key not in self.cache:
                self.cache[key] = compute_masks(self.kind, self.data_dir, self.cases, supervoxels)
            masks = [self.cache[key][c][self.mask_kind] for c in self.cases]
        return [masks[i] for i in idx]


def _removal(predict, layout, cases, inputs, labels, cfg, seed):
    """ΔAUPC of one setting's maps on the job's cases (clinxai.evaluation.perturbation)."""
    flat_inputs, shared = [layout.flatten(x).numpy() for x in inputs], {}

    def run(setting: str, maps: list) -> float:
        curves, _ = removal_curves(predict, layout, cases, flat_inputs, [layout.flatten_map(m) for m in maps],
                                   labels, cfg, seed, shared)
        return delta_aupc(curves)["delta_aupc"]

    return run


def measure(model, maps, cases, inputs, preds, logits, cfg: dict, seed: int, settings, sampled: bool,
            permuted=None, removal=None) -> tuple[list[dict], dict]:
    """Every attribute of one method's maps of the cases on one model: the rows and the seconds each took."""
    idx = list(range(len(cases)))
    raw = maps.raw(model, inputs, idx)
    original = maps.process(raw, idx)
    steps = {"minimality": lambda: minimality(cases, original),
             "determinism": lambda: determinism(model, maps, cases, inputs, original, raw, cfg["repeats"], sampled,
                                                seed),
             "label": lambda: label_sensitivity(model, maps, cases, inputs, original, raw, logits, seed),
             "input": lambda: input_sensitivity(model, maps, cases, inputs, original, preds, cfg["input"], seed),
             "max_sensitivity": lambda: max_sensitivity(model, maps, cases, inputs, raw,
                                                        cfg["max_sensitivity"]["radius"],
                                                        cfg["max_sensitivity"]["draws"], seed),
             "model": lambda: model_sensitivity(model, maps, cases, inputs, original, cfg["depths"], seed),
             "data": lambda: [] if permuted is None else data_randomisation(copy.deepcopy(permuted), maps, cases,
                                                                            inputs, original, seed),
             "hyperparameters": lambda: hyperparameter_dependence(model, maps, cases, inputs, original, settings,
                                                                  seed, removal)}
    rows, seconds = [], {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        rows += step()
        seconds[name] = round(time.perf_counter() - t0, 1)
    return rows, seconds


def run_sensitivity(task: str, kind: TaskKind, seed: int, methods: list[str], checkpoint, predictions_path, data_dir,
                    masks_path, cfg: dict, heat_cfg: dict, post_cfg: dict, outputs: list, permuted=None,
                    threads: int = 1, device: str = "auto") -> dict[str, pd.DataFrame]:
    """Every attribute of each method's maps on one model (`cfg`: clinxai.config.sensitivity_cfg); each method's
    long table (case, attribute, setting, draw, metric, value, better) is written as soon as it is done."""
    use_threads(threads)
    dev = resolve_device(device)
    cases, labels, inputs = case_subset(*test_set(kind, data_dir, predictions_path), cfg["max_cases"])
    pred = pd.read_csv(predictions_path, dtype={"case": str}).set_index("case").loc[cases, "pred"].to_numpy(int)
    model = load_checkpoint(checkpoint, task=task, family=kind.model).eval()
    logits = predictions(model, inputs, cfg["batch_size"])
    permuted_model = load_checkpoint(permuted, task=task, family=kind.model).eval() if permuted else None
    removal = None
    if cfg.get("removal"):
        layout = FlatLayout(inputs[0])
        predict = Predictor(copy.deepcopy(model), layout, dev, fast=cfg["removal"]["fast"],
                            compile=cfg["removal"].get("compile", False))
        removal = _removal(predict, layout, cases, inputs, labels, cfg["removal"], seed)
    sv_cache, tables = {}, {}
    sv_cfg = heat_cfg["supervoxels"]
    progress = Progress(len(methods), f"{task} seed {seed} sensitivity", log, unit="methods")
    for method, out in zip(methods, outputs):
        t0, m = time.perf_counter(), copy.deepcopy(model)  # no hook or setting of one method reaches the next
        overrides = heat_cfg["params"].get(method)
        maps = CaseMaps(kind, method, cases, inputs, pred,
                        SupervoxelMasks(kind, method, cases, masks_path, data_dir, sv_cache), seed,
                        overrides, heat_cfg["batching"], post_cfg, dev)
        shape = inputs[0][0].shape[1:] if kind.layout != VIEWS else None
        layers = [w for w in ("last", "previous") if MODEL_FAMILIES[kind.model].has_layer(model, w)]
        settings = grid_settings(method, kind.layout, overrides, sv_cfg, shape, layers)
        rows, seconds = measure(m, maps, cases, inputs, pred, logits, cfg, seed, settings, METHODS[method].sampled,
                                permuted_model, removal)
        table = pd.DataFrame(rows)
        info = pd.DataFrame({"case": cases, "label": labels, "pred": pred})
        table = table.merge(info, on="case", how="left").assign(task=task, seed=seed, method=method)
        table["better"] = [better(a, k) for a, k in zip(table["attribute"], table["metric"])]
        lead = ["task", "seed", "method", "case", "label", "pred", "attribute", "setting", "draw", "metric", "value",
                "better"]
        tables[method] = table[lead]
        save_csv(out, tables[method])
        log.info("%s %s seed %d: %d rows over %d cases (%.1f s; per attribute %s)", task, method, seed, len(table),
                 len(cases), time.perf_counter() - t0, seconds)
        progress.update()
    return tables
