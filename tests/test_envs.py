"""Every rule's conda environment provides what its script imports.

Conda channels are out of reach where the tests run, so the envs/*.yaml environments are never built here; a package
missing from one would only show up on a user's machine, as an ImportError inside a job hours into a run. This test
checks it statically: it reads the rule files as text (no Snakemake), collects with `ast` every import of each rule's
script and, transitively, of the clinxai modules it reaches (lazy imports inside functions included), and requires each
third-party package to be listed in the rule's env. A package's own dependencies do not count: only what is listed.
"""
import ast
import re
import sys
from collections import deque
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PKG_ROOT = ROOT / "workflow"  # clinxai.a.b is PKG_ROOT/clinxai/a/b.py or PKG_ROOT/clinxai/a/b/__init__.py
CONDA_NAMES = {"skimage": "scikit-image", "sklearn": "scikit-learn", "yaml": "pyyaml", "torch": "pytorch",
               "scikit_posthocs": "scikit-posthocs", "PIL": "pillow"}  # import name -> conda-forge name
PROVIDED = set(sys.stdlib_module_names) | {"__future__", "snakemake"}  # snakemake: the runner injects it
RULE_START = re.compile(r"^(\s*)(?:rule|checkpoint)\b\s*(\w*)\s*:\s*(#.*)?$")
STRING = re.compile(r"""f?(["'])([^"']*)\1,?\s*(#.*)?""")


def indent(line):
    return len(line) - len(line.lstrip())


def code(line):
    return line.strip() and not line.lstrip().startswith("#")


def directives(body):
    """{directive: its value's text} of one rule block; the value is on the directive's line or the next code line."""
    lines = [line for line in body if code(line)]
    found = {}
    for i, line in enumerate(lines):
        m = re.match(r"\s*(\w+):(.*)$", line)
        if m and indent(line) == indent(lines[0]):
            value = m.group(2).strip() or (lines[i + 1].strip() if i + 1 < len(lines) else "")
            lit = STRING.fullmatch(value)
            found[m.group(1)] = lit.group(2) if lit else value
    return found


def parse_rules():
    """(name, rule file, directives) of every rule block, including anonymous `rule:` blocks with a `name:`."""
    rules = []
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if m := RULE_START.match(line):
                body = []
                for nxt in lines[i + 1:]:
                    if code(nxt) and indent(nxt) <= len(m.group(1)):
                        break
                    body.append(nxt)
                d = directives(body)
                rules.append((m.group(2) or d.get("name", f"{smk.name}:{i + 1}"), smk, d))
    return rules


def module_file(name):
    base = PKG_ROOT.joinpath(*name.split("."))
    return next((f for f in (base.with_suffix(".py"), base / "__init__.py") if f.is_file()), None)


def imports_of(path):
    """(absolute module name, must exist) of every import in a file; `from m import x` also offers m.x (a submodule?)."""
    rel = path.relative_to(PKG_ROOT).with_suffix("").parts if path.is_relative_to(PKG_ROOT / "clinxai") else ()
    package = list(rel[:-1])  # clinxai/a/b.py and clinxai/a/__init__.py both live in package clinxai.a
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, True) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            yield mod, True
            yield from ((f"{mod}.{alias.name}", False) for alias in node.names if alias.name != "*")


def script_needs(script):
    """({conda package: import chain}, [unresolvable clinxai modules]) of a script and the clinxai modules it reaches."""
    needed, unresolved = {}, []
    chain = {script: script.relative_to(ROOT).as_posix()}
    queue = deque([script])
    while queue:
        path = queue.popleft()
        for name, must_exist in imports_of(path):
            top = name.split(".")[0]
            if top == "clinxai":
                parts = name.split(".")
                for k in range(1, len(parts) + 1):  # importing clinxai.a.b runs clinxai/__init__.py and a/__init__.py
                    f = module_file(".".join(parts[:k]))
                    if f is None and (k < len(parts) or must_exist):
                        unresolved.append(f"{chain[path]} imports {name}")
                    if f is not None and f not in chain:
                        chain[f] = f"{chain[path]} -> {'.'.join(parts[:k])}"
                        queue.append(f)
            elif top and top not in PROVIDED and must_exist:
                needed.setdefault(CONDA_NAMES.get(top, top).lower(), f"{chain[path]} imports {top}")
    return needed, sorted(set(unresolved))


def env_packages(env):
    names = set()
    for dep in yaml.safe_load(env.read_text())["dependencies"]:
        specs = dep.get("pip", []) if isinstance(dep, dict) else [dep]
        names |= {re.split(r"[<>=!~\[ ]", s.split("::")[-1])[0].lower() for s in specs}
    return names


RULES = [r for r in parse_rules() if "script" in r[2]]


@pytest.mark.parametrize("name,smk,d", RULES, ids=[r[0] for r in RULES])
def test_rule_env_covers_script_imports(name, smk, d):
    where = smk.relative_to(ROOT)
    assert "conda" in d, f"rule {name} ({where}) runs a script but has no conda: directive"
    env, script = (smk.parent / d["conda"]).resolve(), (smk.parent / d["script"]).resolve()
    assert env.is_file(), f"rule {name} ({where}): conda env {d['conda']} not found"
    assert script.is_file(), f"rule {name} ({where}): script {d['script']} not found"
    needed, unresolved = script_needs(script)
    assert not unresolved, f"rule {name}: clinxai modules not found as files: {unresolved}"
    have, env_rel = env_packages(env), env.relative_to(ROOT).as_posix()
    missing = [f"rule {name} ({env_rel}) needs {pkg}: {why}" for pkg, why in sorted(needed.items()) if pkg not in have]
    assert not missing, "\n".join(missing)


def test_resolver_finds_imports():
    """Guards the test above against passing by finding nothing: rules, scripts and transitive imports are seen."""
    rules = {name: (smk, d) for name, smk, d in RULES}
    assert {"train", "fig3_perturbation_curves", "synthetic_data"} <= rules.keys()
    assert any("{" in name for name in rules), "anonymous rules of the for loops were not found"
    smk, d = rules["train"]
    needed, _ = script_needs((smk.parent / d["script"]).resolve())
    assert {"pytorch", "numpy"} <= needed.keys()
    assert " -> clinxai." in needed["pytorch"]  # train.py itself imports only clinxai
