"""Data preparation: validate every case, resize to the training grid, z-score, split, cache as .npz.

Training and the later stages read only the cache (`arrays/<case>.npz`), never NIfTI again.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import ClinxaiError
from ..io import atomic_dir, save_csv, save_json
from ..runtime import use_threads
from . import brats, manifest, mrnet
from .checks import BadCasePolicy, CaseError, unreadable
from .split import given_split, stratified_split


def _resize(volume: np.ndarray, grid, mode: str) -> np.ndarray:
    """Resize C x spatial to C x grid. Trilinear with anti-aliasing for images, nearest for label maps."""
    from monai.transforms import Resize

    anti_alias = mode != "nearest" and any(s > g for s, g in zip(volume.shape[1:], grid))
    out = Resize(spatial_size=tuple(grid), mode=mode, anti_aliasing=anti_alias)(torch.as_tensor(volume))
    return np.asarray(out)


def resized_affine(affine: np.ndarray, old_shape, new_shape) -> np.ndarray:
    """Affine of a grid resampled from old_shape to new_shape over the same field of view."""
    zoom = np.asarray(old_shape, float) / np.asarray(new_shape, float)
    scale = np.eye(4)
    scale[:3, :3] = np.diag(zoom)
    scale[:3, 3] = 0.5 * zoom - 0.5  # voxel centres, half-pixel convention of torch's align_corners=False
    return affine @ scale


def zscore(image: np.ndarray, region: np.ndarray, case: str, path) -> np.ndarray:
    """Per-channel z-score over `region` voxels; zero outside it."""
    if not region.any():
        raise CaseError(case, path, "no foreground voxel after resizing", "Check the volume is not blank.")
    out = np.zeros_like(image, dtype=np.float32)
    for c in range(image.shape[0]):
        vals = image[c][region]
        std = vals.std()
        out[c][region] = (vals - vals.mean()) / (std if std > 0 else 1.0)
    return out


def _digest(*arrays) -> str:
    """Hash of a case's voxel data (read anyway): the same images under two case ids would leak across the split."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _prepare_brats_case(row, grid, require_seg: bool):
    image, seg, affine = brats.load_case(Path(row.path), require_seg)
    digest = _digest(image)
    brain = _resize((image != 0).any(0)[None].astype(np.uint8), grid, "nearest")[0].astype(np.uint8)
    out = {
        "image": zscore(_resize(image, grid, "trilinear"), brain > 0, row.case, row.path),
        "brain": brain,
        "affine": resized_affine(affine, image.shape[1:], grid),
        "source_shape": np.array(image.shape[1:]),
    }
    if seg is not None:
        out["seg"] = _resize(seg[None].astype(np.float32), grid, "nearest")[0].astype(np.uint8)
        if not (out["seg"] > 0).any():
            raise CaseError(row.case, row.path, "tumour vanishes when resized to the grid",
                            f"Use a finer data.<task>.grid than {list(grid)}.")
    return out, digest


def _prepare_mrnet_case(row, root, boxes_dir, grid):
    views, boxes = mrnet.load_case(root, row.source_split, row.case, boxes_dir)
    digest = _digest(*views.values())
    out = {}
    for view, arr in views.items():
        resized = _resize(arr[None], grid, "trilinear")
        out[view] = zscore(resized, np.ones(resized.shape[1:], bool), row.case, root)[0]
        if boxes is not None:
            out[f"box_{view}"] = _resize(boxes[view][None].astype(np.float32), grid, "nearest")[0].astype(np.uint8)
        out[f"source_shape_{view}"] = np.array(arr.shape)
    return out, digest


def _run_cases(cases: pd.DataFrame, fn, policy: BadCasePolicy, out_dir: Path, threads: int) -> pd.DataFrame:
    """Apply `fn` to every case in parallel, write arrays/<case>.npz, and return the cases that succeeded. A case
    whose files fail in any way is a case error naming the case (excludable); the same voxel data under two case
    ids is an error naming both."""

    def work(row):
        try:
            arrays, digest = fn(row)
        except CaseError as err:
            return row.case, err, None
        except Exception as err:  # anything a reader did not foresee still names the case and its folder
            where = getattr(row, "path", None) or out_dir
            return row.case, unreadable(row.case, where, err), None
        np.savez(out_dir / f"{row.case}.npz", **arrays)
        return row.case, None, digest

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(work, cases.itertuples(index=False)))
    failed, first_of = set(), {}
    for case, err, digest in results:  # in case order, so `stop` reports the first bad case deterministically
        if err is not None:
            failed.add(case)
            policy.handle(err)
        elif digest in first_of:
            raise ClinxaiError(f"cases {first_of[digest]} and {case} have identical image data: one patient under "
                               "two ids would land in both training and test. Remove one of them.")
        else:
            first_of[digest] = case
    return cases[~cases["case"].isin(failed)].reset_index(drop=True)


def _prepare_manifest_case(row, modalities, n_dims: int, grid):
    """A manifest row resized to `grid` and z-scored over its foreground (any modality non-zero), or with `grid`
    None (preprocessing none) as stored."""
    image, mask, affine = manifest.load_case(row, modalities, n_dims)
    digest, source_shape = _digest(image), image.shape[1:]
    region = (image != 0).any(0)
    if grid is not None:
        region = _resize(region[None].astype(np.uint8), grid, "nearest")[0] > 0
        image = zscore(_resize(image, grid, "trilinear" if n_dims == 3 else "bilinear"), region, row.case,
                       row.files[modalities[0]])
        affine = resized_affine(affine, _spatial3(source_shape), _spatial3(grid))
        if mask is not None:
            mask = _resize(mask[None].astype(np.float32), grid, "nearest")[0] > 0
            if not mask.any():
                raise CaseError(row.case, row.files["mask"], "the mask vanishes when resized to the grid",
                                f"Use a finer data.<task>.grid than {list(grid)}.")
    out = {"image": image.astype(np.float32), "affine": affine, "brain": region.astype(np.uint8),
           "source_shape": np.array(source_shape)}
    if mask is not None:
        out["seg"] = mask.astype(np.uint8)
    return out, digest


