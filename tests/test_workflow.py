"""The whole DAG end to end on tiny phantoms (CPU), and resuming without redoing finished jobs."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import ROOT, overlay, snakemake, workdir
from recompute import cards_are_traceable, recompute_all
from test_viewer import browser_available, check_in_browser

pytestmark = pytest.mark.slow


def test_end_to_end_and_resume(tmp_path):
    wd = workdir(tmp_path)
    args = ["--cores", "2", "--configfile", "config/config.yaml", "tests/config/tiny.yaml"]
    res = snakemake(wd, *args)
    assert res.returncode == 0, res.stderr[-3000:]
    # every reported number recomputed independently from the lower-level outputs (tests/recompute.py)
    all_tasks = ["glioma", "knee", "synthetic"]
    n = recompute_all(wd / "results", ["glioma", "knee"], all_tasks, localisation_tasks=all_tasks,
                      sensitivity_tasks=all_tasks)
    assert n == 8 + 3 * 12 + 3 * 28 - 2 * 4  # 28 sensitivity scores per task, 4 of them the knee's permuted twin's
    # the saliency cards state no number the pipeline did not measure (tests/recompute.py: cards)
    profiles = yaml.safe_load((ROOT / "config/config.yaml").read_text())["cards"]["priorities"]
    assert cards_are_traceable(wd / "results", {"glioma": 6, "knee": 4, "synthetic": 6}, profiles) > 1000
    page = (wd / "results/cards/glioma.html").read_text()  # the report's page: the comparison and every card
    assert page.count("<h1 id='card-") == 6 and "href='#card-Gradient'" in page
    for task, n in (("glioma", 14), ("knee", 20)):
        meta = json.loads((wd / f"results/{task}/data/meta.json").read_text())
        split = pd.read_csv(wd / f"results/{task}/data/split.csv", dtype={"case": str})
        assert meta["n_cases"] == n == len(split)
        assert set(split["split"]) == {"train", "val", "test"}
        arrays = sorted((wd / f"results/{task}/data/arrays").glob("*.npz"))
        assert len(arrays) == n
        assert all(np.isfinite(np.load(a)[meta["channels"][0] if task == "knee" else "image"]).all()
                   for a in arrays[:3])
    assert (wd / "results/benchmarks/prepare_data/glioma.tsv").is_file()
    for task in ("glioma", "knee"):
        summary = pd.read_csv(wd / f"results/{task}/models/summary.csv", dtype={"seed": str})
        assert list(summary["seed"]) == ["10", "20", "mean", "std"]
        test_cases = pd.read_csv(wd / f"results/{task}/data/split.csv").query("split == 'test'")
        pred = pd.read_csv(wd / f"results/{task}/models/seed10/predictions.csv")
        assert len(pred) == len(test_cases)
        assert "epoch   1" in (wd / f"results/logs/train/{task}_seed10.log").read_text()
        # heatmaps: every method x seed has one row per test case; sharded FeatureAblation was merged
        status = pd.read_csv(wd / f"results/{task}/heatmaps/status.csv", dtype={"case": str})
        methods = {"glioma": 6, "knee": 4}[task]
        assert len(status) == methods * 2 * len(test_cases)
        assert set(status["status"]) <= {"ok", "all_zero", "non_finite"}
        assert (wd / f"results/{task}/heatmaps/seed10/shards/FeatureAblation_2of2.npz").is_file()
        timing = pd.read_csv(wd / f"results/{task}/heatmaps/timing.csv")
        assert len(timing) == methods and (timing["seconds_per_case_mean"] > 0).all()
        # G3: curves for every method and model (map + 15 baselines x 11 steps), Shapley over 2^M subsets
        for seed in (10, 20):  # one file per (seed, method), written by one job per model (group_methods)
            curves = pd.read_csv(wd / f"results/{task}/truthfulness/removal/seed{seed}/Gradient.csv")
            assert len(curves) == 16 * 11 and set(curves["seed"]) == {seed}
        n_mod = {"glioma": 4, "knee": 3}[task]
        phi = pd.read_csv(wd / f"results/{task}/truthfulness/shapley.csv")
        subsets = pd.read_csv(wd / f"results/{task}/truthfulness/shapley_subsets.csv")
        assert len(phi) == 2 * n_mod and len(subsets) == 2 * 2 ** n_mod
        for seed, g in subsets.groupby("seed"):  # efficiency: the φ add up to v(all) - v(none)
            total = g.loc[g["size"] == n_mod, "performance"].item() - g.loc[g["size"] == 0, "performance"].item()
            assert phi.loc[phi["seed"] == seed, "phi"].sum() == pytest.approx(total)
        summary = pd.read_csv(wd / f"results/{task}/truthfulness/summary.csv")
        assert len(summary) == methods and summary["delta_aupc_n"].eq(2).all()
        assert summary["delta_aupc_mean"].between(-1, 1).all()
        mi = pd.read_csv(wd / f"results/{task}/truthfulness/mi_correlation.csv", dtype={"reason": "string"})
        mi["reason"] = mi["reason"].fillna("")
        assert len(mi) == methods * 2 * len(test_cases)
        if task == "glioma":  # GradCAM's replicated map: not computable, and the reason says why
            g = mi[mi["method"] == "GradCAM"]
            assert g["mi_correlation"].isna().all() and g["reason"].str.contains("identical").all()
        assert (wd / f"results/{task}/figures/fig3_perturbation_curves.png").stat().st_size > 10000
        assert (wd / f"results/benchmarks/feature_removal/{task}_seed10.tsv").is_file()
        assert (wd / f"results/benchmarks/heatmaps/{task}_seed10.tsv").is_file()
    # the synthetic task: GAN, data in the prepared layout, ground truth, MSFI per method
    check = json.loads((wd / "results/synthetic/gan/check.json").read_text())
    assert check["passed"] and (wd / "results/synthetic/gan/samples.png").stat().st_size > 1000
    cases = pd.read_csv(wd / "results/synthetic/data/cases.csv")
    assert len(cases) == 32 and cases["t1c_aligned"].all()
    acc = pd.read_csv(wd / "results/synthetic/truthfulness/groundtruth_accuracy.csv")
    assert len(acc) == 2 * 2 and acc["accuracy"].between(0, 1).all()
    phi = pd.read_csv(wd / "results/synthetic/truthfulness/modality_importance.csv")
    assert set(phi.loc[phi["modality"].isin(["T1", "T2"]), "phi"]) == {0.0}
    test_cases = (cases["split"] == "test").sum()
    msfi = pd.read_csv(wd / "results/synthetic/plausibility/Gradient.csv")
    assert len(msfi) == 2 * test_cases
    ok = msfi["status"] == "ok"
    assert msfi.loc[ok, ["msfi", "msfi_global", "fp"]].apply(lambda c: c.between(0, 1)).all().all()
    summary = pd.read_csv(wd / "results/synthetic/truthfulness/msfi_summary.csv")
    assert len(summary) == 6 and (summary["reported"] == "msfi_global").all()
    # G4: plausibility per case with the prediction, informativeness per method, Fig. 5
    for task, methods in (("glioma", 6), ("knee", 4), ("synthetic", 6)):
        plaus = pd.read_csv(wd / f"results/{task}/plausibility/Gradient.csv")
        assert {"fp", "msfi", "prob_pred", "correct", "pred"} <= set(plaus.columns)
        assert plaus.loc[plaus["status"] == "ok", "fp"].between(0, 1).all()
        info = pd.read_csv(wd / f"results/{task}/plausibility/informativeness.csv")
        assert len(info) == methods and info["mw_marker"].isin(["*", "**", "***", "NS", "n.c."]).all()
        assert (wd / f"results/{task}/figures/fig5_right_wrong.png").stat().st_size > 10000
    # localisation and degradation: scores per model, case and metric for every task; ROAD on the configured model
    for task, methods, n_metrics in (("glioma", 6, 11), ("knee", 4, 11), ("synthetic", 6, 11)):
        scores = pd.read_csv(wd / f"results/{task}/localisation/scores.csv", dtype={"case": str})
        assert scores["metric"].nunique() == n_metrics and scores["method"].nunique() == methods
        assert set(scores["better"]) == {"higher", "lower"} and scores["seed"].nunique() == 2
        curves = pd.read_csv(wd / f"results/{task}/localisation/degradation/seed10/Gradient.csv", dtype={"case": str})
        assert set(curves["curve"]) == {"morf", "lerf", "random"} and curves["step"].max() == 10
        assert (wd / f"results/{task}/figures/degradation_curves.png").stat().st_size > 10000
    for task in ("glioma", "knee"):
        kendall = pd.read_csv(wd / f"results/{task}/localisation/road/kendall.csv")
        assert kendall["n_seeds"].item() == 1 and kendall["n_methods"].item() == {"glioma": 6, "knee": 4}[task]
        road = pd.read_csv(wd / f"results/{task}/localisation/road/seed10.csv")
        assert set(road["replacement"]) == {"road", {"glioma": "zero", "knee": "mean"}[task]}
    # sensitivity: every attribute of every method on the configured model, the model's findings, the figures
    for task, methods in (("glioma", 6), ("knee", 4), ("synthetic", 6)):
        scores = pd.read_csv(wd / f"results/{task}/sensitivity/scores.csv", dtype={"case": str})
        assert scores["method"].nunique() == methods and set(scores["seed"]) == {10}
        assert set(scores["attribute"]) == {"input", "max_sensitivity", "model", "label", "determinism",
                                            "hyperparameters", "minimality"} | ({"data"} if task == "knee" else set())
        findings = pd.read_csv(wd / f"results/{task}/sensitivity/findings.csv", keep_default_na=False)
        flips = findings[findings["finding"] == "flipped"]
        assert set(flips["setting"]) == {"bias_field", "affine"}  # the shifts set to null are off
        negated = findings[findings["finding"] == "negated"].set_index("method")["share"]
        assert negated["Gradient"] == (1.0 if task == "knee" else 0.0)  # the knee network's logits are ±z/2
        for name in ("attributes", "randomisation"):
            assert (wd / f"results/{task}/figures/sensitivity_{name}.png").stat().st_size > 10000
    # the permuted-label twin (sensitivity.label.permuted_model: [knee]) of the knee model only
    assert json.loads((wd / "results/knee/models/permuted/seed10/metrics.json").read_text())["permuted_labels"]
    assert not (wd / "results/glioma/models/permuted").exists()
    knee = pd.read_csv(wd / "results/knee/sensitivity/scores.csv").set_index(["method", "metric"])
    assert knee.loc[("Gradient", "label_spearman"), "value"].isna().all()  # a property of the model, not a score
    spread = pd.read_csv(wd / "results/glioma/sensitivity/hyperparameters.csv")
    assert set(spread["method"]) == {"SmoothGrad", "GradCAM", "FeatureAblation", "KernelShap", "FeaturePermutation",
                                     "Gradient"}
    grid = spread.set_index("method")
    assert grid.loc["Gradient", "settings"] == 1 and grid.loc["SmoothGrad", "settings"] > 1  # Gradient has no grid
    assert (grid.loc[grid["settings"] > 1, "delta_aupc_spread"] > 0).any()
    # statistics across methods, the tables (all 16 methods, NaN for those not run) and the scorecard
    friedman = pd.read_csv(wd / "results/statistics/friedman.csv")
    assert {("glioma", "delta_aupc"), ("knee", "mi_correlation"), ("synthetic", "msfi_global"),
            ("glioma", "msfi"), ("glioma", "vxap"), ("knee", "ds"), ("synthetic", "ds_c"), ("knee", "morf")} <= set(
        zip(friedman["task"], friedman["metric"]))
    assert (wd / "results/figures/critical_difference.png").stat().st_size > 10000
    assert (wd / "results/figures/critical_difference_localisation.png").stat().st_size > 10000
    assert (wd / "results/figures/critical_difference_sensitivity.png").stat().st_size > 10000
    for name in ("table2", "table3", "table4", "table5", "table6"):
        for ext in ("csv", "md", "tex", "html"):
            assert (wd / f"results/tables/{name}.{ext}").stat().st_size > 200
    table2 = (wd / "results/tables/table2.md").read_text()
    assert table2.count("\n| ") == 16 and "| Occlusion | NaN | NaN | NaN | NaN | NaN |" in table2
    table5 = (wd / "results/tables/table5.md").read_text()
    assert table5.count("\n| ") == 16 and "| RMA Glioma | RMA Knee | RMA Synthetic glioma |" in table5
    table6 = (wd / "results/tables/table6.md").read_text()
    assert table6.count("\n| ") == 16 and "| Minimality: Gini Glioma | Minimality: Gini Knee |" in table6
    card = pd.read_csv(wd / "results/tables/scorecard.csv")
    assert set(card["result"]) <= {"pass", "fail", "not evaluated"} and set(card["guideline"]) == {"G3", "G4", "G5"}
    versions = pd.read_csv(wd / "results/report/versions.csv")
    assert "captum" in set(versions["item"])
    png = next((wd / "results/synthetic/heatmaps/export").glob("*/GradCAM.png"))
    assert png.stat().st_size > 1000
    # NIfTI export carries the prepared grid's affine
    import nibabel as nib

    case = pd.read_csv(wd / "results/glioma/models/seed10/predictions.csv", dtype={"case": str})["case"][0]
    exported = nib.load(wd / f"results/glioma/heatmaps/export/{case}/GradCAM_FLAIR.nii.gz")
    affine = np.load(wd / f"results/glioma/data/arrays/{case}.npz")["affine"]
    np.testing.assert_allclose(exported.affine, affine, rtol=1e-6)
    assert exported.shape == tuple(json.loads((wd / "results/glioma/data/meta.json").read_text())["grid"])
    assert (wd / f"results/glioma/heatmaps/export/{case}/GradCAM.png").stat().st_size > 1000
    # the case viewer of every task: small, and it works in a real browser where one is installed
    for task, layout in (("glioma", "volume"), ("knee", "views"), ("synthetic", "slice")):
        viewer = wd / f"results/{task}/viewer"
        files = list(viewer.glob("cases/*/*.js"))  # export.cases: 1 -> its images + one file per (model, method)
        assert len(files) == 1 + 2 * {"glioma": 6, "knee": 4, "synthetic": 6}[task]
        assert sum(f.stat().st_size for f in viewer.rglob("*")) < 20e6
        if browser_available():
            manifest = json.loads((viewer / "index.html").read_text().split('type="application/json">')[1]
                                  .split("</script>")[0])
            check_in_browser(viewer / "index.html", ROOT / "results" / "viewer_screenshots" / f"{task}.png",
                             [c["id"] for c in manifest["cases"]], manifest["methods"], layout)
    # Partial rebuilds: the exact job sets of dry runs after a config edit.
    def planned(*extra):
        dry = snakemake(wd, "-n", "--quiet", "rules", *args, *extra)
        assert dry.returncode == 0, dry.stderr[-2000:]
        return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", dry.stdout, re.M)
                if m.group(1) != "total"}

    # one method's parameters: with group_methods (the demo) that task's model jobs, i.e. every unsharded method of
    # the task (5 of 6: FeatureAblation is sharded), and what is computed from them, for that task only
    edit = overlay(wd, "edit.yaml", {"heatmaps": {"params": {"glioma": {"SmoothGrad": {"nt_samples": 3}}}}})
    # the cards carry the run's configuration (its md5): every config edit regenerates them (seconds)
    downstream = {"method_statistics": 1, "tables": 1, "scorecard": 1, "run_info": 1, "saliency_cards": 1, "all": 1}
    assert planned(edit) == {"heatmaps_glioma": 2, "heatmap_timing": 1, "export_heatmaps": 1,
                             "feature_removal_glioma": 2, "truthfulness_summary": 1, "fig3_perturbation_curves": 1,
                             "plausibility_glioma": 1, "informativeness": 1, "fig5_right_wrong": 1,
                             "localisation_glioma": 1,
                             "degradation_glioma": 2, "localisation_summary": 1, "fig_degradation_curves": 1,
                             "road_removal": 1, "road_comparison": 1, "case_viewer": 1, "sensitivity_glioma": 1,
                             "sensitivity_summary": 1, "fig_sensitivity": 1, **downstream}
    # ... and one job per method without it: that method's heatmaps and removal curves only
    single = overlay(wd, "single.yaml", {"heatmaps": {"group_methods": False},
                                         "truthfulness": {"group_methods": False}})
    assert planned(single, "--forcerun", "heatmaps", "--until", "heatmaps") == {"heatmaps": 2 * (5 + 5 + 3)}
    # the mask scores, one job per (task, method): glioma and synthetic 6 methods, knee 4 (heatmaps.exclude)
    single = overlay(wd, "single_scores.yaml", {"plausibility": {"group_methods": False},
                                                "localisation": {"group_methods": False}})
    for rule in ("plausibility", "localisation"):
        assert planned(single, "--forcerun", rule, "--until", rule) == {rule: 6 + 6 + 4}
    # the export only
    edit = overlay(wd, "edit2.yaml", {"heatmaps": {"export": {"cases": 2}}})
    assert planned(edit) == {"export_heatmaps": 3, "case_viewer": 3, "run_info": 1, "saliency_cards": 1,
                             "all": 1}  # the same cases
    # one task's MSFI weighting: that task's plausibility tables and what is computed from them
    edit = overlay(wd, "edit4.yaml", {"plausibility": {"phi_normalisation": {"synthetic": "minmax"}}})
    assert planned(edit) == {"plausibility_synthetic": 1, "synthetic_summary": 1, "informativeness": 1,
                             "fig5_right_wrong": 1, "case_viewer": 1, **downstream}
    # a scorecard rule: the scorecard only
    edit = overlay(wd, "edit5.yaml", {"scorecard": {"G5": {"max_seconds": 1}}})
    assert planned(edit) == {"scorecard": 1, "run_info": 1, "saliency_cards": 1, "all": 1}  # cards state G5
    # the chooser's priorities: the cards only
    edit = overlay(wd, "edit8.yaml", {"cards": {"priorities": {"speed": {"computational_efficiency": 1}}}})
    assert planned(edit) == {"saliency_cards": 1, "run_info": 1, "all": 1}
    # a truthfulness option: the removal curves and their summaries, no heatmaps, no Shapley
    edit = overlay(wd, "edit3.yaml", {"truthfulness": {"removal": {"replacement": {"knee": "zero"}}}})
    assert planned(edit) == {"feature_removal_knee": 2, "truthfulness_summary": 1, "fig3_perturbation_curves": 1,
                             "road_removal": 1, "road_comparison": 1, **downstream}  # ROAD compares with it
    # the MoRF / LeRF perturbation: every task's degradation curves and what is computed from them, nothing else
    edit = overlay(wd, "edit6.yaml", {"localisation": {"degradation": {"perturbation": "road"}}})
    assert planned(edit) == {"degradation_glioma": 2, "degradation_knee": 2, "degradation_synthetic": 2,
                             "localisation_summary": 3, "fig_degradation_curves": 3, "case_viewer": 3, **downstream}
    # the number of scanner-shift draws: the sensitivity jobs and what is computed from them
    edit = overlay(wd, "edit7.yaml", {"sensitivity": {"input": {"draws": 2}}})
    assert planned(edit) == {"sensitivity_glioma": 1, "sensitivity_knee": 1, "sensitivity_synthetic": 1,
                             "sensitivity_summary": 3, "fig_sensitivity": 3, **downstream}
    # one stage on demand
    assert planned("--forcerun", "modality_shapley") == {  # φ weights the glioma and knee MSFI too
        "modality_shapley": 2, "truthfulness_summary": 2, "fig3_perturbation_curves": 2, "plausibility_glioma": 1,
        "plausibility_knee": 1,
        "informativeness": 2, "fig5_right_wrong": 2, "method_statistics": 1, "tables": 1, "scorecard": 1,
        "case_viewer": 2, "saliency_cards": 1, "all": 1}
    assert planned("--forcerun", "modality_shapley", "--until", "modality_shapley") == {"modality_shapley": 2}
    again = snakemake(wd, *args)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # the HTML report with every table and figure
    report = snakemake(wd, *args, "--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-2000:]
    html = (wd / "results/report.html").read_text()
    for item in ("table2.html", "table3.html", "table4.html", "scorecard.png", "fig5_right_wrong.png",
                 "critical_difference.png", "fig3_perturbation_curves.png", "versions.csv", "table5.html",
                 "degradation_curves.png", "kendall.csv", "viewer/index.html", "table6.html",
                 "sensitivity_randomisation.png", "findings.csv", "chooser.html", "attributes.csv", "glioma.html"):
        assert item in html, item
