"""The degradation and ROAD stages (issue 20): MoRF / LeRF / random-order curves batched over cases and methods,
the per-case scores, DS_c, the ROAD ranking comparison, the statistics direction and Table 5, on inputs whose
answers are known by hand."""
import numpy as np
import pandas as pd
import pytest
import torch

from clinxai.analysis.localisation import degradation_case_scores, ds_c_table, method_summary, road_comparison
from clinxai.evaluation.degradation import degradation_curves
from clinxai.evaluation.perturbation import Perturber
from clinxai.inference import FlatLayout
from clinxai.metrics import road
from clinxai.metrics.degradation import degradation_score, morf_lerf_curves, removal_step

REGION = np.zeros(2 * 50, bool)
REGION[[3, 7, 11, 60, 61]] = True  # the voxels the toy model looks at, in both modalities


def region_model(batch: torch.Tensor):
    """p(class 1) grows with the signal in REGION only: (class probabilities, pred) like
    clinxai.inference.Predictor."""
    p1 = torch.sigmoid(4 * (batch[:, torch.from_numpy(REGION)].sum(1) - 2.5)).numpy()
    return np.stack([1 - p1, p1], axis=1), (p1 > 0.5).astype(int)


def test_removal_step_by_hand():
    order = np.array([4, 0, 3, 1, 2])  # 5 voxels in 2 steps: round(2.5) = 2 (half to even), then all
    assert removal_step(order, 2).tolist() == [1, 2, 2, 2, 1]
    assert removal_step(np.arange(10), 10).tolist() == list(range(1, 11))
    order = np.random.default_rng(0).permutation(103)
    step = removal_step(order, 10)
    assert [(step <= i).sum() for i in range(11)] == [round(i * 103 / 10) for i in range(11)]


def test_batched_curves_equal_the_reference_form_and_share_what_does_not_depend_on_the_map():
    layout = FlatLayout((torch.zeros(1, 2, 5, 10),))
    rng = np.random.default_rng(1)
    xs = [np.ones(100, np.float32), rng.random(100).astype(np.float32) + 0.5]
    good = [REGION.astype(np.float32), REGION.astype(np.float32)]  # ties everywhere else: the seeded order decides
    bad = [(~REGION).astype(np.float32) * rng.random(100).astype(np.float32) for _ in xs]
    cfg = {"steps": 10, "random_orderings": 3, "perturbation": "zero", "batch_size": 7}
    explained = np.array([1, 1])
    shared = {}
    t_good = degradation_curves(region_model, layout, ["a", "b"], xs, good, explained, cfg, 10, "Good", shared)
    t_bad = degradation_curves(region_model, layout, ["a", "b"], xs, bad, explained, cfg, 10, "Bad", shared)
    assert set(shared) == {"a", "b"}  # the random orders ran once per case, for both methods
    for table, maps in ((t_good, good), (t_bad, bad)):
        for case, x, m in zip(["a", "b"], xs, maps):
            def predict(batch):
                return region_model(torch.from_numpy(np.asarray(batch, np.float32)))[0][:, 1]

            morf, lerf = morf_lerf_curves(predict, x, m, lambda v, r: np.where(r, 0.0, v), 10, 10, case)
            c = table[table["case"] == case]
            np.testing.assert_allclose(c[c["curve"] == "morf"].sort_values("step")["prob"].iloc[1:], morf, rtol=1e-6)
            np.testing.assert_allclose(c[c["curve"] == "lerf"].sort_values("step")["prob"].iloc[1:], lerf, rtol=1e-6)
    # the random orders are the same rows for both methods; every curve ends with every voxel removed
    rand = [t[t["curve"] == "random"].reset_index(drop=True) for t in (t_good, t_bad)]
    pd.testing.assert_frame_equal(rand[0], rand[1])
    last = t_good[t_good["step"] == 10].groupby("case")["prob"].nunique()
    assert (last == 1).all() and set(t_good["fraction"]) == {i / 10 for i in range(11)}
    info = pd.DataFrame({"case": ["a", "b"], "label": [1, 0], "pred": [1, 1], "status": "ok"})
    both = pd.concat([t.merge(info, on="case").assign(task="t", seed=10, method=name)
                      for t, name in ((t_good, "Good"), (t_bad, "Bad"))])
    scores = degradation_case_scores(both)
    ds = scores[scores["metric"] == "ds"].set_index(["method", "case"])["value"]
    assert (ds.loc["Good"] > 0.2).all() and (ds.loc["Bad"] < -0.2).all()  # the region's map, and its reverse
    gain = scores[scores["metric"] == "morf_gain"].set_index(["method", "case"])["value"]
    assert (gain.loc["Good"] > 0).all() and (gain.loc["Bad"] < 0).all()
    g = both[(both["method"] == "Good") & (both["case"] == "a")].pivot_table(index="step", columns="curve",
                                                                            values="prob")
    assert ds.loc[("Good", "a")] == pytest.approx(degradation_score(g["morf"][1:], g["lerf"][1:]), abs=1e-12)
    assert set(scores.loc[scores["metric"] == "morf", "better"]) == {"lower"}
    # DS_c: labels 1 and 0 per case, so Δ = ½|DS_1 − DS_0|
    dsc = ds_c_table(scores, alpha=1.0).set_index("method")
    d = ds.loc["Good"]
    assert dsc.loc["Good", "ds_c"] == pytest.approx(d.mean() - 0.5 * abs(d["a"] - d["b"]))
    summary = method_summary(scores, ds_c_table(scores)).set_index(["method", "metric"])
    assert summary.loc[("Good", "ds"), "mean"] == pytest.approx(d.mean())
    assert summary.loc[("Good", "ds_c"), "unit"] == "model"