def _manifest(root: Path, data_cfg: dict, grid, policy: BadCasePolicy):
    modalities = list(data_cfg["modalities"])
    cases = manifest.read_manifest(root, modalities, data_cfg.get("mask"), data_cfg.get("classes") or (0, 1), policy)
    n_dims = 3 if data_cfg.get("layout", "volume") == "volume" else 2
    pipeline = data_cfg.get("preprocessing", "pipeline") == "pipeline"
    if pipeline and (grid is None or len(grid) != n_dims):
        raise ClinxaiError(f"config key data.<task>.grid = {grid}: preprocessing 'pipeline' resizes every case to "
                           f"the grid; give {n_dims} sizes for the {data_cfg.get('layout', 'volume')} layout.")

    grid = grid if pipeline else None
    return cases, lambda r: _prepare_manifest_case(r, modalities, n_dims, grid), modalities


def _spatial3(shape) -> list:
    """A 2-D slice's grid as a 3-D one (one voxel deep), for its NIfTI affine."""
    return list(shape) + [1] * (3 - len(shape))


def _brats(root: Path, data_cfg: dict, grid, policy: BadCasePolicy):
    return brats.scan(root, policy), lambda r: _prepare_brats_case(r, grid, True), list(brats.CHANNEL_NAMES)


def _mrnet(root: Path, data_cfg: dict, grid, policy: BadCasePolicy):
    boxes_dir = data_cfg.get("boxes_dir")
    return mrnet.scan(root, policy), lambda r: _prepare_mrnet_case(r, root, boxes_dir, grid), list(mrnet.VIEWS)


# Dataset formats a task kind reads (clinxai.tasks.TaskKind.dataset): (cases table, per-case preparation, channels).
READERS = {"brats": _brats, "mrnet": _mrnet, "csv_manifest": _manifest}


def prepare(task: str, dataset: str, data_cfg: dict, split_cfg: dict, out: dict, threads: int = 1) -> dict:
    """Prepare one task from a dataset of format `dataset` (READERS). `out` has paths: split, excluded, meta, arrays
    (a directory)."""
    start = time.perf_counter()
    if dataset not in READERS:
        raise ClinxaiError(f"prepare: no reader for dataset format {dataset!r}; known: {', '.join(READERS)}")
    policy = BadCasePolicy(data_cfg.get("on_bad_case", "stop"))
    as_stored = data_cfg.get("preprocessing", "pipeline") == "none" or not data_cfg.get("grid")
    grid = None if as_stored else [int(g) for g in data_cfg["grid"]]
    # One intra-op thread: the anti-aliased resize sums in an order that depends on torch's thread count, so the
    # prepared arrays (and every model trained on them) differed in the last bits between --cores 1 and --cores 2.
    # The cases run in parallel instead (`threads`).
    use_threads(1)
    with atomic_dir(out["arrays"]) as arrays_dir:
        root = Path(data_cfg["root"])
        cases, prepare_case, channels = READERS[dataset](root, data_cfg, grid, policy)
        if data_cfg.get("supplied_model") and "split" not in cases.columns:
            raise ClinxaiError(f"{task}: data.{task}.model supplies a trained model but the manifest {root} has no "
                               "split column: a fresh split would put the model's own training cases into the "
                               "test set. Add a split column (train / val / test) with the model's split.")
        cases = _run_cases(cases, prepare_case, policy, arrays_dir, threads)
        if cases.empty:
            raise ClinxaiError(f"{task}: every case was excluded; see the excluded list for why.")
        if "split" in cases.columns:  # the manifest's own split (a supplied model's training cases stay out of test)
            split = given_split(cases)
        else:
            groups = cases["group"].where(cases["group"] != "", cases["case"]) if "group" in cases.columns else None
            split = stratified_split(cases[["case", "label"]], data_cfg.get("split_fractions") or split_cfg["fractions"],
                                     split_cfg["seed"], groups=groups)
        if grid is None:  # arrays as they are: one shape for the whole dataset
            shapes = {tuple(np.load(arrays_dir / f"{c}.npz")["image"].shape[1:]) for c in split["case"]}
            if len(shapes) > 1:
                raise ClinxaiError(f"{task}: with data.{task}.preprocessing none every case must have one shape; "
                                   f"found {sorted(shapes)}. Resample them, or use preprocessing pipeline with a grid.")
            grid = list(shapes.pop())
    excluded = pd.DataFrame(policy.excluded, columns=["case", "file", "problem", "fix"])
    save_csv(out["excluded"], excluded)
    save_csv(out["split"], split)
    counts = split.groupby(["split", "label"]).size().unstack(fill_value=0)
    meta = {
        "task": task,
        "channels": channels,
        "grid": grid,
        "root": str(root),
        "n_cases": len(split),
        "n_excluded": len(excluded),
        "counts": {s: {str(k): int(v) for k, v in row.items()} for s, row in counts.iterrows()},
        "seconds": round(time.perf_counter() - start, 2),
    }
    save_json(out["meta"], meta)
    return meta
