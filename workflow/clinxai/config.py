"""Configuration validation with readable errors: every problem names the key and the expected form."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from . import ClinxaiError
from .tasks import (KINDS, RENAMED_KEYS, RESERVED_NAMES, checkpoints, data_source, kind_name, kind_of, source_task,
                    supplied_model, task_seeds, task_setting, task_title)

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


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
    if err.validator in ("oneOf", "anyOf"):  # the branch of the value's own type says what is wrong with it
        own = [e for e in err.context or [] if e.validator != "type"]
        if own:
            return "; ".join(_describe(e) for e in own)
    expected = err.schema.get("description") or _expected(err.schema)
    return f"config key {key} = {err.instance!r}: {err.message}" + (f" (expected {expected})" if expected else "")


def _expected(schema: dict) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    if "type" in schema:
        t = schema["type"]
        return " or ".join(t) if isinstance(t, list) else t
    return ""


def task_schema(config: dict, schema: dict) -> dict:
    """The schema with its per-task parts spelled out for this config's task names: `x-per-task` (the same value
    schema for every task) and `x-per-kind` (the schema of each task's kind) become `properties`, so an unknown
    task name under a per-task key is reported like any unknown key."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    names = list(data)
    try:  # a non-mapping entry gets the name's kind here and the schema's error below
        kinds = {t: kind_name(config, t) if isinstance(data[t], dict) else t for t in names}
    except ClinxaiError as err:
        raise ConfigError(str(err)) from err
    kinds = {t: k if k in KINDS else next(iter(KINDS)) for t, k in kinds.items()}

    def expand(node):
        if isinstance(node, dict):
            node = {k: expand(v) for k, v in node.items()}
            if "x-per-task" in node:
                node.setdefault("properties", {}).update({t: node["x-per-task"] for t in names})
                node["additionalProperties"] = False
            if "x-per-kind" in node:  # a kind without a schema here is a developer's omission: say which
                lacking = sorted({k for k in kinds.values() if k not in node["x-per-kind"]})
                if lacking:
                    raise ConfigError(f"the config schema has no x-per-kind entry for kind(s) {lacking}")
                node.setdefault("properties", {}).update({t: node["x-per-kind"][kinds[t]] for t in names})
                node["additionalProperties"] = False
            return {k: v for k, v in node.items() if not str(k).startswith("x-per-")}
        if isinstance(node, list):
            return [expand(v) for v in node]
        return node

    return expand(schema)


def validate_config(config: dict, schema_path=SCHEMA, check_paths: bool = True) -> None:
    """Raise ConfigError listing every schema violation, then check configured data folders exist."""
    _rename_old_keys(config)
    schema = task_schema(config, yaml.safe_load(Path(schema_path).read_text()))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  - ".join(_describe(e) for e in errors)
        raise ConfigError(f"invalid configuration:\n  - {lines}\nSee config/README.md for every key.")
    reserved = [t for t in config["data"] if t in RESERVED_NAMES]
    if reserved:
        raise ConfigError(f"task name {reserved[0]!r} (data.{reserved[0]}) is reserved ({', '.join(RESERVED_NAMES)}): "
                          "choose another name.")
    missing = [t for t in config["tasks"] if t not in config["data"]]
    if missing:
        raise ConfigError(f"config key tasks lists {', '.join(missing)} without an entry under data: add "
                          f"data.{missing[0]} (its kind and settings) or remove it from tasks.")
    fractions = [("split.fractions", config["split"]["fractions"])]
    fractions += [(f"data.{t}.split_fractions", d.get("split_fractions")) for t, d in config["data"].items()]
    for key, fr in fractions:
        if fr is not None and abs(sum(fr.values()) - 1.0) > 1e-6:
            raise ConfigError(f"config key {key} = {fr}: the fractions must sum to 1.")
    # the configured seeds and a supplied model's checkpoint numbers 1, 2, ... (a supplied model's task runs its first
    # model where the list names none of its own)
    models = sorted(set(config["seeds"]) | {s for t in config["tasks"] for s in task_seeds(config, t)})
    for key, seeds in (("localisation.road.seeds", config["localisation"]["road"]["seeds"]),
                       ("sensitivity.seeds", config["sensitivity"]["seeds"])):
        unknown = [s for s in seeds or [] if s not in models]
        if unknown:
            raise ConfigError(f"config key {key} lists {unknown}, which are not in seeds {models} (nor a supplied "
                              "model's checkpoint numbers): use seeds of trained models, or null for all of them.")
    # names of tasks not in this run are ignored, like per-task settings; a task without feature removal has no ΔAUPC
    without = [t for t in config["sensitivity"]["hyperparameters"]["delta_aupc"] or []
               if t in config["tasks"] and not kind_of(config, t).removal]
    if without:
        raise ConfigError(f"config key sensitivity.hyperparameters.delta_aupc lists {without}, which have no feature "
                          "removal (their truthfulness is a known ground truth): leave them out of the list.")
    _check_methods(config)
    try:
        needs = []
        for task in config["tasks"]:
            needs.append(task)
            if kind_of(config, task).reads_kind:  # the synthetic GAN reads a glioma task's BraTS folder
                needs.append(source_task(config, task))
    except ClinxaiError as err:
        raise ConfigError(str(err)) from err
    _check_phantoms(config, list(dict.fromkeys(needs)))
    titles = [task_title(config, t) for t in config["tasks"]]
    if len(set(titles)) != len(titles):
        raise ConfigError(f"tasks {config['tasks']} have clashing table titles {titles}: rename one of them.")
    if check_paths:
        for task in dict.fromkeys(needs):
            _check_data_paths(config, task)


def _check_phantoms(config: dict, tasks: list[str]) -> None:
    """Tasks of one kind that use its phantom share one phantom dataset (results/phantoms/<format>): they must ask
    for the same one."""
    first = {}
    for task in tasks:
        kind, cfg = kind_of(config, task), config["data"][task]
        if kind.phantom is None or data_source(config, task) != "phantom":
            continue
        other = first.setdefault(kind.phantom, task)
        if cfg["phantom"] != config["data"][other]["phantom"]:
            raise ConfigError(f"config keys data.{other}.phantom and data.{task}.phantom differ, but both tasks read "
                              f"the one {kind.phantom} phantom (results/phantoms/{kind.phantom}): give them the same "
                              "settings.")


def _rename_old_keys(config: dict) -> None:
    """Keys renamed since earlier versions, accepted under their old name (configs of finished runs keep working)."""
    for old, new in RENAMED_KEYS.items():
        *parents, old_leaf = old.split(".")
        node = config
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        new_leaf = new.rsplit(".", 1)[1]
        if isinstance(node, dict) and old_leaf in node:  # the old key wins: an overlay written for the old name
            node[new_leaf] = node.pop(old_leaf)          # overrides the shipped config's new one


def _check_data_paths(config: dict, task: str) -> None:
    cfg = config["data"][task]
    key_file = kind_of(config, task).sources.get(data_source(config, task))
    if key_file is None:
        return
    key, marker = key_file
    if marker is None:  # the key names the file itself (the manifest kind's CSV)
        if not Path(cfg[key]).is_file():
            raise ConfigError(f"config key data.{task}.{key} = {cfg[key]!r}: file not found. Point it at the "
                              "task's manifest CSV (relative paths: from the directory snakemake runs in).")
        _check_supplied_model(config, task)
        return
    root = Path(cfg[key])
    if not (root / marker).is_file():
        raise ConfigError(f"config key data.{task}.{key} = {cfg[key]!r}: {root / marker} not found. "
                          f"Point it at the folder that holds {marker}.")
    boxes = cfg.get("boxes_dir")
    if boxes and not Path(boxes).is_dir():
        raise ConfigError(f"config key data.{task}.boxes_dir = {boxes!r}: folder not found "
                          "(set it to null to run without menisci boxes).")


def _check_supplied_model(config: dict, task: str) -> None:
    """A supplied model's checkpoints and code folder exist (the model itself is checked by rule import_model)."""
    model = supplied_model(config, task)
    if model is None:
        return
    for i, path in enumerate(checkpoints(model), 1):
        if not Path(path).is_file():
            raise ConfigError(f"config key data.{task}.model.checkpoint: {path!r} (model {i}) not found. Point it "
                              "at the state_dict file saved with torch.save(model.state_dict(), path).")
    folder = model.get("python_path")
    if folder and not Path(folder).is_dir():
        raise ConfigError(f"config key data.{task}.model.python_path = {folder!r}: folder not found. Point it at "
                          "the folder that holds the package or module of model.factory.")


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
    excluded = set(task_setting(config, "heatmaps.exclude", task))
    return [m for m in METHODS if m in chosen and m not in excluded]


# Per-task views of config sections. Here, not beside the code that uses them, because the rule files call them
# while Snakemake parses the workflow: importing torch or scipy there would slow every snakemake call (each SLURM
# job runs one) by seconds.


def task_batching(config: dict, task: str) -> dict:
    """`heatmaps.batching` for one task: the task's own values (`heatmaps.batching.per_task.<task>`) over the shared
    ones -- a small model fills the CPU only at larger batches, a large one must stay inside its rule's memory."""
    batching = dict(config["heatmaps"]["batching"])
    per_task = batching.pop("per_task", None) or {}
    batching = {**batching, **(per_task.get(task) or {})}
    if not batching.get("compile", True):  # false as absent: the key would change finished jobs' params
        del batching["compile"]
    return batching


def removal_batch(config: dict, task: str) -> int:
    """`truthfulness.batch_size`: one number, or one per task (a task missing from the mapping takes 16)."""
    size = config["truthfulness"]["batch_size"]
    return int(size.get(task, 16) if isinstance(size, dict) else size)


def removal_cfg(config: dict, task: str) -> dict:
    """The truthfulness config as the removal functions take it for one task (the blur and ROAD parameters only
    where the task uses them, so that finished jobs of the others keep their params)."""
    truth = config["truthfulness"]
    r = truth["removal"]
    how = task_setting(config, "truthfulness.removal.replacement", task)
    extra = {"blur": {"blur_sigma": config["localisation"]["degradation"]["blur_sigma"]},
             "road": {"road_noise": config["localisation"]["road"]["noise"]}}.get(how, {})
    return {**extra, "n_steps": r["n_steps"], "baselines": r["baselines"],
            "replacement": how,
            "neighbourhood_size": r["neighbourhood_size"], "low_quantile": r["low_quantile"],
            "metric": task_setting(config, "truthfulness.metric", task), "batch_size": removal_batch(config, task),
            "fast": truth["fast"],
            # only when on: a key added to every job's params would rerun finished jobs
            **({"compile": True} if truth.get("compile") else {})}


def degradation_cfg(config: dict, task: str) -> dict:
    """The MoRF/LeRF config as clinxai.evaluation.degradation takes it for one task: `perturbation: replacement`
    becomes the task's feature-removal replacement, so both perturb alike."""
    d, removal = config["localisation"]["degradation"], removal_cfg(config, task)
    how = removal["replacement"] if d["perturbation"] == "replacement" else d["perturbation"]
    # only the parameters of the perturbation in use, so that editing another's does not rerun these jobs
    used = {"blur": {"blur_sigma": d["blur_sigma"]}, "road": {"road_noise": config["localisation"]["road"]["noise"]},
            "neighbourhood": {"neighbourhood_size": removal["neighbourhood_size"]},
            "sampled": {"low_quantile": removal["low_quantile"]}}.get(how, {})
    return {"steps": d["steps"], "random_orderings": d["random_orderings"], "perturbation": how, **used,
            "max_cases": d["max_cases"], "batch_size": removal_batch(config, task),
            "fast": config["truthfulness"]["fast"], **({"compile": True} if config["truthfulness"].get("compile") else {})}


def road_reuses_removal(config: dict) -> bool:
    """Whether the ROAD comparison's own-replacement curves are feature removal's (every case, the same
    baselines): then they are read, not recomputed."""
    road = config["localisation"]["road"]
    return road["max_cases"] is None and road["baselines"] == config["truthfulness"]["removal"]["baselines"]


def road_cfg(config: dict, task: str) -> dict:
    """Feature removal's config for the ROAD comparison: ROAD and -- unless feature removal's own curves are the
    same perturbations (road_reuses_removal) -- the task's replacement, on the configured subset of cases with the
    configured number of baselines."""
    road, removal = config["localisation"]["road"], removal_cfg(config, task)
    own = [] if road_reuses_removal(config) or removal["replacement"] == "road" else [removal["replacement"]]
    return {**removal, "baselines": road["baselines"], "max_cases": road["max_cases"],
            "road_noise": road["noise"], "replacements": own + ["road"]}


def task_postprocess_cfg(config: dict, task: str) -> dict:
    """The `heatmaps.postprocess` config as `postprocess` takes it for one task (smoothing is per task)."""
    post = config["heatmaps"]["postprocess"]
    return {**post, "smooth_sigma": task_setting(config, "heatmaps.postprocess.smooth_sigma", task)}


def mask_dilation(config: dict, task: str) -> int:
    """Side of the square the task's clinical mask is dilated by per axial slice on its grid (0: none)."""
    if kind_of(config, task).mask.dilation is None:
        return 0
    d = task_setting(config, "plausibility.mask_dilation", task)
    if not d:
        return 0
    return dilation_size(d["square"], d["reference_size"], config["data"][task]["grid"][0])


def dilation_size(square: int, reference_size: int, grid_size: int) -> int:
    """Side of the dilation square on this grid: `square` voxels at an in-plane size of `reference_size` (the
    reference code: 20 at 128), scaled to `grid_size`; 0 or 1 means no dilation."""
    if square <= 1:
        return 0
    return max(1, int(round(square * grid_size / reference_size)))


# ---- configuration files: syntax and duplicated keys, named by file, line and column ----
class _StrictLoader(yaml.SafeLoader):
    """YAML loader that refuses a key given twice in one mapping (YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(f"{self.name}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}: key "
                                  f"{key!r} appears twice in one mapping (first on line {seen[key] + 1}); YAML would "
                                  "keep the last silently. Delete one of them.")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_config_file(path) -> dict:
    """A config file parsed strictly: a syntax error or a duplicated key names the file, line and column."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            loader = _StrictLoader(fh)
            loader.name = str(path)
            try:
                return loader.get_single_data() or {}
            finally:
                loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({err.problem or err.context}). Check the indentation, colons "
                          "and quotes there.") from err
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read ({err.strerror}).") from err


