import os
import sys
from pathlib import Path

# The science lives in workflow/clinxai; make it importable even where it is not pip-installed.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

# Only torch-free modules here: every snakemake call (each SLURM job too) parses this file.
from clinxai.config import (
    check_against_results,
    check_device,
    degradation_cfg,
    load_config_file,
    mask_dilation,
    removal_cfg,
    road_cfg,
    road_reuses_removal,
    sensitivity_cfg,
    task_batching,
    task_methods,
    task_postprocess_cfg,
    validate_config,
)
from clinxai.data.input_state import manifest_files, update_manifest
from clinxai.runlock import clear_stale_locks
from clinxai.tasks import (
    checkpoints,
    data_root,
    data_source,
    has_clinical_mask,
    kind_of,
    mask_folder,
    source_task,
    task_records,
    supplied_model,
    task_seeds,
    task_setting,
    task_title,
    tasks_where,
)

# Config files parsed strictly (a key given twice is an error), then the merged config validated
for _file in workflow.configfiles:
    load_config_file(_file)
validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
# training.device is read by the scripts from config, not given as a param: switching it must not rerun (and first delete)
# finished models.
if workflow.is_main_process:
    check_device(config, sys.argv, os.environ)
    check_against_results(config, "results")
# After a killed run, rerunning the same command resumes: its stale locks are removed (clinxai.runlock says when).
_lock_note = clear_stale_locks(Path.cwd(), workflow.is_main_process)
if _lock_note:
    print(_lock_note, file=sys.stderr)

TASKS = config["tasks"]
RESULTS = "results"
NOTHING = "(?!x)x"  # a wildcard pattern that never matches


def one_of(names):
    """Wildcard pattern of exactly these names (task and method names are letters and digits)."""
    return "|".join(names) if names else NOTHING


wildcard_constraints:
    task=one_of(TASKS),
    seed=r"\d+",


# Task groups, from the task registry (clinxai.tasks): what each task's kind has.
PREPARED_TASKS = tasks_where(config, lambda k: not k.generated)  # read and prepared (prepare_data)
GENERATED_TASKS = tasks_where(config, lambda k: k.generated)  # made by the workflow (synthetic_gan, synthetic_data)
REMOVAL_TASKS = tasks_where(config, lambda k: k.removal)  # feature removal + modality Shapley
PLAUSIBILITY_TASKS = [t for t in TASKS if has_clinical_mask(config, t)]  # real MRNet without boxes: NaN in Table 3
TASK_RECORDS = task_records(config)
SUPPLIED_TASKS = [t for t in TASKS if supplied_model(config, t)]  # the user's model stands in for training
TRAINED_TASKS = [t for t in TASKS if t not in SUPPLIED_TASKS]


# ---- resources ----
def res(rule_name, key):
    """A resource of a rule from config, falling back to resources.default, and to 0 for a priority."""
    table = config["resources"]
    fallback = table["default"].get(key, 0) if key == "priority" else table["default"][key]
    return table.get(rule_name, {}).get(key, fallback)


def rule_resources(rule_name, scale_mem=False):
    """mem_mb, runtime and gpu of a rule from config; mem_mb grows with the attempt for heavy rules (--retries)."""
    mem = res(rule_name, "mem_mb")
    return {
        "mem_mb": (lambda wc, attempt: mem * attempt) if scale_mem else mem,
        "runtime": res(rule_name, "runtime"),
        "gpu": res(rule_name, "gpu"),
    }


# ---- data ----
def needed_data_tasks():
    """Tasks whose dataset folders the run reads: the configured ones and those a generated task reads."""
    needed = list(TASKS) + [source_task(config, t) for t in GENERATED_TASKS]
    return list(dict.fromkeys(needed))


# Phantom datasets to build: phantom format -> the task whose data.<task>.phantom settings make it
PHANTOMS = {
    kind_of(config, t).phantom: t
    for t in reversed(needed_data_tasks())
    if kind_of(config, t).phantom and data_source(config, t) == "phantom"
}