def test_road_perturber_imputes_each_item_within_its_modality():
    layout = FlatLayout((torch.zeros(1, 2, 6, 6),))
    x, y = np.meshgrid(np.arange(6.0), np.arange(6.0), indexing="ij")
    flat = np.concatenate([(2 * x + y).ravel(), (x - 3 * y).ravel()]).astype(np.float32)  # two ramps
    steps = np.full((1, 72), 99, np.int16)
    hole = np.zeros((6, 6), bool)
    hole[2:4, 2:4] = True
    steps[0, np.flatnonzero(np.concatenate([hole.ravel(), hole.ravel()]))] = 1
    p = Perturber(flat, np.zeros(72, np.float32), layout, "road", {"road_noise": 0.0}, 0, "c")
    out = p.batch(torch.from_numpy(steps), [0, 0], [0, 1]).numpy()
    np.testing.assert_array_equal(out[0], flat)  # step 0 removes nothing
    np.testing.assert_allclose(out[1], flat, atol=1e-5)  # ramps are restored exactly
    noisy = Perturber(flat, np.zeros(72, np.float32), layout, "road", {"road_noise": 0.5}, 0, "c")
    a = noisy.batch(torch.from_numpy(steps), [0], [1]).numpy()[0]
    b = road.fill(flat, steps[0] <= 1, [(6, 6)] * 2, layout.modality_slices(), 0.5, (0, *noisy.key[1:], 0, 1))
    np.testing.assert_array_equal(a, b)  # seeded per (model seed, case, curve, step)
    assert not np.allclose(a, flat)


def test_road_comparison_ranks_and_kendall():
    rows = []
    for rep, areas in (("zero", [0.9, 0.5, 0.1, 0.3]), ("road", [0.8, 0.6, 0.2, 0.1])):
        for method, perf_map in zip("ABCD", areas):  # map curve constant at 1 - perf: ΔAUPC = baseline - map area
            for q in (0.0, 1.0):
                rows.append({"task": "t", "seed": 1, "method": method, "replacement": rep, "n_cases": 4,
                             "curve": "map", "draw": 0, "q": q, "performance": perf_map})
                rows.append({"task": "t", "seed": 1, "method": method, "replacement": rep, "n_cases": 4,
                             "curve": "baseline", "draw": 1, "q": q, "performance": 1.0})
    summary, kendall = road_comparison(pd.DataFrame(rows))
    zero = summary[summary["replacement"] == "zero"].set_index("method")
    assert zero.loc["C", "mean"] == pytest.approx(0.9) and zero.loc["C", "rank"] == 1
    # rankings C > D > B > A and D > C > B > A: one discordant pair of six -> τ-b = (5 - 1) / 6
    assert kendall["tau_b"].item() == pytest.approx(4 / 6) and kendall["replacement_a"].item() == "zero"