def check_device(config: dict, argv, environ) -> None:
    """training.device: cuda on a machine without an NVIDIA GPU fails in every model job, after Snakemake has
    removed the outputs it would replace: stop before. Cluster runs (jobs elsewhere) are not checked here."""
    if config["training"]["device"] != "cuda" or "SLURM_JOB_ID" in environ or "slurm" in " ".join(argv):
        return
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        raise ConfigError("config key training.device = 'cuda', but this machine has no NVIDIA GPU (no /dev/nvidia0). "
                          "Use auto (CUDA where present, else CPU) or cpu.")


def check_against_results(config: dict, results: str = "results") -> None:
    """Settings that must agree with the data: the unified-supervoxel channel and the exported cases."""
    for task in config["tasks"]:
        kind = kind_of(config, task)
        channel = task_setting(config, "heatmaps.supervoxels", task)["unified_channel"]
        if channel >= len(kind.modalities):
            raise ConfigError(f"config key heatmaps.supervoxels.{task}.unified_channel = {channel}: the {kind.name} "
                              f"kind has {len(kind.modalities)} modalities ({', '.join(kind.modalities)}); use 0 to "
                              f"{len(kind.modalities) - 1}.")
        cases = config["heatmaps"]["export"]["cases"]
        split = Path(results) / task / "data" / "split.csv"
        if isinstance(cases, list) and split.is_file():
            import csv

            with open(split, newline="") as fh:
                test = [r["case"] for r in csv.DictReader(fh) if r["split"] == "test"]
            wrong = [str(c) for c in cases if str(c) not in test]
            if wrong:
                raise ConfigError(f"config key heatmaps.export.cases: {wrong} are not test cases of {task} "
                                  f"(test cases: {', '.join(test[:20])}{' ...' if len(test) > 20 else ''}).")