def real_data_folders(task):
    """The user's folders a task reads (its data and mask folders; a manifest and the files it names); none for
    phantoms, which the workflow writes."""
    if data_source(config, task) not in kind_of(config, task).sources:
        return []
    root = data_root(config, task, RESULTS)
    if os.path.isfile(root):
        return manifest_files(root)
    folder = mask_folder(config, task, RESULTS)
    return [root] + ([folder] if folder else [])


def input_manifest(task):
    """results/manifests/<task>.tsv, rewritten when a file under the task's real data folders changes (or none)."""
    folders = real_data_folders(task)
    return [update_manifest(f"{RESULTS}/manifests/{task}.tsv", folders)] if folders else []


def data_inputs(task):
    """Inputs of prepare_data: the dataset folder, for real data the clinical-mask folder if configured, and the
    manifest of the real data's files (so that an edit inside them reruns preparation)."""
    inputs = {"root": data_root(config, task, RESULTS)}
    folder = mask_folder(config, task, RESULTS)
    if folder and data_source(config, task) != "phantom":
        inputs["boxes"] = folder
    inputs.update({"input_state": m for m in input_manifest(task)})
    return inputs


def prepare_params(task):
    """A task's data settings for prepare_data; of a supplied model only whether there is one (an edit of its
    factory, layers or checkpoints must not redo the data), and not the performance metric."""
    data = {k: v for k, v in config["data"][task].items() if k not in ("model", "metric")}
    if supplied_model(config, task):
        data["supplied_model"] = True
    return {
        **data,
        "root": data_root(config, task, RESULTS),
        "boxes_dir": mask_folder(config, task, RESULTS),
    }


def prepared(task):
    return {
        "split": f"{RESULTS}/{task}/data/split.csv",
        "meta": f"{RESULTS}/{task}/data/meta.json",
        "excluded": f"{RESULTS}/{task}/data/excluded.csv",
        "arrays": f"{RESULTS}/{task}/data/arrays",
    }


# ---- training ----
def seeds_of(task):
    """The models of a task: the configured seeds, or 1..n for a supplied model's n checkpoints (clinxai.tasks)."""
    return task_seeds(config, task)


def model_outputs(task, seed):
    root = f"{RESULTS}/{task}/models/seed{seed}"
    return {
        "checkpoint": f"{root}/model.pt",
        "history": f"{root}/history.csv",
        "predictions": f"{root}/predictions.csv",
        "metrics": f"{root}/metrics.json",
    }


def models_of(task, key):
    return [model_outputs(task, s)[key] for s in seeds_of(task)]


def import_inputs(wc):
    """A prepared task and the user's checkpoint that stands in for model `seed` (1, 2, ...)."""
    inputs = {k: prepared(wc.task)[k] for k in ("split", "meta", "arrays")}
    files = checkpoints(supplied_model(config, wc.task))
    if not 1 <= int(wc.seed) <= len(files):
        raise ValueError(f"{wc.task} has models 1 to {len(files)} (data.{wc.task}.model.checkpoint), not {wc.seed}.")
    return {**inputs, "source": files[int(wc.seed) - 1]}


def train_inputs(wc):
    inputs = {k: prepared(wc.task)[k] for k in ("split", "meta", "arrays")}
    pretrained = task_setting(config, "training", wc.task)["model"].get("pretrained")
    if pretrained:
        inputs["pretrained"] = pretrained
    return inputs


# ---- heatmaps ----
def n_shards(method):
    return int(config["heatmaps"]["shards"].get(method, 1))


ALL_METHODS = sorted({m for t in TASKS for m in task_methods(config, t)})
SHARDED = [m for m in ALL_METHODS if n_shards(m) > 1]
UNSHARDED = [m for m in ALL_METHODS if n_shards(m) == 1]
# One process per model pays the imports (torch, captum, MONAI: ~5 s) once instead of once per method; the price is
# that editing one method's parameters reruns every method of that task.
GROUP_HEATMAPS = config["heatmaps"].get("group_methods", False)
GROUP_REMOVAL = config["truthfulness"].get("group_methods", False)


def model_methods(task):
    """The methods one heatmaps_<task> job computes: the task's unsharded ones."""
    return [m for m in task_methods(config, task) if n_shards(m) == 1]


