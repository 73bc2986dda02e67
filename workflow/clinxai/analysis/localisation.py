"""Localisation and degradation scores per case and per method (issue 20, torch-free).

Every score is one scalar per (model, case) with a declared better direction, the contract the statistics path
(clinxai.analysis.ranking) and the saliency cards rely on:
- localisation (clinxai.evaluation.localisation, pooled over modalities): rma, rra, vxap, max_f1, auroc,
  pointing_game;
- degradation, from the MoRF / LeRF / random-order curves (clinxai.evaluation.degradation), over the removal steps
  1..m (step 0, nothing removed, left out as in seed 002): ds = mean(LeRF − MoRF); morf = mean MoRF probability
  (lower is better: removing what the map ranks first should hurt); lerf = mean LeRF probability; morf_gain =
  mean(random − MoRF) and lerf_gain = mean(LeRF − random), against the mean of the random orders.
DS_c(α) is a property of a model's whole test set (a class-adjusted mean), one value per (model, method).
Values are rounded to 12 decimals so that equal quantities computed along different float paths tie in rankings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attribution.postprocess import STATUS_NONFINITE
from ..metrics.degradation import class_adjusted, degradation_score

DECIMALS = 12
DEGRADATION = {"ds": "higher", "morf": "lower", "lerf": "higher", "morf_gain": "higher", "lerf_gain": "higher"}
KEYS = ["task", "seed", "method", "case", "label", "pred"]


def degradation_case_scores(curves: pd.DataFrame) -> pd.DataFrame:
    """Long rows (KEYS, status, metric, value, better) from one or more degradation curve tables."""
    steps = curves[curves["step"] > 0]
    wide = steps.pivot_table(index=KEYS + ["status", "step"], columns="curve", values="prob", aggfunc="mean")
    rows = []
    for key, g in wide.groupby(level=list(range(len(KEYS) + 1))):
        g = g.sort_index(level="step")
        morf, lerf, rand = (g[c].to_numpy(float) for c in ("morf", "lerf", "random"))
        values = {"ds": degradation_score(morf, lerf), "morf": float(morf.mean()), "lerf": float(lerf.mean()),
                  "morf_gain": float(np.mean(rand - morf)), "lerf_gain": float(np.mean(lerf - rand))}
        base = dict(zip(KEYS + ["status"], key))
        if base["status"] == STATUS_NONFINITE:  # a failed map was perturbed in random order: no score of its own
            values = dict.fromkeys(values, float("nan"))
        rows += [{**base, "metric": k, "value": v, "better": DEGRADATION[k]} for k, v in values.items()]
    return rounded(pd.DataFrame(rows))


def localisation_case_scores(table: pd.DataFrame) -> pd.DataFrame:
    """The pooled ("all" modalities) rows of the localisation stage's long tables."""
    pooled = table[table["modality"] == "all"]
    return rounded(pooled[KEYS + ["status", "metric", "value", "better"]].reset_index(drop=True))


def ds_c_table(scores: pd.DataFrame, alpha: float = 1.0) -> pd.DataFrame:
    """DS, Δ and DS_c(α) per (task, seed, method) over the model's cases, with the per-class means."""
    ds = scores[scores["metric"] == "ds"]
    rows = []
    for (task, seed, method), g in ds.groupby(["task", "seed", "method"]):
        r = class_adjusted(g["value"], g["label"], alpha)
        rows.append({"task": task, "seed": seed, "method": method, "n": int(g["value"].notna().sum()),
                     "ds": r["ds"], "delta": r["delta"], "ds_c": r["ds_c"], "alpha": alpha,
                     **{f"ds_class{y}": v for y, v in r["per_class"].items()}})
    return rounded(pd.DataFrame(rows), ["ds", "delta", "ds_c"] + [c for r in rows for c in r if c.startswith("ds_cl")])


def method_summary(scores: pd.DataFrame, ds_c: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method, metric): mean, std and n over cases of all models; DS_c over the models."""
    case = scores.groupby(["task", "method", "metric", "better"])["value"].agg(["mean", "std", "count"])
    case = case.rename(columns={"count": "n"}).reset_index().assign(unit="case")
    model = ds_c.groupby(["task", "method"])["ds_c"].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    model = model.reset_index().assign(metric="ds_c", better="higher", unit="model")
    return pd.concat([case, model], ignore_index=True)[["task", "method", "metric", "better", "unit", "mean", "std",
                                                        "n"]]


def rounded(table: pd.DataFrame, columns=("value",)) -> pd.DataFrame:
    """`columns` rounded to DECIMALS, so that equal quantities from different float paths tie in rankings."""
    table = table.copy()
    for c in columns:
        if c in table:
            table[c] = table[c].astype(float).round(DECIMALS)
    return table


def road_comparison(curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ΔAUPC per method under each replacement (mean ± std over the models) and Kendall τ-b between the method
    rankings of the task's replacement and ROAD. `curves`: the road_removal tables of one task."""
    from ..metrics.removal import delta_aupc
    from .stats import kendall_rankings

    per_model = [{"task": t, "seed": s, "method": m, "replacement": r, **delta_aupc(g)}
                 for (t, s, m, r), g in curves.groupby(["task", "seed", "method", "replacement"], sort=True)]
    per_model = rounded(pd.DataFrame(per_model), ["delta_aupc"])
    summary = per_model.groupby(["task", "method", "replacement"])["delta_aupc"].agg(["mean", "std", "count"])
    summary = summary.rename(columns={"count": "n_models"}).reset_index()
    summary["rank"] = summary.groupby("replacement")["mean"].rank(ascending=False, method="average")
    replacements = list(dict.fromkeys(curves["replacement"]))
    own = next((r for r in replacements if r != "road"), "road")
    a = summary[summary["replacement"] == own].set_index("method")["mean"]
    b = summary[summary["replacement"] == "road"].set_index("method")["mean"]
    tau = kendall_rankings(a, b) if own != "road" else {
        "tau_b": float("nan"), "p": float("nan"), "n_methods": len(b),
        "note": "the task's feature removal already uses ROAD: nothing to compare"}
    kendall = pd.DataFrame([{"task": curves["task"].iloc[0], "replacement_a": own, "replacement_b": "road", **tau,
                             "n_seeds": curves["seed"].nunique(), "n_cases": int(curves["n_cases"].max())}])
    return summary, kendall
