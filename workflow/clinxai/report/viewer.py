"""The case viewer (issue 24, torch-free): a self-contained static HTML page per task that shows every heatmap of the
chosen test cases over its MRI, for clinicians -- no server and no network, it opens from results/ and from the
Snakemake report.

index.html holds the page, its script and the manifest (cases with truth and prediction per model, methods,
modalities, grid, each map's scores); cases/<n>/images.js one case's MRI per modality and clinical mask, and
cases/<n>/<seed>_<method>.js the post-processed map of one model and method, as gzip-compressed 8-bit arrays, each
loaded on demand by a script tag (file:// pages may not fetch()), so a paper-sized export stays usable: one map file
of a 4 x 128³ case is ~2 MB. Images are windowed to their 1st-99th percentile; maps are the post-processed positive
maps every metric uses (normalised to [0, 1]) times 255. Volumes whose longest axis exceeds `max_side` are subsampled
by one integer stride on every axis (the same for image, mask and map).
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ClinxaiError
from ..attribution.maps import load_maps
from ..attribution.postprocess import is_layer_map, postprocess
from ..data.cases import clinical_masks, modality_names, montage_arrays
from ..io import atomic_dir
from ..tasks import TaskKind
from .labels import METRIC_LABELS

PAGE = Path(__file__).with_name("viewer.html")
SCRIPT = Path(__file__).with_name("viewer.js")
# what each score says, in words for readers who are not ML engineers
EXPLAINED = {
    "fp": "share of the map's weight inside the clinical region",
    "msfi": "like FP, per modality, weighted by how much the model uses each modality",
    "rma": "share of the map's weight inside the clinical region (= FP)",
    "rra": "share of the map's top voxels that lie in the clinical region",
    "vxap": "how well the map's ranking of voxels finds the region (chance = the region's size)",
    "auroc": "chance that a region voxel outranks a voxel outside it (0.5 = chance)",
    "pointing_game": "1 if the map's strongest voxel lies in the region",
    "ds": "how much more the prediction drops when the map's top voxels are perturbed (blurred by default) than its "
          "bottom ones",
}


def encode(a: np.ndarray) -> str:
    """uint8 array -> base64 of its gzip (mtime 0: the same bytes every run)."""
    return base64.b64encode(gzip.compress(np.ascontiguousarray(a, np.uint8).tobytes(), mtime=0)).decode("ascii")


def window(img: np.ndarray) -> np.ndarray:
    """An MRI as 8 bits, its 1st-99th percentile stretched over 0-255."""
    lo, hi = np.percentile(img, [1, 99])
    scaled = (np.asarray(img, np.float64) - lo) / (hi - lo) if hi > lo else np.zeros(img.shape)
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def quantise_map(part: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.nan_to_num(np.asarray(part, np.float64)), 0, 1) * 255).astype(np.uint8)


def chosen_cases(pred: pd.DataFrame, cases, task: str) -> list[str]:
    """The first N test cases, or the listed ones (heatmaps.export.cases, like the export)."""
    ids = list(pred["case"])
    chosen = ids[:cases] if isinstance(cases, int) else [str(c) for c in cases]
    missing = [c for c in chosen if c not in ids]
    if missing:
        raise ClinxaiError(f"heatmaps.export.cases: {missing} are not test cases of {task}; test cases are {ids}")
    return chosen


def scores_by_map(tables: list[pd.DataFrame], cases: list[str]) -> dict:
    """{seed: {method: {case: {metric: value}}}} from long (metric, value) or wide (fp, msfi) per-case tables."""
    out: dict = {}
    for t in tables:
        t = t[t["case"].astype(str).isin(cases)]
        if "metric" not in t:
            t = t.melt(id_vars=["seed", "method", "case"], value_vars=[c for c in ("fp", "msfi") if c in t],
                       var_name="metric", value_name="value")
        if "modality" in t:
            t = t[t["modality"] == "all"]
        for r in t.itertuples(index=False):
            value = float(r.value) if pd.notna(r.value) else None
            out.setdefault(str(r.seed), {}).setdefault(r.method, {}).setdefault(str(r.case), {})[r.metric] = value
    return out


def strides(shape, max_side: int | None) -> tuple[slice, ...]:
    """One integer stride for every axis that brings the longest to at most `max_side` voxels (None: full
    resolution): the same stride on all axes keeps every plane's proportions."""
    step = max(1, -(-max(shape) // max_side)) if max_side else 1
    return tuple(slice(None, None, step) for _ in shape)


def _write_js(path: Path, payload: dict) -> None:
    path.write_text(f"clinxaiData({json.dumps(payload)});\n", encoding="utf-8")


def build_viewer(task: str, kind: TaskKind, title: str, seeds: list, methods: list[str], maps: dict, predictions: dict,
                 data_dir, meta: dict, cases, post_cfg: dict, dilation: int, has_mask: bool, score_tables: list,
                 phantom: bool, out_dir, max_side: int | None = None) -> dict:
    """Write index.html and cases/; returns the manifest. `maps`: {(seed, method): heatmaps .npz};
    `predictions`: {seed: predictions.csv}."""
    names = modality_names(meta)
    preds = {s: pd.read_csv(predictions[s], dtype={"case": str}).set_index("case") for s in seeds}
    chosen = chosen_cases(preds[seeds[0]].reset_index(), cases, task)
    manifest = {"task": task, "title": title, "layout": kind.layout, "modalities": names,
                "classes": list(kind.classes), "seeds": [str(s) for s in seeds], "methods": methods,
                "has_mask": has_mask, "phantom": phantom, "cases": [],
                "scores": scores_by_map(score_tables, chosen),
                "metrics": {m: {"label": METRIC_LABELS[m], "means": text} for m, text in EXPLAINED.items()}}
    with atomic_dir(out_dir) as tmp:
        for n, case in enumerate(chosen):
            folder = Path(tmp) / "cases" / str(n)
            folder.mkdir(parents=True)
            images, _, slices, _ = montage_arrays(kind, data_dir, case, meta)
            shapes = [im.shape for im in images]
            sub = [strides(sh, max_side) for sh in shapes]
            masks = clinical_masks(kind, data_dir, case, names, dilation, task) if has_mask else [None] * len(names)
            _write_js(folder / "images.js", {"key": f"{n}/images",
                                             "images": [encode(window(im)[s]) for im, s in zip(images, sub)],
                                             "masks": [None if m is None else encode(m[s]) for m, s in zip(masks, sub)]})
            status = {}
            for seed in seeds:
                for method in methods:
                    raw = load_maps(maps[(seed, method)], [case])  # one case of one file at a time: paper-sized
                    if case not in raw:
                        raise ClinxaiError(f"{maps[(seed, method)]} has no map for case {case}: rerun its heatmaps "
                                           "job.")
                    parts, st = postprocess(raw[case], shapes, post_cfg, gradcam=is_layer_map(method))
                    _write_js(folder / f"{seed}_{method}.js", {"key": f"{n}/{seed}_{method}",
                                                               "maps": [encode(quantise_map(p)[s])
                                                                        for p, s in zip(parts, sub)]})
                    status.setdefault(str(seed), {})[method] = st
            models = {str(s): {"label": int(p.loc[case, "label"]), "pred": int(p.loc[case, "pred"]),
                               "prob": float(p.loc[case, f"prob_{int(p.loc[case, 'pred'])}"])}
                      for s, p in preds.items()}
            kept = [[len(range(*sl.indices(d))) for sl, d in zip(s, sh)] for s, sh in zip(sub, shapes)]
            start = [0 if k is None else int(k) // (s[kind.export_axis].step or 1) for k, s in zip(slices, sub)]
            manifest["cases"].append({"id": case, "folder": f"cases/{n}", "shapes": kept, "start": start,
                                      "models": models, "status": status})
        page = PAGE.read_text(encoding="utf-8")
        page = page.replace("/*MANIFEST*/", json.dumps(manifest).replace("</", "<\\/"))
        page = page.replace("/*SCRIPT*/", SCRIPT.read_text(encoding="utf-8"))
        (Path(tmp) / "index.html").write_text(page, encoding="utf-8")
    return manifest