def heatmap_outputs(task, seed, method):
    root = f"{RESULTS}/{task}/heatmaps/seed{seed}"
    return {"maps": f"{root}/{method}.npz", "table": f"{root}/{method}.csv"}


def grouped_heatmap_outputs(task):
    """Outputs of heatmaps_<task>: every unsharded method's maps and table, with {task} and {seed} wildcards."""
    return {f"{k}_{m}": p for m in model_methods(task) for k, p in heatmap_outputs("{task}", "{seed}", m).items()}


def shard_outputs(ext):
    return f"{RESULTS}/{{task}}/heatmaps/seed{{seed}}/shards/{{method}}_{{shard}}of{{n}}.{ext}"


def heatmap_inputs(wc):
    return {
        "checkpoint": model_outputs(wc.task, wc.seed)["checkpoint"],
        "predictions": model_outputs(wc.task, wc.seed)["predictions"],
        "meta": prepared(wc.task)["meta"],
        "arrays": prepared(wc.task)["arrays"],
        "masks": f"{RESULTS}/{wc.task}/heatmaps/supervoxels.npz",
    }


def heatmap_cfg(wc, methods=None):
    """Only what one job uses, so editing another method's parameters or the export does not rerun it."""
    methods = methods or [wc.method]
    params = task_setting(config, "heatmaps.params", wc.task)
    return {
        "params": {wc.task: {m: params.get(m, {}) for m in methods}},
        "batching": task_batching(config, wc.task),
        # for the status column (all-zero after post-processing); this task's smoothing only
        "postprocess": task_postprocess_cfg(config, wc.task),
    }


def shard_files(wc, kind):
    n = n_shards(wc.method)
    ext = "npz" if kind == "maps" else "csv"
    return [f"{RESULTS}/{wc.task}/heatmaps/seed{wc.seed}/shards/{wc.method}_{i}of{n}.{ext}" for i in range(1, n + 1)]


def all_heatmap_tables(task):
    return [heatmap_outputs(task, s, m)["table"] for s in seeds_of(task) for m in task_methods(config, task)]


def timing_tables():
    return [f"{RESULTS}/{t}/heatmaps/timing.csv" for t in TASKS]


# ---- truthfulness ----
def truth_dir(task):
    return f"{RESULTS}/{task}/truthfulness"


def removal_outputs(task, seed, method):
    return {
        "curves": f"{truth_dir(task)}/removal/seed{seed}/{method}.csv",
        "sums": f"{truth_dir(task)}/modality_sums/seed{seed}/{method}.csv",
    }


def grouped_removal_outputs(task):
    return {f"{k}_{m}": p for m in task_methods(config, task) for k, p in removal_outputs("{task}", "{seed}", m).items()}


def all_removal_outputs(task, key):
    return [removal_outputs(task, s, m)[key] for s in seeds_of(task) for m in task_methods(config, task)]


def shapley_outputs(task):
    return {"subsets": f"{truth_dir(task)}/shapley_subsets.csv", "phi": f"{truth_dir(task)}/shapley.csv"}


def truthfulness_outputs(task):
    return {
        "delta_aupc": f"{truth_dir(task)}/delta_aupc.csv",
        "mi_correlation": f"{truth_dir(task)}/mi_correlation.csv",
        "summary": f"{truth_dir(task)}/summary.csv",
    }


def model_maps_inputs(wc, methods):
    """A model, its test set and the maps of `methods`: feature removal, degradation and ROAD jobs."""
    return {
        "checkpoint": model_outputs(wc.task, wc.seed)["checkpoint"],
        "predictions": model_outputs(wc.task, wc.seed)["predictions"],
        "meta": prepared(wc.task)["meta"],
        "arrays": prepared(wc.task)["arrays"],
        **{f"maps_{m}": heatmap_outputs(wc.task, wc.seed, m)["maps"] for m in methods},
    }


def shapley_cfg(task):
    return {
        **{k: v for k, v in removal_cfg(config, task).items() if k in ("metric", "batch_size", "fast", "compile")},
        **config["truthfulness"].get("shapley", {}),
    }


