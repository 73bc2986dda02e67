"""Sensitivity scores per case and per method (issue 19, torch-free), from the sensitivity stage's long tables
(clinxai.evaluation.sensitivity).

Every score is one scalar per (model, case) with a declared better direction, the contract of the statistics path
and the saliency cards: the mean over a case's draws within a setting, then over the attribute's settings (each
shift, randomised depth or grid point weighs the same). Its name is `<attribute>_<metric>` (`max_sensitivity` alone).
Similarities are better high where the map should stay (input shifts, repeats, hyperparameters) and low where it
should change (randomised model or data, the other class); distances the other way round; minimality is better
high. Rows that are findings, not scores, carry no direction: `flipped` (the shift changed the predicted class),
`negated` and `antisymmetric_logits` (the other class's map is the exact negative: a property of the model, so the
label scores of that case are left out), and the model-level `delta_aupc` of each grid setting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .localisation import rounded

SIMILARITY_BETTER = {"input": "higher", "determinism": "higher", "hyperparameters": "higher", "model": "lower",
                     "data": "lower", "label": "lower"}
DISTANCES = ("relative_change", "voxel_cv")
FINDINGS = ("flipped", "negated", "antisymmetric_logits", "delta_aupc")
# the score per attribute that Table 6, the figures and the cards show
HEADLINE = {"input": "input_spearman", "max_sensitivity": "max_sensitivity", "model": "model_spearman",
            "data": "data_spearman", "label": "label_spearman", "determinism": "determinism_spearman",
            "hyperparameters": "hyperparameters_spearman", "minimality": "minimality_gini"}
KEYS = ["task", "seed", "method", "case", "label", "pred"]


def better(attribute: str, metric: str) -> str:
    """The declared better direction of a (attribute, metric) row: "higher", "lower" or "" (not a score)."""
    if metric in FINDINGS:
        return ""
    if attribute in ("minimality",) or metric == "bit_identical":
        return "higher"
    if attribute == "max_sensitivity":
        return "lower"
    base = SIMILARITY_BETTER[attribute]
    return ({"higher": "lower", "lower": "higher"}[base]) if metric in DISTANCES else base


def score_name(attribute: str, metric: str) -> str:
    return metric if metric == attribute else f"{attribute}_{metric}"


def read_tables(paths) -> pd.DataFrame:
    """The stage's tables (the model-level rows have an empty case)."""
    frames = [pd.read_csv(p, dtype={"case": str, "setting": str}, keep_default_na=False, na_values=[""])
              for p in paths]
    table = pd.concat(frames, ignore_index=True)
    table["case"] = table["case"].fillna("")
    table["better"] = table["better"].fillna("")
    return table


def case_scores(raw: pd.DataFrame) -> pd.DataFrame:
    """Long rows (KEYS, attribute, metric, value, better), one per (model, method, case, score)."""
    rows = raw[(raw["case"] != "") & (raw["better"] != "")].copy()
    negated = raw[(raw["metric"] == "negated") & (raw["value"] == 1)][["seed", "method", "case"]]
    if len(negated):  # the other class's map is −map: the label scores say nothing about the method there
        hit = rows.set_index(["seed", "method", "case"]).index.isin(negated.set_index(["seed", "method", "case"]).index)
        rows.loc[hit & (rows["attribute"] == "label").to_numpy(), "value"] = np.nan
    keys = KEYS + ["attribute", "metric", "better"]
    per_setting = rows.groupby(keys + ["setting"], dropna=False)["value"].mean()
    scores = per_setting.groupby(level=list(range(len(keys))), dropna=False).mean().reset_index()
    scores["metric"] = [score_name(a, m) for a, m in zip(scores["attribute"], scores["metric"])]
    return rounded(scores[KEYS + ["attribute", "metric", "value", "better"]])


def method_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method, attribute, score): mean, std and n over the cases of every model."""
    s = scores.groupby(["task", "method", "attribute", "metric", "better"])["value"].agg(["mean", "std", "count"])
    return s.rename(columns={"count": "n"}).reset_index()


def setting_summary(raw: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method, attribute, setting, metric): the mean and std over cases and models of the per-case mean
    over draws (the figures: similarity against the randomised depth, per shift, per grid point)."""
    rows = raw[(raw["case"] != "") & (raw["better"] != "")]
    per_case = rows.groupby(["task", "seed", "method", "case", "attribute", "setting", "metric"])["value"].mean()
    s = per_case.groupby(["task", "method", "attribute", "setting", "metric"]).agg(["mean", "std", "count"])
    s = s.rename(columns={"count": "n"}).reset_index()
    depth = s["setting"].str.extract(r"^(\d+):", expand=False)
    return s.assign(depth=pd.to_numeric(depth)).sort_values(["task", "attribute", "method", "depth", "setting"])


def model_findings(raw: pd.DataFrame) -> pd.DataFrame:
    """Per (task, seed, finding, setting): the share of cases (and draws) -- the share of shift draws that flipped
    the predicted class, of cases with antisymmetric logits -- which are the model's, the same for every method
    (checked); and per method the share of cases whose other-class map is the exact negative."""
    rows = []
    model_level = raw[raw["metric"].isin(["flipped", "antisymmetric_logits"])]
    for (task, seed, metric, setting), g in model_level.groupby(["task", "seed", "metric", "setting"]):
        per_method = g.groupby("method")["value"].apply(lambda v: tuple(v.to_numpy()))
        if per_method.nunique() > 1:
            raise ValueError(f"{task} seed {seed} {metric} {setting}: the draws differ between methods "
                             f"({per_method.to_dict()}); they are seeded per model and case and must agree.")
        values = g[g["method"] == g["method"].iloc[0]]["value"]
        rows.append({"task": task, "seed": seed, "method": "", "finding": metric, "setting": setting,
                     "share": float(values.mean()), "n": int(values.size)})
    for (task, seed, method), g in raw[raw["metric"] == "negated"].groupby(["task", "seed", "method"]):
        rows.append({"task": task, "seed": seed, "method": method, "finding": "negated", "setting": "other_class",
                     "share": float(g["value"].mean()), "n": int(g["value"].size)})
    return pd.DataFrame(rows, columns=["task", "seed", "method", "finding", "setting", "share", "n"])


def hyperparameter_spread(raw: pd.DataFrame) -> pd.DataFrame:
    """Per (task, seed, method): ΔAUPC at the reference setting and its range over the grid (model-level rows)."""
    d = raw[(raw["metric"] == "delta_aupc") & (raw["case"] == "")]
    rows = []
    for (task, seed, method), g in d.groupby(["task", "seed", "method"]):
        v = g.set_index("setting")["value"].astype(float)
        rows.append({"task": task, "seed": seed, "method": method, "settings": len(v),
                     "delta_aupc_reference": float(v.get("reference", np.nan)), "delta_aupc_min": float(v.min()),
                     "delta_aupc_max": float(v.max()), "delta_aupc_spread": float(v.max() - v.min())})
    table = pd.DataFrame(rows, columns=["task", "seed", "method", "settings", "delta_aupc_reference",
                                        "delta_aupc_min", "delta_aupc_max", "delta_aupc_spread"])
    return rounded(table, [c for c in table if c.startswith("delta_aupc")])
