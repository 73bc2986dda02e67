"""Saliency cards from the measurements (seed 004; issue 21, torch-free): seed 004's ten attributes in its three
categories, each measured attribute from the statistics stage's tables, and a method chooser by the user's priorities.

Every number a card states is a row of `attribute_table` (results/cards/attributes.csv) or `choose`
(results/cards/chooser.csv):
- value: mean ± sd over the models (seeds) of the per-model mean (results/statistics/per_model.csv; seconds per case
  from Table 4's timing table; the informativeness ρ from the plausibility stage, pooled over the models);
- rank: 1 = best by the metric's declared direction, among the methods with a value on the task (tied methods share
  the best rank of their tie: nine deterministic methods with ρ = 1 are all first), and its range over the models
  (where there are two or more); percentile = (n − rank) / (n − 1), 1 = best;
- better_than_others and n_separated: the Friedman + Nemenyi marks of the statistics stage (in the top group that
  Nemenyi separates from all others; how many methods with a worse mean rank the Nemenyi test separates it from at
  the configured α, where the Friedman test rejects at α).
The chooser's score of a method is the weighted mean of its attributes' percentiles (each attribute by its first
metric the task has), Σ |w_a| q_a / Σ |w_a| over the attributes it has, q_a = percentile for w_a > 0 and
1 − percentile for w_a < 0 (preferring the other direction); `coverage` = the share of the profile's weight the
method has values for (Gradient, say, has no hyperparameters to depend on), shown beside every score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .localisation import DECIMALS, rounded


@dataclass(frozen=True)
class Attribute:
    name: str
    category: str          # methodology | sensitivity | perceptibility
    metrics: tuple = ()    # metric keys, the chooser's first; empty: described from the method registry


ATTRIBUTES = (
    Attribute("determinism", "methodology", ("determinism_spearman", "determinism_voxel_cv")),
    Attribute("hyperparameter_dependence", "methodology", ("hyperparameters_spearman",)),
    Attribute("model_agnosticism", "methodology"),
    Attribute("computational_efficiency", "methodology", ("seconds_per_case",)),
    Attribute("semantic_directness", "methodology"),
    Attribute("input_sensitivity", "sensitivity", ("input_spearman", "max_sensitivity", "delta_aupc", "ds")),
    Attribute("label_sensitivity", "sensitivity", ("label_spearman",)),
    Attribute("model_sensitivity", "sensitivity", ("model_spearman", "data_spearman")),
    Attribute("minimality", "perceptibility", ("minimality_gini",)),
    Attribute("perceptual_correspondence", "perceptibility", ("msfi", "fp", "rma", "vxap", "informativeness_rho")),
)
BY_NAME = {a.name: a for a in ATTRIBUTES}
MEASURED = tuple(a.name for a in ATTRIBUTES if a.metrics)
PER_MODEL = "results/statistics/per_model.csv"
COLUMNS = ["task", "method", "attribute", "category", "metric", "better", "value_mean", "value_sd", "n_models",
           "rank", "rank_min", "rank_max", "n_methods", "percentile", "better_than_others", "n_separated",
           "source_table", "source_key"]


def _ranks(values, higher: bool):
    """1 = best; ties share the best rank of the tie; NaN stays NaN (a Series, or a DataFrame column-wise)."""
    return values.rank(ascending=not higher, method="min")


def _percentile(rank: float, n: int) -> float:
    if not np.isfinite(rank):
        return np.nan
    return float((n - rank) / (n - 1)) if n > 1 else 1.0


def _rows_for(task: str, metric: str, better: str, stats: pd.DataFrame, table: str, key: str,
              marks: pd.DataFrame | None = None, separated: dict | None = None) -> list[dict]:
    """`stats`: per method value_mean, value_sd, n_models and (optional) per-model ranks rank_min / rank_max."""
    higher = better == "higher"
    finite = stats["value_mean"].replace([np.inf, -np.inf], np.nan)
    rank = _ranks(finite, higher)
    n = int(finite.notna().sum())
    rows = []
    for method, r in stats.iterrows():
        mark = marks.loc[method] if marks is not None and method in marks.index else None
        rows.append({"task": task, "method": method, "metric": metric, "better": better,
                     "value_mean": r["value_mean"], "value_sd": r["value_sd"], "n_models": r["n_models"],
                     "rank": rank[method], "rank_min": r.get("rank_min", np.nan), "rank_max": r.get("rank_max", np.nan),
                     "n_methods": n, "percentile": _percentile(rank[method], n),
                     "better_than_others": bool(mark["better_than_others"]) if mark is not None else None,
                     "n_separated": (separated or {}).get(method, np.nan), "source_table": table,
                     "source_key": key.format(task=task, method=method, metric=metric)})
    return rows


def _separated(nemenyi: pd.DataFrame, marks: pd.DataFrame, alpha: float) -> dict:
    """Per method: the methods with a worse Friedman mean rank that Nemenyi separates it from at α (none where the
    Friedman test does not reject)."""
    if marks.empty or not (marks["friedman_p"] < alpha).any():
        return dict.fromkeys(marks.index, 0)
    rank = marks["mean_rank"]
    hits = nemenyi[(nemenyi["p"] < alpha) & nemenyi["method_a"].isin(rank.index) & nemenyi["method_b"].isin(rank.index)]
    hits = hits[hits["method_a"].map(rank) < hits["method_b"].map(rank)]
    return {m: int((hits["method_a"] == m).sum()) for m in marks.index}


def attribute_table(metrics: pd.DataFrame, per_model: pd.DataFrame, nemenyi: pd.DataFrame, timing: dict,
                    informativeness: dict, alpha: float) -> pd.DataFrame:
    """Every measured attribute's metrics per (task, method): see the module docstring. `timing` and
    `informativeness`: {task: table} (Table 4's timing; the plausibility stage's informativeness)."""
    where = {m: a for a in ATTRIBUTES for m in a.metrics}
    rows = []
    for (task, metric), g in per_model[per_model["metric"].isin(list(where))].groupby(["task", "metric"]):
        better = g["better"].iloc[0]
        stats = g.groupby("method")["value"].agg(value_mean="mean", value_sd="std", n_models="count")
        wide = g.pivot_table(index="method", columns="seed", values="value")
        if wide.shape[1] > 1:  # each model's ranks: their range
            per_seed = _ranks(wide, better == "higher")
            stats["rank_min"], stats["rank_max"] = per_seed.min(axis=1), per_seed.max(axis=1)
        marks = metrics[(metrics["task"] == task) & (metrics["metric"] == metric)].set_index("method")
        pairs = nemenyi[(nemenyi["task"] == task) & (nemenyi["metric"] == metric)]
        rows += _rows_for(task, metric, better, stats, PER_MODEL, "{task}/{method}/{metric}", marks,
                          _separated(pairs, marks, alpha))
    for task, t in timing.items():
        stats = t.set_index("method").rename(columns={"seconds_per_case_mean": "value_mean",
                                                      "seconds_per_case_std": "value_sd"})
        rows += _rows_for(task, "seconds_per_case", "lower", stats[["value_mean", "value_sd", "n_models"]],
                          f"results/{task}/heatmaps/timing.csv", "{method}/seconds_per_case_mean")
    for task, t in informativeness.items():
        stats = pd.DataFrame({"value_mean": t.set_index("method")["spearman_rho"], "value_sd": np.nan,
                              "n_models": np.nan})
        rows += _rows_for(task, "informativeness_rho", "higher", stats,
                          f"results/{task}/plausibility/informativeness.csv", "{method}/spearman_rho")
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("attribute", "category")])
    table["attribute"] = table["metric"].map(lambda m: where[m].name)
    table["category"] = table["metric"].map(lambda m: where[m].category)
    table = rounded(table, ("value_mean", "value_sd", "percentile"))
    return table[COLUMNS].sort_values(["task", "method", "attribute", "metric"]).reset_index(drop=True)


def headline(attributes: pd.DataFrame, task: str, attribute: str) -> str | None:
    """The attribute's first metric that at least two of the task's methods have a value of."""
    t = attributes[(attributes["task"] == task) & (attributes["attribute"] == attribute)]
    for metric in BY_NAME[attribute].metrics:
        if t.loc[t["metric"] == metric, "value_mean"].notna().sum() >= 2:
            return metric
    return None


def choose(attributes: pd.DataFrame, profiles: dict) -> pd.DataFrame:
    """Long rows (profile, task, method, attribute, metric, weight, percentile, value = contribution) and one row per
    method with attribute `score` (value = the weighted mean, rank 1 = best, coverage = the share of the profile's
    weight it has values for)."""
    rows = []
    for profile, weights in profiles.items():
        for task in sorted(attributes["task"].unique()):
            used = {a: headline(attributes, task, a) for a, w in weights.items() if w}
            used = {a: m for a, m in used.items() if m}
            t = attributes[attributes["task"] == task]
            scores = {}
            for method in sorted(t["method"].unique()):
                parts = []
                for a, metric in used.items():
                    p = t[(t["method"] == method) & (t["metric"] == metric)]["percentile"]
                    if len(p) and np.isfinite(p.iloc[0]):
                        w = float(weights[a])
                        parts.append((a, metric, w, float(p.iloc[0]), p.iloc[0] if w > 0 else 1 - p.iloc[0]))
                total = sum(abs(w) for _, _, w, _, _ in parts)
                for a, metric, w, p, q in parts:
                    rows.append({"profile": profile, "task": task, "method": method, "attribute": a, "metric": metric,
                                 "weight": w, "percentile": p, "value": abs(w) * q / total, "rank": np.nan,
                                 "coverage": np.nan})
                scores[method] = (sum(abs(w) * q for _, _, w, _, q in parts) / total if total else np.nan,
                                  total / sum(abs(float(w)) for w in weights.values()))
            s = pd.Series({m: v for m, (v, _) in scores.items()}, dtype=float).round(DECIMALS)
            rank = s.rank(ascending=False, method="min")
            rows += [{"profile": profile, "task": task, "method": m, "attribute": "score", "metric": "",
                      "weight": np.nan, "percentile": np.nan, "value": s[m], "rank": rank[m],
                      "coverage": scores[m][1]} for m in s.index]
    table = pd.DataFrame(rows, columns=["profile", "task", "method", "attribute", "metric", "weight", "percentile",
                                        "value", "rank", "coverage"])
    return rounded(table, ("value", "coverage"))


def trade_offs(attributes: pd.DataFrame, task: str, method: str) -> tuple[list[str], list[str]]:
    """The measured attributes the method ranks in the top and in the bottom quarter of (by headline metric)."""
    high, low = [], []
    for a in MEASURED:
        metric = headline(attributes, task, a)
        p = attributes[(attributes["task"] == task) & (attributes["method"] == method) & (attributes["metric"] == metric)]
        if metric and len(p) and np.isfinite(p["percentile"].iloc[0]):
            (high if p["percentile"].iloc[0] >= 0.75 else low if p["percentile"].iloc[0] <= 0.25 else []).append(a)
    return high, low


def separable(nemenyi: pd.DataFrame, attributes: pd.DataFrame, task: str, metrics: list[str], a: str, b: str,
              alpha: float) -> tuple[list[str], list[tuple[str, str]]]:
    """Of `metrics`, those with a Nemenyi test of methods a and b, and the (metric, better method) pairs it separates
    at α (the better one by the metric's rank)."""
    n = nemenyi[(nemenyi["task"] == task) & nemenyi["metric"].isin(metrics) & (nemenyi["method_a"] == a)
                & (nemenyi["method_b"] == b)]
    rank = attributes[attributes["task"] == task].set_index(["method", "metric"])["rank"]
    won = [(m, a if rank.get((a, m), np.inf) < rank.get((b, m), np.inf) else b)
           for m in sorted(n.loc[n["p"] < alpha, "metric"].unique())]
    return sorted(n["metric"].unique()), won