# ---- ground truth (generated tasks: the synthetic kind) ----
GAN_FILES = {"generator": "generator.pt", "losses": "losses.csv", "samples": "samples.png", "check": "check.json"}


def gan_outputs(task):
    return {k: f"{RESULTS}/{task}/gan/{name}" for k, name in GAN_FILES.items()}


def groundtruth_sets(task):
    return f"{RESULTS}/{task}/data/groundtruth"


def groundtruth_outputs(task):
    return {
        "accuracy": f"{truth_dir(task)}/groundtruth_accuracy.csv",
        "phi": f"{truth_dir(task)}/modality_importance.csv",
        "summary": f"{truth_dir(task)}/msfi_summary.csv",
    }


def synthetic_data_cfg(task):
    return {k: v for k, v in config["data"][task].items() if k not in ("gan", "split_fractions", "kind", "source_task")}


def synthetic_split(task):
    """The task's own split fractions if set: many training slices, a test set the heatmap methods can afford."""
    return {**config["split"], "fractions": config["data"][task].get("split_fractions") or config["split"]["fractions"]}


# ---- plausibility ----
def plausibility_table(task, method):
    return f"{RESULTS}/{task}/plausibility/{method}.csv"


def plausibility_tables(task):
    return [plausibility_table(task, m) for m in task_methods(config, task)]


GROUP_PLAUSIBILITY = config["plausibility"].get("group_methods", False)


def task_maps_inputs(task, methods):
    """Every model's test predictions and the maps of `methods` on each: plausibility and localisation jobs."""
    return {
        "predictions": models_of(task, "predictions"),
        "meta": prepared(task)["meta"],
        "arrays": prepared(task)["arrays"],
        **{f"maps_{m}": [heatmap_outputs(task, s, m)["maps"] for s in seeds_of(task)] for m in methods},
    }


def grouped_tables(table_of, task):
    """The per-method tables one job per task writes (plausibility, localisation with group_methods)."""
    return {f"table_{m}": table_of("{task}", m) for m in task_methods(config, task)}


def informativeness_table(task):
    return f"{RESULTS}/{task}/plausibility/informativeness.csv"


def modality_importance(task):
    """φ: modality Shapley values, or the known importance of a ground-truth task."""
    return shapley_outputs(task)["phi"] if task in REMOVAL_TASKS else groundtruth_outputs(task)["phi"]


# ---- localisation and degradation (issue 20) ----
GROUP_DEGRADATION = config["localisation"]["degradation"].get("group_methods", False)


def chosen_seeds(task, chosen):
    """A subset of a task's models (localisation.road.seeds, sensitivity.seeds; null: all); a task with a supplied
    model reads the numbers as its checkpoints', and runs its first where none of them is one."""
    own = seeds_of(task)
    if not chosen:
        return own
    return [s for s in own if s in chosen] or own[:1]


def road_seeds(task):
    return chosen_seeds(task, config["localisation"]["road"]["seeds"])


LOCALISATION_CATEGORY = "Localisation and degradation"


def loc_dir(task):
    return f"{RESULTS}/{task}/localisation"


def localisation_table(task, method):
    """Every localisation score of one method's maps against the clinical masks (per modality and pooled)."""
    return f"{loc_dir(task)}/maps/{method}.csv"


GROUP_LOCALISATION = config["localisation"].get("group_methods", False)


def degradation_output(task, seed, method):
    return f"{loc_dir(task)}/degradation/seed{seed}/{method}.csv"


def grouped_degradation_outputs(task):
    return {f"curves_{m}": degradation_output("{task}", "{seed}", m) for m in task_methods(config, task)}


def all_degradation_outputs(task):
    return [degradation_output(task, s, m) for s in seeds_of(task) for m in task_methods(config, task)]


def road_curves(task, seed):
    return f"{loc_dir(task)}/road/seed{seed}.csv"


