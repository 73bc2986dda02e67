"""Statistics against values computed by hand or straight from scipy / scikit-posthocs on fixed inputs."""
import io
import math

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats

from clinxai.analysis.ranking import compare_methods, kendall_table
from clinxai.analysis.stats import (critical_difference, friedman_nemenyi, informativeness, kendall_rankings,
                           mann_whitney_greater, median_ci, method_matrix, significance_marker, spearman)


def test_markers_follow_table3_levels():
    assert [significance_marker(p) for p in (0.0004, 0.004, 0.02, 0.025, 0.5, math.nan)] == \
        ["***", "**", "*", "NS", "NS", "n.c."]


def test_median_ci_by_order_statistics():
    # n = 10: P(2 <= B <= 8) = 1 - 2 (1 + 10) / 1024 = 0.9785 >= 0.95, P(3 <= B <= 7) = 0.891 < 0.95 -> x(2), x(9)
    assert median_ci(np.arange(1, 11) * 1.0) == (5.5, 2.0, 9.0)
    med, lo, hi = median_ci([3.0, 1.0, 2.0])  # n = 3 can never reach 95 %
    assert med == 2.0 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in median_ci([]))


def test_mann_whitney_exact_by_hand():
    # right {3, 4, 5} all above wrong {1, 2}: U = 6, exact p = 1 / C(5, 2) = 0.1, effect 1
    r = mann_whitney_greater([3, 4, 5], [1, 2])
    assert r["u"] == 6 and r["p"] == pytest.approx(0.1) and r["effect"] == 1.0


def test_mann_whitney_without_wrong_predictions_is_not_computable():
    r = mann_whitney_greater([0.2, 0.3], [])
    assert math.isnan(r["p"]) and "no wrong predictions" in r["note"]


def test_spearman_matches_scipy_and_flags_constants():
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    assert spearman(x, y)["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)  # = 0.8
    assert spearman(x, y)["rho"] == pytest.approx(0.8)
    assert spearman([1, 1, 1], [1, 2, 3])["note"] == "constant values"


def _plausibility_table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    correct = rng.random(n) < 0.7
    pred = rng.integers(0, 2, n)
    rows = []
    for method, shift in (("A", 0.3), ("B", 0.0)):
        score = np.clip(0.4 + shift * correct + rng.normal(0, 0.05, n), 0, 1)
        rows.append(pd.DataFrame({"method": method, "seed": 10, "case": np.arange(n).astype(str), "msfi": score,
                                  "prob_pred": 0.5 + 0.4 * rng.random(n), "correct": correct, "pred": pred}))
    return pd.concat(rows, ignore_index=True)


def test_informativeness_right_vs_wrong_and_per_class():
    t = _plausibility_table()
    out = informativeness(t, "msfi").set_index("method")
    a = t[t["method"] == "A"]
    expected = stats.mannwhitneyu(a.loc[a["correct"], "msfi"], a.loc[~a["correct"], "msfi"], alternative="greater")
    assert out.loc["A", "mw_p"] == pytest.approx(expected.pvalue) and out.loc["A", "mw_marker"] == "***"
    assert out.loc["B", "mw_marker"] in ("NS", "*")  # no shift: rarely significant
    assert {"mw_p_pred0", "mw_p_pred1"} <= set(out.columns)
    assert out.loc["A", "median_right"] > out.loc["A", "median_wrong"]


def test_informativeness_when_every_prediction_is_right():
    t = _plausibility_table().assign(correct=True)
    out = informativeness(t, "msfi")
    assert out["mw_p"].isna().all() and out["mw_marker"].eq("n.c.").all()
    assert out["mw_note"].str.contains("not computable").all()
    buf = io.StringIO()  # the marker survives the CSV the tables rule reads back
    out.to_csv(buf, index=False)
    assert pd.read_csv(io.StringIO(buf.getvalue()))["mw_marker"].eq("n.c.").all()


def test_friedman_and_nemenyi_match_scipy_and_scikit_posthocs():
    rng = np.random.default_rng(1)
    wide = pd.DataFrame(rng.normal(size=(30, 4)), columns=list("abcd"))
    wide["a"] += 2.0
    result, nemenyi, ranks = friedman_nemenyi(wide, alpha=0.01)
    chi2, p = stats.friedmanchisquare(*wide.to_numpy().T)
    assert result["chi2"] == pytest.approx(chi2) and result["p"] == pytest.approx(p) and result["df"] == 3
    expected = sp.posthoc_nemenyi_friedman(wide.to_numpy())
    np.testing.assert_allclose(nemenyi.to_numpy(), expected.to_numpy())
    assert result["better"] == ["a"] and ranks.index[0] == "a"


def test_better_than_others_can_be_a_group():
    # a and b tie at the top (never separated), both far above c, d, e: the group {a, b} is marked
    rng = np.random.default_rng(2)
    wide = pd.DataFrame(rng.normal(size=(60, 5)), columns=list("abcde"))
    wide[["a", "b"]] += 5.0
    result, _, _ = friedman_nemenyi(wide, alpha=0.01)
    assert sorted(result["better"]) == ["a", "b"]


def test_friedman_not_computable_with_two_methods():
    result, nemenyi, _ = friedman_nemenyi(pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0]}))
    assert math.isnan(result["chi2"]) and "not computable" in result["note"] and nemenyi.empty


