"""Dry runs: the demo and paper DAGs resolve, and a bad config stops before any job starts."""
import os
import re

import yaml

from helpers import overlay, snakemake, workdir


def planned_jobs(stdout: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stdout, re.M)}


def test_demo_dag(tmp_path):
    res = snakemake(workdir(tmp_path), "-n", "--quiet", "rules")
    assert res.returncode == 0, res.stderr
    # group_methods: one heatmaps job and one feature-removal job per (task, seed), every method in it
    jobs = planned_jobs(res.stdout)
    assert jobs["heatmaps_glioma"] == jobs["heatmaps_knee"] == jobs["heatmaps_synthetic"] == 5
    assert jobs["feature_removal_glioma"] == jobs["feature_removal_knee"] == 5
    assert "heatmaps" not in jobs and "feature_removal" not in jobs
    # ... and one plausibility and one localisation job per task for every method
    for task in ("glioma", "knee", "synthetic"):
        assert jobs[f"plausibility_{task}"] == jobs[f"localisation_{task}"] == 1
    assert "plausibility" not in jobs and "localisation" not in jobs
    for rule in ("phantom_brats", "phantom_mrnet", "prepare_data", "train", "model_summary",
                 "modality_shapley", "truthfulness_summary", "fig3_perturbation_curves",
                 "synthetic_gan", "synthetic_data", "synthetic_groundtruth", "synthetic_summary",
                 "informativeness", "fig5_right_wrong", "method_statistics", "tables", "scorecard", "run_info"):
        assert rule in res.stdout


def test_paper_dag_reads_real_data_paths(tmp_path, brats_master, mrnet_master):
    wd = workdir(tmp_path)
    paths = overlay(wd, "paths.yaml", {"data": {
        "glioma": {"brats_dir": str(brats_master)},
        "knee": {"mrnet_dir": str(mrnet_master), "boxes_dir": str(mrnet_master / "boxes")}}})
    res = snakemake(wd, "-n", "--configfile", "config/paper.yaml", paths)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "prepare_data" in out and "phantom_brats" not in out  # real data: no phantom is built


def test_bad_config_stops_before_any_job(tmp_path):
    wd = workdir(tmp_path)
    bad = overlay(wd, "bad.yaml", {"data": {"knee": {"grdi": [1, 2, 3]}}})
    res = snakemake(wd, "--cores", "1", "--configfile", "config/config.yaml", bad)
    assert res.returncode != 0
    assert "unknown config key(s) data.knee.grdi" in res.stderr + res.stdout
    assert not (wd / "results").exists()


def test_missing_brats_path_stops(tmp_path):
    wd = workdir(tmp_path)
    res = snakemake(wd, "-n", "--configfile", "config/paper.yaml")
    assert res.returncode != 0
    assert "data.glioma.brats_dir" in res.stderr + res.stdout


def test_paper_dag_through_the_slurm_profile(tmp_path, brats_master, mrnet_master):
    """The full paper DAG resolves through profiles/slurm: 3 tasks x 5 models x their methods, expensive methods
    sharded, the synthetic task's GAN trained on the configured BraTS folder."""
    wd = workdir(tmp_path)
    paths = overlay(wd, "paths.yaml", {"data": {
        "glioma": {"brats_dir": str(brats_master)},
        "knee": {"mrnet_dir": str(mrnet_master), "boxes_dir": str(mrnet_master / "boxes")}}})
    res = snakemake(wd, "-n", "--quiet", "rules", "--workflow-profile", "profiles/slurm", "--slurm-no-account",
                    "--configfile", "config/paper.yaml", paths)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = planned_jobs(res.stdout)
    seeds, glioma, knee, synthetic = 5, 16, 12, 16  # knee: the paper left out GradCAM, GuidedGradCAM, DeepLift,
    sharded = {"ShapleyValueSampling": 8, "Lime": 4, "KernelShap": 4, "Occlusion": 4}  # FeaturePermutation
    assert jobs["train"] == 3 * seeds
    assert jobs["heatmaps_shard"] == 3 * seeds * sum(sharded.values())
    assert jobs["heatmaps"] + jobs["merge_heatmaps"] == seeds * (glioma + knee + synthetic)
    assert jobs["merge_heatmaps"] == 3 * seeds * len(sharded)
    assert jobs["feature_removal"] == seeds * (glioma + knee) and jobs["modality_shapley"] == 2
    assert jobs["synthetic_gan"] == jobs["synthetic_data"] == jobs["synthetic_groundtruth"] == 1
    assert jobs["plausibility"] == glioma + knee + synthetic  # MRNet with boxes_dir: knee has plausibility too
    assert jobs["informativeness"] == jobs["fig5_right_wrong"] == 3
    assert jobs["method_statistics"] == jobs["tables"] == jobs["scorecard"] == jobs["run_info"] == 1
    assert "phantom_brats" not in jobs  # the GAN reads the real BraTS segmentations