def main(argv=None) -> int:
    """`python -m clinxai.config check FILE...`: each file parsed strictly (syntax, duplicated keys), then the
    files merged in order (as Snakemake merges --configfile) and validated."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m clinxai.config", description=main.__doc__.splitlines()[0])
    ap.add_argument("command", choices=["check"])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    try:
        merged: dict = {}
        for f in args.files:
            merged = _merge(merged, load_config_file(f))
        validate_config(merged, check_paths=False)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(args.files)}")
    return 0


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out



def sensitivity_cfg(config: dict, task: str) -> dict:
    """The sensitivity config as clinxai.evaluation.sensitivity.run_sensitivity takes it for one task: ΔAUPC of
    the hyperparameter grid's settings only for the tasks listed (with their feature-removal config)."""
    s = config["sensitivity"]
    removal = removal_cfg(config, task) if task in (s["hyperparameters"]["delta_aupc"] or []) else None
    return {"max_cases": s["max_cases"], "repeats": s["determinism"]["repeats"], "depths": s["randomisation"]["depths"],
            # a shift set to null is off (an overlay cannot delete a key of the shipped config)
            "input": {"draws": s["input"]["draws"],
                      "shifts": {k: v for k, v in s["input"]["shifts"].items() if v is not None}},
            "max_sensitivity": s["max_sensitivity"], "batch_size": task_batching(config, task)["batch_size"],
            "removal": removal}


if __name__ == "__main__":
    raise SystemExit(main())

