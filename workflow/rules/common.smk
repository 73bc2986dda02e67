import sys
from pathlib import Path

# The science lives in workflow/clinxai; make it importable even where it is not pip-installed.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from clinxai.config import validate_config

validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

TASKS = config["tasks"]
SEEDS = config["seeds"]
RESULTS = "results"


wildcard_constraints:
    task="glioma|knee|synthetic",
    seed=r"\d+",


def res(rule_name, key):
    """A resource of a rule from config, falling back to resources.default."""
    table = config["resources"]
    return table.get(rule_name, {}).get(key, table["default"][key])


def rule_resources(rule_name, scale_mem=False):
    """mem_mb, runtime and gpu of a rule from config; mem_mb grows with the attempt for heavy rules (--retries)."""
    mem = res(rule_name, "mem_mb")
    return {
        "mem_mb": (lambda wc, attempt: mem * attempt) if scale_mem else mem,
        "runtime": res(rule_name, "runtime"),
        "gpu": res(rule_name, "gpu"),
    }


def data_root(task):
    """The dataset folder a task reads: the user's real data, or the phantom the workflow builds."""
    cfg = config["data"][task]
    if task == "glioma":
        return cfg["brats_dir"] if cfg["source"] == "brats" else f"{RESULTS}/phantoms/brats"
    return cfg["mrnet_dir"] if cfg["source"] == "mrnet" else f"{RESULTS}/phantoms/mrnet"


def boxes_dir(task):
    cfg = config["data"]["knee"]
    if cfg["source"] == "phantom":
        return f"{RESULTS}/phantoms/mrnet/boxes"
    return cfg["boxes_dir"]


def data_inputs(task):
    """Inputs of prepare_data: the dataset folder and, for real MRNet, the menisci box masks if configured."""
    inputs = {"root": data_root(task)}
    if task == "knee" and config["data"]["knee"]["source"] == "mrnet" and config["data"]["knee"]["boxes_dir"]:
        inputs["boxes"] = config["data"]["knee"]["boxes_dir"]
    return inputs


def prepared(task):
    return {
        "split": f"{RESULTS}/{task}/data/split.csv",
        "meta": f"{RESULTS}/{task}/data/meta.json",
        "excluded": f"{RESULTS}/{task}/data/excluded.csv",
        "arrays": f"{RESULTS}/{task}/data/arrays",
    }


# Tasks with real-data counterparts get feature removal and modality Shapley; the synthetic task's truthfulness is
# MSFI against its known ground truth (SPEC §4).
REMOVAL_TASKS = [t for t in TASKS if t != "synthetic"]


def all_targets():
    targets = []
    for task in TASKS:
        targets += [
            f"{RESULTS}/{task}/models/summary.csv",
            f"{RESULTS}/{task}/heatmaps/timing.csv",
            f"{RESULTS}/{task}/heatmaps/export",
        ]
        if task in REMOVAL_TASKS:
            targets += [
                f"{RESULTS}/{task}/truthfulness/summary.csv",
                f"{RESULTS}/{task}/figures/fig3_perturbation_curves.png",
            ]
        else:
            targets += [f"{RESULTS}/synthetic/truthfulness/msfi_summary.csv", f"{RESULTS}/synthetic/gan/check.json"]
        if task in PLAUSIBILITY_TASKS:
            targets += [informativeness_table(task), f"{RESULTS}/{task}/figures/fig5_right_wrong.png"]
    targets += list(STATISTICS.values()) + [f"{RESULTS}/figures/critical_difference.png"]
    targets += [p for name in TABLE_CAPTIONS for p in table_outputs(name).values()]
    targets += [f"{RESULTS}/tables/scorecard.csv", f"{RESULTS}/figures/scorecard.png", f"{RESULTS}/report/versions.csv"]
    return targets