def test_parsing_the_workflow_imports_no_torch(tmp_path):
    # Every snakemake call parses the Snakefile, each SLURM job included: torch there would cost ~3 s a job.
    res = snakemake(workdir(tmp_path), "-n", "--quiet", "rules", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "clinxai.config" in imported  # the check sees the workflow's own imports
    heavy = sorted(imported & {"torch", "captum", "monai", "scipy.ndimage", "skimage", "matplotlib"})
    assert not heavy, f"the rule files import {heavy} at parse time; move what they call into clinxai.config"


def test_tasks_named_by_the_user(tmp_path):
    """Tasks are a name plus a kind: the demo's three kinds under other names plan the same rules, per name; settings
    the config gives for the demo's names do not leak to the new ones (their kinds' defaults apply)."""
    wd = workdir(tmp_path)
    demo = yaml.safe_load((wd / "config/config.yaml").read_text())
    renamed = overlay(wd, "renamed.yaml", {"tasks": ["brain", "knees", "slices"], "data": {
        "brain": {**demo["data"]["glioma"], "kind": "glioma"},
        "knees": {**demo["data"]["knee"], "kind": "knee"},
        "slices": {**demo["data"]["synthetic"], "kind": "synthetic", "source_task": "brain"}}})
    res = snakemake(wd, "-n", "--quiet", "rules", "--configfile", "config/config.yaml", renamed)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = planned_jobs(res.stdout)
    assert jobs["heatmaps_brain"] == jobs["heatmaps_knees"] == jobs["heatmaps_slices"] == 5
    assert jobs["feature_removal_brain"] == jobs["feature_removal_knees"] == 5 and "feature_removal_slices" not in jobs
    assert jobs["synthetic_gan"] == jobs["synthetic_data"] == jobs["prepare_data"] // 2 == 1
    assert jobs["phantom_brats"] == jobs["phantom_mrnet"] == 1
    assert not any(name.endswith(("_glioma", "_knee", "_synthetic")) for name in jobs)


def test_editing_real_data_in_place_reruns_preparation(tmp_path, brats_dir):
    """A corrected grade in name_mapping.csv (the folder's own mtime unchanged) plans prepare_data again."""
    wd = workdir(tmp_path)
    paths = overlay(wd, "real.yaml", {"tasks": ["glioma"], "data": {"glioma": {
        "source": "brats", "brats_dir": str(brats_dir), "grid": [16, 16, 8]}}})
    args = ["--configfile", "config/config.yaml", paths]
    res = snakemake(wd, "--cores", "1", *args, "--until", "prepare_data")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "prepare_data" not in planned_jobs(snakemake(wd, "-n", "--quiet", "rules", *args).stdout)
    mapping = brats_dir / "name_mapping.csv"
    folder_mtime = brats_dir.stat().st_mtime_ns
    text = mapping.read_text()
    mapping.write_text(text.replace("LGG", "HGG", 1) if "LGG" in text else text.replace("HGG", "LGG", 1))
    os.utime(brats_dir, ns=(folder_mtime, folder_mtime))
    assert planned_jobs(snakemake(wd, "-n", "--quiet", "rules", *args).stdout)["prepare_data"] == 1


def test_a_first_manifest_does_not_redo_a_finished_preparation(tmp_path, brats_dir):
    """Upgrading a run prepared before manifests existed: the new manifest dates from the newest input file."""
    from clinxai.data.input_state import update_manifest

    newest = max(p.stat().st_mtime_ns for p in brats_dir.rglob("*") if p.is_file())
    path = update_manifest(tmp_path / "m.tsv", [brats_dir])
    assert os.stat(path).st_mtime_ns == newest
    (brats_dir / "name_mapping.csv").write_text((brats_dir / "name_mapping.csv").read_text() + "\n")
    os.utime(brats_dir / "name_mapping.csv", ns=(newest - 10**9, newest - 10**9))  # restored with an old time
    update_manifest(path, [brats_dir])
    assert os.stat(path).st_mtime_ns > newest  # changed since: now
