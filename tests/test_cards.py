"""Saliency cards and the method chooser (issue 21) on tables whose answers are known by hand: ranks by each
metric's direction with their range over the models, percentiles, Nemenyi separation, the weighted chooser with a
negative weight, trade-offs, and a card that states only what the tables hold."""
import json

import numpy as np
import pandas as pd
import pytest

from clinxai.analysis.cards import attribute_table, choose, trade_offs
from clinxai.attribution.registry import METHODS
from clinxai.report.cards import card, card_html, card_json, card_markdown, chooser_markdown, chooser_sections

METHODS3 = ["Gradient", "Occlusion", "Lime"]
# per model (seed 1, 2): minimality (higher better) and model randomisation ρ (lower better)
VALUES = {("minimality_gini", "higher"): {"Gradient": (0.9, 0.7), "Occlusion": (0.5, 0.8), "Lime": (0.1, 0.2)},
          ("model_spearman", "lower"): {"Gradient": (0.1, 0.3), "Occlusion": (0.5, 0.4), "Lime": (0.9, 0.9)}}


def tables():
    per_model = pd.DataFrame([{"task": "t", "metric": metric, "guideline": "sensitivity", "better": better, "seed": s,
                               "method": method, "value": v}
                              for (metric, better), d in VALUES.items() for method, vs in d.items()
                              for s, v in zip((1, 2), vs)])
    metrics = pd.DataFrame([{"task": "t", "metric": metric, "method": m, "better_than_others": m == "Gradient",
                             "mean_rank": METHODS3.index(m) + 1, "friedman_p": 0.001}
                            for metric, _ in VALUES for m in METHODS3])
    nemenyi = pd.DataFrame([{"task": "t", "metric": "model_spearman", "method_a": a, "method_b": b,
                             "p": 0.001 if {a, b} == {"Gradient", "Lime"} else 0.5}
                            for a in METHODS3 for b in METHODS3])
    timing = {"t": pd.DataFrame({"method": METHODS3, "seconds_per_case_mean": [0.01, 2.0, 1.0],
                                 "seconds_per_case_std": [0.0, 0.1, 0.1], "n_models": [2, 2, 2]})}
    return attribute_table(metrics, per_model, nemenyi, timing, {}, alpha=0.01), nemenyi


def test_attribute_ranks_percentiles_and_separation_by_hand():
    a, _ = tables()
    a = a.set_index(["method", "metric"])
    # minimality means: Gradient 0.8, Occlusion 0.65, Lime 0.15 -> ranks 1, 2, 3; per model: (1,3,... )
    assert a.loc[("Gradient", "minimality_gini"), ["value_mean", "rank", "percentile"]].tolist() == [0.8, 1, 1.0]
    assert a.loc[("Gradient", "minimality_gini"), "value_sd"] == pytest.approx(np.std([0.9, 0.7], ddof=1))
    assert a.loc[("Gradient", "minimality_gini"), ["rank_min", "rank_max"]].tolist() == [1, 2]  # seed 2: Occlusion 0.8
    assert a.loc[("Occlusion", "minimality_gini"), "percentile"] == 0.5
    # lower is better for the randomisation ρ: Gradient 0.2 is best
    assert a.loc[("Gradient", "model_spearman"), "rank"] == 1 and a.loc[("Lime", "model_spearman"), "rank"] == 3
    assert a.loc[("Gradient", "model_spearman"), "n_separated"] == 1  # from Lime only
    assert a.loc[("Lime", "model_spearman"), "n_separated"] == 0  # separated from Gradient, but worse
    assert a.loc[("Occlusion", "model_spearman"), "n_separated"] == 0
    assert a.loc[("Gradient", "model_spearman"), "better_than_others"]
    assert a.loc[("Occlusion", "seconds_per_case"), ["rank", "better"]].tolist() == [3, "lower"]
    assert np.isnan(a.loc[("Occlusion", "seconds_per_case"), "rank_min"])  # one timing per method: no range
    assert set(a["attribute"]) == {"minimality", "model_sensitivity", "computational_efficiency"}


