"""Run the workflow from a scratch directory that links the repository's Snakefile, workflow and config."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def workdir(tmp_path: Path) -> Path:
    wd = tmp_path / "wd"
    wd.mkdir(exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "tests", "profiles"):
        if not (wd / name).exists():
            (wd / name).symlink_to(ROOT / name)
    return wd


def overlay(wd: Path, name: str, data: dict) -> str:
    path = wd / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def snakemake(wd: Path, *args, timeout=900, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=wd, env=env, text=True,
                          capture_output=True, timeout=timeout)