def road_inputs(wc):
    """The ROAD curves of the configured models, and their feature-removal curves where those are the comparison's
    own-replacement side (road_reuses_removal: every case, the same baselines)."""
    removal = [removal_outputs(wc.task, s, m)["curves"] for s in road_seeds(wc.task) for m in task_methods(config, wc.task)]
    return {
        "curves": [road_curves(wc.task, s) for s in road_seeds(wc.task)],
        "removal": removal if road_reuses_removal(config) else [],
    }


def road_outputs(task):
    return {"comparison": f"{loc_dir(task)}/road/comparison.csv", "kendall": f"{loc_dir(task)}/road/kendall.csv"}


def localisation_outputs(task):
    """Per-case scores (long), DS_c per model and method, and the per-method summary of one task."""
    return {k: f"{loc_dir(task)}/{k}.csv" for k in ("scores", "ds_c", "summary")}


def localisation_summary_inputs(wc):
    maps = [localisation_table(wc.task, m) for m in task_methods(config, wc.task)]
    return {"curves": all_degradation_outputs(wc.task), "maps": maps if wc.task in PLAUSIBILITY_TASKS else []}


# ---- sensitivity (issue 19) ----
GROUP_SENSITIVITY = config["sensitivity"].get("group_methods", False)


def sensitivity_seeds(task):
    return chosen_seeds(task, config["sensitivity"]["seeds"])


PERMUTED_MODEL = config["sensitivity"]["label"]["permuted_model"]  # true, false or a list of tasks
SENSITIVITY_CATEGORY = "Sensitivity"


def sens_dir(task):
    return f"{RESULTS}/{task}/sensitivity"


def sensitivity_output(task, seed, method):
    return f"{sens_dir(task)}/seed{seed}/{method}.csv"


def grouped_sensitivity_outputs(task):
    return {f"table_{m}": sensitivity_output("{task}", "{seed}", m) for m in task_methods(config, task)}


def all_sensitivity_outputs(task):
    return [sensitivity_output(task, s, m) for s in sensitivity_seeds(task) for m in task_methods(config, task)]


def permuted_model_outputs(task, seed):
    """The data-randomisation test's model of a seed: trained like the seed's model, on permuted labels."""
    root = f"{RESULTS}/{task}/models/permuted/seed{seed}"
    return {k: f"{root}/{os.path.basename(p)}" for k, p in model_outputs(task, seed).items()}


def sensitivity_inputs(wc):
    """A model, its test set, the supervoxel masks and (sensitivity.label.permuted_model) the permuted-label
    model: the job recomputes maps; it reads none of the heatmaps stage's."""
    inputs = dict(heatmap_inputs(wc))
    permuted = PERMUTED_MODEL is True or wc.task in (PERMUTED_MODEL or [])
    if permuted and wc.task in TRAINED_TASKS:  # a supplied model has no training to repeat on permuted labels
        inputs["permuted"] = permuted_model_outputs(wc.task, wc.seed)["checkpoint"]
    return inputs


def sensitivity_outputs(task):
    """Per-case scores (long), per-method summary, per-setting means, the model's findings and the ΔAUPC spread."""
    names = ("scores", "summary", "settings", "findings", "hyperparameters")
    return {k: f"{sens_dir(task)}/{k}.csv" for k in names}


def sensitivity_figures(task):
    return {k: f"{RESULTS}/{task}/figures/sensitivity_{k}.png" for k in ("attributes", "randomisation")}


# ---- statistics, tables, report ----
STATISTICS = {
    "metrics": f"{RESULTS}/statistics/metrics.csv",
    "friedman": f"{RESULTS}/statistics/friedman.csv",
    "nemenyi": f"{RESULTS}/statistics/nemenyi.csv",
    "kendall": f"{RESULTS}/statistics/kendall.csv",
    "per_model": f"{RESULTS}/statistics/per_model.csv",
}
# Not "Statistics": Snakemake's report defines that link target itself (docutils warns of a duplicate).
STATS_CATEGORY = "Statistics across methods"
TABLE_CAPTIONS = {f"table{i}": f"table{i}.rst" for i in range(2, 7)}
GROUNDTRUTH_METRIC = config["truthfulness"]["groundtruth"]["report"]


