"""The tiny DAG through profiles/slurm on a real SLURM cluster (CI starts one: .ci/slurm-cluster.sh start).

Without a cluster the test is skipped, unless CLINXAI_REQUIRE_SLURM=1 (set by .ci/run), where it fails instead.
"""
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest

from helpers import snakemake, workdir

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GPU_RULES = {"train", "heatmaps", "heatmaps_shard", "feature_removal", "modality_shapley", "synthetic_gan",
             "synthetic_groundtruth", "sensitivity_knee", "sensitivity_synthetic"}


def cluster_state() -> str:
    if not shutil.which("sinfo"):
        return ""
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else ""


@pytest.fixture
def slurm():
    state = cluster_state()
    if state not in ("idle", "mixed", "allocated"):
        message = f"no SLURM cluster answering (sinfo: {state or 'not available'}); start one: .ci/slurm-cluster.sh start"
        if os.environ.get("CLINXAI_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def submitted_jobs(wd) -> list[dict]:
    """Jobs SLURM ran from this work directory: rule (from the plugin's comment) and the GPUs requested."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if not fields.get("WorkDir", "").startswith(str(wd)):
            continue
        rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", fields.get("Comment", ""))
        gpus = re.search(r"gpu[:=](?:\w+:)?(\d+)", fields.get("TresPerJob", "") + " " + fields.get("TresPerNode", ""))
        jobs.append({"rule": rule.group(1) if rule else fields.get("Comment"), "gpus": int(gpus.group(1)) if gpus else 0,
                     "state": fields.get("JobState"), "exit": fields.get("ExitCode")})
    return jobs


def test_tiny_dag_on_slurm(tmp_path, slurm):
    wd = workdir(tmp_path)
    args = ["--workflow-profile", "profiles/slurm", "--slurm-no-account", "--jobs", "4",
            "--configfile", "config/config.yaml", "tests/config/tiny.yaml", "tests/config/slurm.yaml"]
    res = snakemake(wd, *args, timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    for task in ("knee",):
        summary = pd.read_csv(wd / f"results/{task}/models/summary.csv", dtype={"seed": str})
        assert list(summary["seed"]) == ["10", "20", "mean", "std"]
        assert (wd / f"results/{task}/heatmaps/seed20/FeatureAblation.npz").is_file()  # merged shards
        truth = pd.read_csv(wd / f"results/{task}/truthfulness/summary.csv")
        assert truth["delta_aupc_n"].eq(2).all()
    msfi = pd.read_csv(wd / "results/synthetic/truthfulness/msfi_summary.csv")
    assert set(msfi["method"]) == {"Gradient", "GradCAM", "FeatureAblation"}
    jobs = submitted_jobs(wd.resolve())
    assert jobs, "no SLURM job found for this work directory"
    assert all(j["state"] == "COMPLETED" for j in jobs), jobs
    rules = {j["rule"] for j in jobs}
    assert {"train", "heatmaps", "heatmaps_shard", "feature_removal", "prepare_data", "synthetic_gan",
            "synthetic_data", "plausibility", "localisation", "sensitivity_knee", "sensitivity_synthetic"} <= rules, rules
    # GPU rules asked for the GPU, CPU rules for none; light rules never reached the queue (localrules)
    for j in jobs:
        assert j["gpus"] == (1 if j["rule"] in GPU_RULES else 0), j
    assert not rules & {"model_summary", "heatmap_timing", "truthfulness_summary", "synthetic_summary", "all",
                        "informativeness", "method_statistics", "tables", "scorecard", "run_info",
                        "sensitivity_summary", "fig_sensitivity", "saliency_cards"}
    assert (wd / "results/tables/table2.md").is_file() and (wd / "results/tables/scorecard.csv").is_file()