def test_method_matrix_leaves_out_mostly_undefined_methods():
    long = pd.DataFrame({"seed": 1, "case": list("xyzw") * 3, "method": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
                         "v": [1, 2, 3, 4, 1, 2, np.nan, 4, np.nan, np.nan, np.nan, 1]})
    wide, dropped = method_matrix(long, ["seed", "case"], "v", max_missing=0.5)
    assert dropped == ["c"] and list(wide.columns) == ["a", "b"] and len(wide) == 3  # the block with b NaN goes


def test_critical_difference_two_methods_by_hand():
    # k = 2: q_0.05 = 1.960 (the normal quantile); CD = 1.96 sqrt(2 * 3 / (6 N)) = 0.98 for N = 4
    assert critical_difference(2, 4, 0.05) == pytest.approx(1.95996 / 2, rel=1e-3)


def test_kendall_rankings():
    a = pd.Series([0.1, 0.2, 0.3, 0.4], index=list("abcd"))
    assert kendall_rankings(a, a * 2)["tau_b"] == pytest.approx(1.0)
    assert kendall_rankings(a, -a)["tau_b"] == pytest.approx(-1.0)
    short = kendall_rankings(a[:2], a[:2])
    assert math.isnan(short["tau_b"]) and "need 3" in short["note"]


def test_compare_methods_and_kendall_table():
    rng = np.random.default_rng(3)
    units = []
    for task in ("glioma", "knee"):
        rows = [{"seed": s, "method": m, "delta_aupc": base + rng.normal(0, 0.01)}
                for s in (1, 2, 3, 4, 5) for m, base in (("A", 0.5), ("B", 0.3), ("C", 0.1))]
        units.append((task, "delta_aupc", "G3", ["seed"], pd.DataFrame(rows)))
    metrics, friedman, nemenyi, _ = compare_methods(units, alpha=0.01)
    assert set(friedman["task"]) == {"glioma", "knee"} and (friedman["k"] == 3).all()
    a = metrics[(metrics["task"] == "glioma") & (metrics["method"] == "A")].iloc[0]
    assert a["mean"] == pytest.approx(0.5, abs=0.02) and a["top3"] and a["mean_rank"] == 1.0
    kendall = kendall_table(metrics, {t: t for t in metrics["task"]})
    row = kendall.iloc[0]
    assert row["tau_b"] == pytest.approx(1.0) and row["in_paper"]
