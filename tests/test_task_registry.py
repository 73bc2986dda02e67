"""The task registry (clinxai.tasks) is the one place that knows task kinds: no code elsewhere branches on a task name,
every kind has what the stages ask of it, and a task's name is the user's choice."""
import ast
import copy
import io
import re
import tokenize

import pytest
import yaml

from clinxai.config import ConfigError, removal_cfg, task_methods, validate_config
from clinxai.models import MODEL_FAMILIES
from clinxai.tasks import KINDS, kind_of, source_task, task_records, task_setting

from helpers import ROOT

NAMES = set(KINDS)  # the demo's task names are the kinds' names
REGISTRY = ROOT / "workflow/clinxai/tasks.py"
CODE = [*(ROOT / "workflow").rglob("*.py"), *(ROOT / "workflow").rglob("*.smk"), *(ROOT / "benchmarks").rglob("*.py"),
        ROOT / "Snakefile"]
COMPARE = {"==", "!=", "in"}


def task_name_branches(text: str, names: set = NAMES) -> list[tuple[int, str]]:
    """(line, code) of every task-name literal (or other `names`) used to branch: compared (==, !=, in a
    collection), used as a subscript or dict key, or joined into a wildcard pattern ("glioma|knee")."""
    toks = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    found = []
    for i, t in enumerate(toks):
        if t.type != tokenize.STRING:
            continue
        try:
            value = ast.literal_eval(t.string)
        except (ValueError, SyntaxError):  # f-strings
            value = t.string
        if isinstance(value, str) and re.search(r"\b(%s)\|" % "|".join(names), value):
            found.append((t.start[0], t.line.strip()))
            continue
        if value not in names:
            continue
        prev, nxt = toks[i - 1].string, toks[i + 1].string if i + 1 < len(toks) else ""
        j = i - 1  # a collection after `in`: walk back over its items to its opening bracket
        while j > 0 and (toks[j].type == tokenize.STRING or toks[j].string == ","):
            j -= 1
        in_collection = toks[j].string in "([{" and toks[j - 1].string in COMPARE
        if prev in COMPARE | {"["} or nxt in {"==", "!=", "]", ":"} or in_collection:
            found.append((t.start[0], t.line.strip()))
    return found


def test_the_detector_finds_task_name_branches():
    code = ('if task == "glioma":\n    pass\nx = t in ("knee", "synthetic")\ny = cfg["knee"]\nz = {"glioma": 1}\n'
            'w = "glioma|knee"\nok = {"root": "synthetic"}\nalso_ok = f"{task}_seed"\n')
    assert sorted({line for line, _ in task_name_branches(code)}) == [1, 3, 4, 5, 6]


def test_no_task_name_comparisons_outside_the_registry():
    offenders = [f"{p.relative_to(ROOT)}:{line}: {code}" for p in CODE if p != REGISTRY
                 for line, code in task_name_branches(p.read_text())]
    assert not offenders, "task-name branches outside clinxai/tasks.py (ask the task's kind instead):\n" + \
        "\n".join(offenders)


def test_no_method_name_comparisons_outside_the_registries():
    # what varies between heatmap methods is a field of clinxai.attribution.registry.Method (the task registry's
    # per-kind defaults may list methods)
    from clinxai.attribution.registry import METHODS

    names = set(METHODS) | {m.captum for m in METHODS.values()} | {m.wraps for m in METHODS.values() if m.wraps}
    assert task_name_branches('if method.name == "Lime":\n    pass\n', names) == [(1, 'if method.name == "Lime":')]
    allowed = {REGISTRY, ROOT / "workflow/clinxai/attribution/registry.py"}
    offenders = [f"{p.relative_to(ROOT)}:{line}: {code}" for p in CODE if p not in allowed
                 for line, code in task_name_branches(p.read_text(), names)]
    assert not offenders, "method-name branches outside the registry (add a Method field instead):\n" + \
        "\n".join(offenders)


def test_every_kind_has_a_model_family_and_reader():
    from clinxai.data.phantoms import PHANTOM_WRITERS
    from clinxai.data.prepare import READERS

    for kind in KINDS.values():
        assert kind.model in MODEL_FAMILIES
        assert kind.generated or kind.dataset in READERS
        assert kind.phantom is None or kind.phantom in PHANTOM_WRITERS
        assert kind.reads_kind is None or kind.reads_kind in KINDS