def test_the_chooser_weights_percentiles_and_a_negative_weight_prefers_the_other_end():
    a, _ = tables()
    c = choose(a, {"sparse": {"minimality": 2, "model_sensitivity": 1}, "dense": {"minimality": -1}})
    s = c[c["attribute"] == "score"].set_index(["profile", "method"])
    assert set(s["coverage"]) == {1.0}
    # sparse: Gradient (2*1 + 1*1)/3 = 1; Occlusion (2*0.5 + 1*0.5)/3 = 0.5; Lime 0
    assert s.loc[("sparse", "Gradient"), ["value", "rank"]].tolist() == [1.0, 1]
    assert s.loc[("sparse", "Occlusion"), "value"] == 0.5 and s.loc[("sparse", "Lime"), "value"] == 0
    assert s.loc[("dense", "Lime"), ["value", "rank"]].tolist() == [1.0, 1]  # 1 - percentile 0
    parts = c[(c["profile"] == "sparse") & (c["method"] == "Occlusion") & (c["attribute"] != "score")]
    assert parts["value"].sum() == pytest.approx(0.5) and set(parts["metric"]) == {"minimality_gini",
                                                                                   "model_spearman"}
    assert trade_offs(a, "t", "Lime") == ([], ["model_sensitivity", "minimality"])  # efficiency: percentile 0.5
    assert trade_offs(a, "t", "Gradient") == (["computational_efficiency", "model_sensitivity", "minimality"], [])


def test_a_card_states_only_the_tables_numbers_and_says_what_was_not_measured():
    a, nemenyi = tables()
    c = choose(a, {"sparse": {"minimality": 2, "model_sensitivity": 1}})
    prov = {"commit": "abc", "config_md5": "0" * 32, "packages": {"captum": "0.9.0"}}
    d = card("t", METHODS["Occlusion"], {"sliding_window_shapes": (1, 4, 4)}, a, c, 10, prov)
    assert d["sensitivity"]["label_sensitivity"] == {"status": "not measured", "metrics": []}
    assert d["methodology"]["model_agnosticism"]["text"].startswith("black box")
    m = d["perceptibility"]["minimality"]["metrics"][0]
    assert (m["value_mean"], m["rank"], m["percentile"]) == (0.65, 2.0, 0.5)
    assert m["source"] == {"table": "results/statistics/per_model.csv", "key": "t/Occlusion/minimality_gini"}
    eff = d["methodology"]["computational_efficiency"]
    assert eff["within_g5"] and eff["metrics"][0]["value_mean"] == 2.0
    assert [v["parameter"] for v in d["methodology"]["hyperparameter_dependence"]["consequential"]] == ["window"]
    assert d["chooser"] == {"sparse": {"score": 0.5, "rank": 2.0, "coverage": 1.0}}
    assert json.loads(card_json(d)) == d
    assert "0.65 ± 0.212" in card_markdown(d) and "not measured" in card_html(d)
    md = chooser_markdown(chooser_sections(c, a, nemenyi, {"sparse": {"minimality": 2, "model_sensitivity": 1}},
                                           0.01))
    assert "| 1 | Gradient | 1.000 | 1.00 |" in md
    assert "Gradient vs Occlusion: the data cannot separate them on model_spearman (Nemenyi, α = 0.01)." in md
    assert "Gradient vs Lime: Nemenyi (α = 0.01) separates them: Gradient better on model_spearman." in md


def test_ties_share_the_best_rank_and_a_missing_attribute_lowers_coverage():
    a, _ = tables()
    from clinxai.analysis.cards import _rows_for

    stats = pd.DataFrame({"value_mean": [1.0, 1.0, 0.5, np.nan], "value_sd": np.nan, "n_models": 1},
                         index=["A", "B", "C", "D"])
    rows = {r["method"]: r for r in _rows_for("t", "m", "higher", stats, "x", "{method}")}
    assert [rows[m]["rank"] for m in "ABC"] == [1, 1, 3] and rows["A"]["percentile"] == 1.0
    assert np.isnan(rows["D"]["rank"]) and np.isnan(rows["D"]["percentile"]) and rows["A"]["n_methods"] == 3
    partial = a[~((a["method"] == "Lime") & (a["metric"] == "model_spearman"))]
    c = choose(partial, {"p": {"minimality": 1, "model_sensitivity": 3}})
    s = c[c["attribute"] == "score"].set_index("method")
    assert s.loc["Lime", "coverage"] == 0.25 and s.loc["Gradient", "coverage"] == 1.0