def test_statistics_respect_a_lower_is_better_metric_and_table5():
    from clinxai.analysis.ranking import compare_methods, metric_units
    from clinxai.report.tables import table5

    rng = np.random.default_rng(0)
    rows = []
    for case in range(12):
        for method, level in (("Gradient", 0.1), ("Lime", 0.5), ("Occlusion", 0.9)):
            for metric, better, v in (("morf", "lower", level), ("ds", "higher", level)):
                rows.append({"task": "glioma", "seed": 10, "method": method, "case": str(case), "metric": metric,
                             "better": better, "value": v + rng.normal(0, 0.01)})
    scores = pd.DataFrame(rows)
    ds_c = pd.DataFrame({"task": "glioma", "seed": [10, 20] * 3, "method": np.repeat(["Gradient", "Lime", "Occlusion"], 2),
                         "ds_c": [0.1, 0.12, 0.2, 0.21, 0.3, 0.33]})
    units = metric_units({}, {}, {}, "msfi_global", "msfi", (), {"glioma": scores}, {"glioma": ds_c})
    metrics, friedman, _, _ = compare_methods(units, alpha=0.05)
    m = metrics.set_index(["metric", "method"])
    assert m.loc[("morf", "Gradient"), "mean_rank"] == 1 and m.loc[("ds", "Occlusion"), "mean_rank"] == 1
    assert m.loc[("morf", "Gradient"), "better"] == "lower" and bool(m.loc[("morf", "Gradient"), "top3"])
    assert set(friedman["metric"]) == {"morf", "ds", "ds_c"}
    long, wide = table5(metrics, [{"task": "glioma", "title": "Glioma", "kind": "glioma",
                                   "truthfulness": "removal"}])
    assert list(wide.columns) == ["DS Glioma", "DS_c Glioma"] and len(wide) == 16
    assert wide.loc["Occlusion", "DS_c Glioma"] == "**0.315 ± 0.021**" and wide.loc["KernelShap", "DS Glioma"] == "NaN"
    assert set(long["metric"]) == {"morf", "ds", "ds_c"}


def test_a_failed_map_has_no_degradation_score():
    rows = [{"task": "t", "seed": 1, "method": "M", "case": c, "label": 0, "pred": 0, "status": status,
             "curve": curve, "draw": 0, "step": step, "fraction": step / 2, "prob": p}
            for c, status in (("ok", "ok"), ("bad", "non_finite"))
            for curve, p in (("morf", 0.2), ("lerf", 0.8), ("random", 0.5)) for step in (0, 1, 2)]
    scores = degradation_case_scores(pd.DataFrame(rows)).set_index(["case", "metric"])["value"]
    assert scores[("ok", "ds")] == pytest.approx(0.6) and scores[("ok", "morf_gain")] == pytest.approx(0.3)
    assert scores.loc["bad"].isna().all()


def test_a_case_subset_keeps_both_classes_in_test_set_order():
    from clinxai.evaluation.truthfulness import case_subset

    cases = ["a", "b", "c", "d", "e", "f"]
    labels = np.array([0, 0, 0, 0, 1, 1])
    sub, y, x = case_subset(cases, labels, list(range(6)), 3)
    assert sub == ["a", "b", "e"] and y.tolist() == [0, 0, 1] and x == [0, 1, 4]
    assert case_subset(cases, labels, list(range(6)), None)[0] == cases
    assert case_subset(cases, labels, list(range(6)), 10)[0] == cases


def test_degradation_params_hold_only_the_perturbation_in_use():
    import copy

    import yaml

    from clinxai.config import degradation_cfg, road_cfg
    from helpers import ROOT

    demo = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert "road_noise" not in degradation_cfg(demo, "glioma") and "blur_sigma" in degradation_cfg(demo, "glioma")
    c = copy.deepcopy(demo)
    c["localisation"]["road"]["noise"] = 0.5  # another perturbation's parameter: the same params, no rerun
    assert degradation_cfg(c, "glioma") == degradation_cfg(demo, "glioma")
    c["truthfulness"]["removal"]["replacement"]["glioma"] = "road"  # ROAD already: compared with nothing
    assert road_cfg(c, "glioma")["replacements"] == ["road"]
    assert road_cfg(demo, "glioma")["replacements"] == ["zero", "road"]
