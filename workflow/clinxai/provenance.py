"""What a run ran on, for the report: package versions (read from metadata, nothing imported), Python, machine."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

from .io import atomic_path

PACKAGES = ("clinxai", "snakemake", "torch", "captum", "monai", "numpy", "scipy", "pandas", "nibabel", "nilearn",
            "scikit-image", "scikit-learn", "scikit-posthocs", "seaborn", "matplotlib")


def run_versions() -> pd.DataFrame:
    rows = [{"item": "python", "version": platform.python_version()},
            {"item": "platform", "version": platform.platform()},
            {"item": "cpu_count", "version": str(os.cpu_count())}]
    for name in PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"item": name, "version": version})
    return pd.DataFrame(rows)


def save_config(config: dict, path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")


def card_provenance(config_path, versions_path, repo_dir) -> dict:
    """What a saliency card was measured with: the commit of the workflow, the md5 of the run's configuration (as
    run_info wrote it) and the package versions of the run."""
    import hashlib
    import subprocess

    try:
        commit = subprocess.run(["git", "-C", str(repo_dir), "describe", "--always", "--dirty", "--abbrev=7"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or "unknown (not a git checkout)"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown (git not available)"
    versions = pd.read_csv(versions_path, dtype=str)
    return {"commit": commit, "config_md5": hashlib.md5(Path(config_path).read_bytes()).hexdigest(),
            "packages": dict(zip(versions["item"], versions["version"]))}