def table_outputs(name):
    return {k: f"{RESULTS}/tables/{name}.{k}" for k in ("csv", "md", "tex", "html")}


def table_report(name):
    out = table_outputs(name)
    return {
        **out,
        "html": report(out["html"], caption=f"../report/{name}.rst", category="Tables"),
        "csv": report(out["csv"], caption=f"../report/{name}.rst", category="Tables"),
    }


CARDS_CATEGORY = "Saliency cards"
CARDS = {
    "attributes": f"{RESULTS}/cards/attributes.csv",
    "chooser": f"{RESULTS}/cards/chooser.csv",
    "chooser_md": f"{RESULTS}/cards/chooser.md",
    "chooser_html": f"{RESULTS}/cards/chooser.html",
}


def cards_outputs():
    """The attribute and chooser tables, the chooser's page, per task a folder of card files (JSON, Markdown, HTML
    and an index) and a self-contained page with the comparison and every card (the report's; Snakemake's HTML
    report cannot hold a folder)."""
    return {
        **CARDS,
        "attributes": report(CARDS["attributes"], caption="../report/cards.rst", category=CARDS_CATEGORY),
        "chooser_html": report(CARDS["chooser_html"], caption="../report/chooser.rst", category=CARDS_CATEGORY),
        **{f"cards_{t}": directory(f"{RESULTS}/cards/{t}") for t in TASKS},
        **{
            f"page_{t}": report(
                f"{RESULTS}/cards/{t}.html",
                caption="../report/cards.rst",
                category=CARDS_CATEGORY,
                subcategory=t,
            )
            for t in TASKS
        },
    }


def viewer_inputs(wc):
    """Every model's maps and predictions of a task, its data, and the per-map scores shown beside each map."""
    methods = task_methods(config, wc.task)
    return {
        "maps": [heatmap_outputs(wc.task, s, m)["maps"] for s in seeds_of(wc.task) for m in methods],
        "predictions": models_of(wc.task, "predictions"),
        "meta": prepared(wc.task)["meta"],
        "arrays": prepared(wc.task)["arrays"],
        "plausibility": plausibility_tables(wc.task) if wc.task in PLAUSIBILITY_TASKS else [],
        "scores": localisation_outputs(wc.task)["scores"],
    }


def is_simulated(task):
    """Phantom or generated data: the case viewer's banner says so."""
    return kind_of(config, task).generated or data_source(config, task) == "phantom"


def all_targets():
    targets = []
    for task in TASKS:
        targets += [
            f"{RESULTS}/{task}/models/summary.csv",
            f"{RESULTS}/{task}/heatmaps/timing.csv",
            f"{RESULTS}/{task}/heatmaps/export",
        ]
        if task in REMOVAL_TASKS:
            targets += [truthfulness_outputs(task)["summary"], f"{RESULTS}/{task}/figures/fig3_perturbation_curves.png"]
        else:
            targets += [groundtruth_outputs(task)["summary"], gan_outputs(task)["check"]]
        if task in PLAUSIBILITY_TASKS:
            targets += [informativeness_table(task), f"{RESULTS}/{task}/figures/fig5_right_wrong.png"]
        targets += [localisation_outputs(task)["summary"], f"{RESULTS}/{task}/figures/degradation_curves.png"]
        targets += [f"{RESULTS}/{task}/viewer", sensitivity_outputs(task)["summary"]]
        targets += list(sensitivity_figures(task).values())
        if task in REMOVAL_TASKS:
            targets += list(road_outputs(task).values())
    targets += list(STATISTICS.values()) + [f"{RESULTS}/figures/critical_difference.png"]
    targets += [f"{RESULTS}/figures/critical_difference_{k}.png" for k in ("localisation", "sensitivity")]
    targets += [p for name in TABLE_CAPTIONS for p in table_outputs(name).values()]
    targets += [f"{RESULTS}/tables/scorecard.csv", f"{RESULTS}/figures/scorecard.png", f"{RESULTS}/report/versions.csv"]
    targets += list(CARDS.values()) + [f"{RESULTS}/cards/{t}{ext}" for t in TASKS for ext in ("", ".html")]
    return targets