DEMO = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def renamed_config():
    """The demo with its tasks under the user's own names: kinds set explicitly, per-task keys left to defaults."""
    c = copy.deepcopy(DEMO)
    c["tasks"] = ["brain3d", "knees"]
    c["data"] = {"brain3d": {**c["data"]["glioma"], "kind": "glioma"}, "knees": {**c["data"]["knee"], "kind": "knee"},
                 "slices": {**c["data"]["synthetic"], "kind": "synthetic"}}
    c["training"] = {"device": "cpu", "brain3d": c["training"]["glioma"]}
    for section in (c["heatmaps"]["exclude"], c["heatmaps"]["params"], c["heatmaps"]["supervoxels"],
                    c["heatmaps"]["postprocess"]["smooth_sigma"], c["heatmaps"]["batching"].setdefault("per_task", {}),
                    c["truthfulness"]["metric"], c["truthfulness"]["batch_size"],
                    c["truthfulness"]["removal"]["replacement"], c["plausibility"]["phi_normalisation"],
                    c["plausibility"]["mask_dilation"]):
        section.clear()
    return c


def test_tasks_are_named_by_the_user_with_defaults_from_their_kind():
    c = renamed_config()
    c["tasks"].append("slices")
    validate_config(c)
    assert kind_of(c, "knees").name == "knee" and source_task(c, "slices") == "brain3d"
    assert removal_cfg(c, "knees")["metric"] == "auc" and removal_cfg(c, "brain3d")["replacement"] == "zero"
    assert "GradCAM" not in task_methods(c, "knees")  # the knee kind's default exclusions
    assert task_setting(c, "training", "knees")["model"]["widths"] == [64, 192, 384, 256, 256]  # the reference
    assert task_setting(c, "training", "brain3d") == DEMO["training"]["glioma"]  # what the config says wins
    assert [r["title"] for r in task_records(c)] == ["brain3d", "knees", "slices"]


def test_task_errors_name_the_key():
    c = renamed_config()
    c["data"]["knees"]["kind"] = "prostate"
    with pytest.raises(ConfigError, match=r"data\.knees\.kind = 'prostate'.*known: glioma, knee, synthetic"):
        validate_config(c)
    c = renamed_config()
    c["tasks"].append("lungs")
    with pytest.raises(ConfigError, match=r"tasks lists lungs without an entry under data"):
        validate_config(c)
    c = renamed_config()
    c["heatmaps"]["exclude"]["brian3d"] = []
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) heatmaps\.exclude\.brian3d"):
        validate_config(c)
    c = renamed_config()
    c["data"]["slices"]["source_task"] = "knees"
    c["tasks"].append("slices")
    with pytest.raises(ConfigError, match=r"data\.slices\.source_task = 'knees': not a glioma task"):
        validate_config(c)


def test_old_config_key_is_still_read():
    c = copy.deepcopy(DEMO)
    c["truthfulness"]["synthetic"] = c["truthfulness"].pop("groundtruth")
    validate_config(c)
    assert c["truthfulness"]["groundtruth"]["report"] == "msfi_global"


def test_names_phantoms_and_sources_are_checked():
    c = renamed_config()
    c["data"]["all"] = c["data"].pop("knees")
    c["tasks"] = ["brain3d", "all"]
    with pytest.raises(ConfigError, match=r"task name 'all' \(data\.all\) is reserved"):
        validate_config(c)
    c = renamed_config()  # two glioma-kind phantom tasks share results/phantoms/brats: same settings or an error
    c["data"]["second"] = {**c["data"]["brain3d"], "phantom": {**c["data"]["brain3d"]["phantom"], "seed": 9}}
    c["tasks"].append("second")
    with pytest.raises(ConfigError, match=r"data\.brain3d\.phantom and data\.second\.phantom differ"):
        validate_config(c)
    c = renamed_config()  # the GAN reads a configured glioma-kind task before an entry the overlay could not delete
    c["data"] = {"glioma": c["data"]["brain3d"], **c["data"]}
    c["tasks"] = ["brain3d", "slices"]
    validate_config(c)
    assert source_task(c, "slices") == "brain3d"


def test_an_old_key_in_an_overlay_wins():
    c = copy.deepcopy(DEMO)  # the shipped config has the new key; an overlay written for the old one adds it
    c["truthfulness"]["synthetic"] = {"report": "msfi"}
    validate_config(c)
    assert c["truthfulness"]["groundtruth"] == {"report": "msfi"} and "synthetic" not in c["truthfulness"]


def test_a_checkpoint_of_another_kind_is_refused(tmp_path):
    from clinxai import ClinxaiError
    from clinxai.models import GeneNet3D, load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "m.pt", GeneNet3D(4, (8, 8, 8), widths=(4,), fc=8), "brain", "genenet3d",
                    {"in_channels": 4, "grid": [8, 8, 8], "widths": [4], "fc": 8})
    assert isinstance(load_checkpoint(tmp_path / "m.pt", task="brain", family="genenet3d"), GeneNet3D)
    with pytest.raises(ClinxaiError, match=r"holds a genenet3d model, the task's kind needs kneenet"):
        load_checkpoint(tmp_path / "m.pt", task="brain", family="kneenet")
