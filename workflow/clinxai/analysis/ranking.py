"""Comparing methods (SPEC §6): per task and metric the per-method mean ± std, Friedman + Nemenyi over the
evaluation units (a case under one model; a model for the global ΔAUPC), the "significantly better than the
others" mark, and Kendall τ-b between the method rankings of two (task, metric) pairs."""

from __future__ import annotations

import itertools
import logging

import pandas as pd

from ..tasks import PAPER_PAIRS
from .stats import friedman_nemenyi, kendall_rankings, method_matrix

log = logging.getLogger("clinxai.ranking")


LOCALISATION = "localisation"  # the guideline column of the localisation and degradation metrics (Table 5)
SENSITIVITY = "sensitivity"  # ... and of the sensitivity attributes (Table 6)


def metric_units(delta_aupc: dict, mi: dict, plausibility: dict, synthetic_metric: str, plausibility_score: str,
                 groundtruth_tasks=(), scores: dict | None = None, ds_c: dict | None = None,
                 sensitivity: dict | None = None):
    """(task, metric, guideline, blocks, per-unit table, better) for every metric the run has. For
    `groundtruth_tasks` (a known modality importance) the plausibility table's `synthetic_metric` is their G3
    truthfulness score. `scores`: {task: long per-case table (metric, value, better)} of the localisation stage;
    `ds_c`: {task: DS_c per (seed, method)} -- one unit per model, like ΔAUPC; `sensitivity`: {task: long per-case
    table} of the sensitivity stage, in the same form as `scores`."""
    out = []
    for task, t in delta_aupc.items():
        out.append((task, "delta_aupc", "G3", ["seed"], t, "higher"))
    for task, t in mi.items():
        out.append((task, "mi_correlation", "G3", ["seed", "case"], t, "higher"))
    for task, t in plausibility.items():
        if task in groundtruth_tasks:
            out.append((task, synthetic_metric, "G3", ["seed", "case"], t, "higher"))
        out.append((task, plausibility_score, "G4", ["seed", "case"], t, "higher"))
    for guideline, tables in ((LOCALISATION, scores), (SENSITIVITY, sensitivity)):
        for task, t in (tables or {}).items():
            for metric, g in t.groupby("metric", sort=False):
                out.append((task, metric, guideline, ["seed", "case"], g.rename(columns={"value": metric}),
                            g["better"].iloc[0]))
    for task, t in (ds_c or {}).items():
        out.append((task, "ds_c", LOCALISATION, ["seed"], t, "higher"))
    return out


def compare_methods(units, alpha: float = 0.01, max_missing: float = 0.5):
    """Returns (metrics, friedman, nemenyi, matrices): long tables over every (task, metric). A unit without a sixth
    element (its better direction) is higher-is-better."""
    metrics, friedman, nemenyi, matrices = [], [], [], {}
    for task, metric, guideline, blocks, table, *better in units:
        higher = (better or ["higher"])[0] == "higher"
        summary = table.groupby("method")[metric].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
        wide, dropped = method_matrix(table, blocks, metric, max_missing)
        result, nem, ranks = friedman_nemenyi(wide, alpha, higher)
        matrices[(task, metric)] = (wide, nem, ranks)
        means = summary["mean"].dropna()
        top3 = set(means.nlargest(3).index if higher else means.nsmallest(3).index)
        summary = summary.assign(task=task, metric=metric, guideline=guideline, better="higher" if higher else "lower",
                                 mean_rank=ranks,
                                 top3=summary.index.isin(top3), better_than_others=summary.index.isin(result["better"]),
                                 friedman_chi2=result["chi2"], friedman_df=result["df"], friedman_p=result["p"])
        metrics.append(summary.reset_index())
        friedman.append({"task": task, "metric": metric, "guideline": guideline, "k": result["k"],
                         "n_blocks": result["n_blocks"], "chi2": result["chi2"], "df": result["df"], "p": result["p"],
                         "better_than_others": ";".join(result["better"]), "left_out": ";".join(dropped),
                         "note": result["note"]})
        if not nem.empty:
            nemenyi.append(nem.rename_axis("method_a").reset_index()
                           .melt(id_vars="method_a", var_name="method_b", value_name="p")
                           .assign(task=task, metric=metric))
        log.info("%s %s: Friedman χ²(%s) = %.1f, p = %.3g over %d blocks; better: %s", task, metric, result["df"],
                 result["chi2"], result["p"], result["n_blocks"], result["better"] or "none")
    metrics = pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame()
    nemenyi = pd.concat(nemenyi, ignore_index=True) if nemenyi else pd.DataFrame(
        columns=["method_a", "method_b", "p", "task", "metric"])
    return metrics, pd.DataFrame(friedman), nemenyi, matrices


def per_model_means(units) -> pd.DataFrame:
    """Per (task, metric, seed, method): the mean over the model's units (its value, for a metric with one unit per
    model) -- what the saliency cards rank methods by per model."""
    rows = []
    for task, metric, guideline, _, table, *better in units:
        g = table.groupby(["seed", "method"])[metric].mean().rename("value").reset_index()
        rows.append(g.assign(task=task, metric=metric, guideline=guideline, better=(better or ["higher"])[0]))
    columns = ["task", "metric", "guideline", "better", "seed", "method", "value"]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def kendall_table(metrics: pd.DataFrame, kinds: dict | None = None) -> pd.DataFrame:
    """Kendall τ-b between the method rankings (by mean) of every two G3 (task, metric) pairs. `kinds`: task -> kind
    (clinxai.tasks), to flag the comparisons the paper reports."""
    kinds = kinds or {}
    g3 = metrics[metrics["guideline"] == "G3"]
    keys = sorted(set(zip(g3["task"], g3["metric"])))
    rows = []
    for a, b in itertools.combinations(keys, 2):
        ma = g3[(g3["task"] == a[0]) & (g3["metric"] == a[1])].set_index("method")["mean"]
        mb = g3[(g3["task"] == b[0]) & (g3["metric"] == b[1])].set_index("method")["mean"]
        r = kendall_rankings(ma, mb)
        ka, kb = (kinds.get(a[0], a[0]), a[1]), (kinds.get(b[0], b[0]), b[1])
        rows.append({"task_a": a[0], "metric_a": a[1], "task_b": b[0], "metric_b": b[1], **r,
                     "in_paper": (ka, kb) in PAPER_PAIRS or (kb, ka) in PAPER_PAIRS})
    return pd.DataFrame(rows, columns=["task_a", "metric_a", "task_b", "metric_b", "tau_b", "p", "n_methods", "note",
                                       "in_paper"])
