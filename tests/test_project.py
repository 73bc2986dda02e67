"""Documentation and packaging stay in step with the code."""
import re
import tomllib

import yaml

from helpers import ROOT


def schema_keys(node, defs, prefix=""):
    for key, sub in node.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if "$ref" in sub:
            sub = defs[sub["$ref"].rsplit("/", 1)[1]]
        if "properties" in sub and not dotted.startswith("resources."):
            yield from schema_keys(sub, defs, dotted + ".")
        else:
            yield dotted


def test_every_config_key_is_documented():
    from clinxai.config import task_schema

    demo = yaml.safe_load((ROOT / "config/config.yaml").read_text())  # per-task keys spelled out for the demo's tasks
    schema = task_schema(demo, yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text()))
    doc = (ROOT / "config/README.md").read_text()
    # Keys shared by every task may be documented once as `<prefix>.<task>.<rest>`.
    def per_task(key):
        return re.sub(r"[.](glioma|knee|synthetic)([.]|$)", r".<task>\2", key)

    missing = [k for k in schema_keys(schema, schema["$defs"]) if f"`{k}`" not in doc and f"`{per_task(k)}`" not in doc]
    assert not missing, f"keys missing from config/README.md: {missing}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    test_cmd = [c for c in commands if "pytest" in c]
    assert len(test_cmd) == 1 and test_cmd[0] in ci.splitlines()


CONDA_NAMES = {"pytorch": "torch"}
# conda packages that are not Python packages: torch.compile's C++ compiler (pip users bring their system's; without
# one `compile: true` falls back to the uncompiled model with a warning)
TOOLCHAIN = {"cxx-compiler"}


def test_conda_envs_agree_with_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in deps}
    for env in (ROOT / "envs").glob("*.yaml"):
        for dep in yaml.safe_load(env.read_text())["dependencies"]:
            if isinstance(dep, str) and not dep.startswith("python") and dep.split("=")[0] not in TOOLCHAIN:
                name = CONDA_NAMES.get(dep.split("=")[0], dep.split("=")[0])
                assert name in names, f"{env.name}: {name} is not a dependency in pyproject.toml"


def test_light_modules_do_not_import_torch():
    """Summaries, statistics, tables, figures and plausibility run in envs/stats.yaml, which has no torch: importing
    them must not pull it in (tests/test_envs.py checks the same statically, rule by rule)."""
    import subprocess
    import sys

    light = ["clinxai.analysis.summaries", "clinxai.analysis.stats", "clinxai.analysis.ranking",
             "clinxai.analysis.scorecard", "clinxai.analysis.timing", "clinxai.report.tables", "clinxai.report.figures",
             "clinxai.evaluation.plausibility", "clinxai.data.cases", "clinxai.config", "clinxai.tasks"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in light) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "workflow")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
