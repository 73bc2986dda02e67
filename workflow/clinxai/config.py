"""Configuration validation with readable errors: every problem names the key and the expected form."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from . import ClinxaiError

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"

# Where each task's data folder lives in the config, and what it must contain.
DATA_PATH_KEYS = {
    ("glioma", "brats"): ("brats_dir", "name_mapping.csv"),
    ("knee", "mrnet"): ("mrnet_dir", "train-meniscus.csv"),
}


class ConfigError(ClinxaiError):
    pass


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(err: jsonschema.ValidationError) -> str:
    key = _key(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return (f"unknown config key(s) {', '.join(f'{key}.{e}' if err.absolute_path else e for e in extra)}; "
                f"allowed here: {', '.join(allowed)}")
    if err.validator == "required":
        return f"config key {key}: {err.message}"
    expected = err.schema.get("description") or _expected(err.schema)
    return f"config key {key} = {err.instance!r}: {err.message}" + (f" (expected {expected})" if expected else "")


def _expected(schema: dict) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    if "type" in schema:
        t = schema["type"]
        return " or ".join(t) if isinstance(t, list) else t
    return ""


def validate_config(config: dict, schema_path=SCHEMA, check_paths: bool = True) -> None:
    """Raise ConfigError listing every schema violation, then check configured data folders exist."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  - ".join(_describe(e) for e in errors)
        raise ConfigError(f"invalid configuration:\n  - {lines}\nSee config/README.md for every key.")
    for key, fr in (("split.fractions", config["split"]["fractions"]),
                    ("data.synthetic.split_fractions", config["data"]["synthetic"].get("split_fractions"))):
        if fr is not None and abs(sum(fr.values()) - 1.0) > 1e-6:
            raise ConfigError(f"config key {key} = {fr}: the fractions must sum to 1.")
    _check_methods(config)
    if check_paths:
        # The synthetic task's tumour GAN reads data.glioma's BraTS folder, so that folder must exist for it too.
        needs = {"glioma" if t == "synthetic" else t for t in config["tasks"]}
        for task in sorted(needs):
            cfg = config["data"][task]
            key_file = DATA_PATH_KEYS.get((task, cfg["source"]))
            if key_file is None:
                continue
            key, marker = key_file
            root = Path(cfg[key])
            if not (root / marker).is_file():
                raise ConfigError(f"config key data.{task}.{key} = {cfg[key]!r}: {root / marker} not found. "
                                  f"Point it at the folder that holds {marker}.")
            boxes = cfg.get("boxes_dir")
            if task == "knee" and boxes and not Path(boxes).is_dir():
                raise ConfigError(f"config key data.knee.boxes_dir = {boxes!r}: folder not found "
                                  "(set it to null to run without menisci boxes).")


def _check_methods(config: dict) -> None:
    """Method names in heatmaps.* must be registry names (the registry is the one list of methods)."""
    from .attribution.registry import METHODS

    hm = config["heatmaps"]
    named = [("heatmaps.methods", m) for m in (hm["methods"] if hm["methods"] != "all" else [])]
    named += [(f"heatmaps.exclude.{t}", m) for t, ms in hm["exclude"].items() for m in ms]
    named += [(f"heatmaps.params.{t}", m) for t, ms in hm["params"].items() for m in ms]
    named += [("heatmaps.shards", m) for m in hm["shards"]]
    bad = [f"{key}: {m!r}" for key, m in named if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown heatmap method(s) {'; '.join(bad)}. Known: {', '.join(METHODS)}.")


def task_methods(config: dict, task: str) -> list[str]:
    """The methods a task runs, in registry order."""
    from .attribution.registry import METHODS

    chosen = list(METHODS) if config["heatmaps"]["methods"] == "all" else config["heatmaps"]["methods"]
    excluded = set(config["heatmaps"]["exclude"].get(task, []))
    return [m for m in METHODS if m in chosen and m not in excluded]


# Per-task views of config sections. Here, not beside the code that uses them, because the rule files call them
# while Snakemake parses the workflow: importing torch or scipy there would slow every snakemake call (each SLURM
# job runs one) by seconds.


def removal_cfg(truth_cfg: dict, task: str) -> dict:
    """The truthfulness config as the removal functions take it for one task."""
    r = truth_cfg["removal"]
    return {"n_steps": r["n_steps"], "baselines": r["baselines"], "replacement": r["replacement"][task],
            "neighbourhood_size": r["neighbourhood_size"], "low_quantile": r["low_quantile"],
            "metric": truth_cfg["metric"][task], "batch_size": truth_cfg["batch_size"], "fast": truth_cfg["fast"]}


def task_postprocess_cfg(post_cfg: dict, task: str) -> dict:
    """The `heatmaps.postprocess` config as `postprocess` takes it for one task (smoothing is per task).

    Idempotent: a config already reduced to one task is returned as it is."""
    sigma = post_cfg["smooth_sigma"]
    return {**post_cfg, "smooth_sigma": sigma.get(task) if isinstance(sigma, dict) else sigma}


def dilation_size(square: int, reference_size: int, grid_size: int) -> int:
    """Side of the dilation square on this grid: `square` voxels at an in-plane size of `reference_size` (the
    reference code: 20 at 128), scaled to `grid_size`; 0 or 1 means no dilation."""
    if square <= 1:
        return 0
    return max(1, int(round(square * grid_size / reference_size)))
