"""The guidelines scorecard's pass/fail rules (SPEC §7): per method and task, G3/G4/G5 from the statistics, the
informativeness tests and the timing, by the thresholds in config (`scorecard`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..attribution.registry import METHODS


def all_methods() -> list[str]:
    """Every registry method, alphabetically (the paper's row order)."""
    return sorted(METHODS, key=str.lower)


NOT_EVALUATED = "not evaluated"  # not "n/a": pandas reads that back from the CSV as a missing value


def scorecard(metrics: pd.DataFrame, info: dict[str, pd.DataFrame], timing: dict[str, pd.DataFrame],
              rules: dict, tasks: list[dict]) -> pd.DataFrame:
    """Per method and task, pass / fail / not evaluated of G3, G4, G5 by the rules in config (`scorecard`), with the values
    and the rule that decided; plus an "all tasks" row per method: pass where it passes on every task it was
    evaluated on."""
    g3, g4, g5 = rules["G3"], rules["G4"], rules["G5"]
    mean = metrics.set_index(["task", "metric", "method"])["mean"]
    rows = []

    def add(method, task, guideline, ok, value, rule):
        rows.append({"method": method, "task": task, "guideline": guideline,
                     "result": NOT_EVALUATED if ok is None else ("pass" if ok else "fail"), "value": value, "rule": rule})

    order = [t["task"] for t in tasks]
    groundtruth = {t["task"] for t in tasks if t["truthfulness"] == "groundtruth"}
    evaluated = sorted(set(metrics["task"]) | set(info) | set(timing), key=order.index)
    for task in evaluated:
        for method in all_methods():
            g3_ok = None
            if task in groundtruth:  # MSFI against the known modality importance decides
                v = mean.get((task, g3["synthetic_metric"], method), math.nan)
                if np.isfinite(v):
                    g3_ok = bool(v >= g3["msfi_min"])
                add(method, task, "G3", g3_ok, v, f"{g3['synthetic_metric']} ≥ {g3['msfi_min']}")
            else:
                d = mean.get((task, "delta_aupc", method), math.nan)
                mi = mean.get((task, "mi_correlation", method), math.nan)
                if np.isfinite(d):  # MI correlation undefined for modality-agnostic maps: ΔAUPC decides alone
                    g3_ok = bool(d >= g3["delta_aupc_min"] and (not np.isfinite(mi) or mi >= g3["mi_correlation_min"]))
                add(method, task, "G3", g3_ok, d,
                    f"ΔAUPC ≥ {g3['delta_aupc_min']} and MI correlation ≥ {g3['mi_correlation_min']} (where defined)")
            t = info.get(task)
            g4_ok, v = None, math.nan
            if t is not None and method in set(t["method"]):
                r = t.set_index("method").loc[method]
                v = r["mw_p"]
                if np.isfinite(r["mw_p"]):
                    g4_ok = bool(r["mw_p"] < g4["alpha"] and r["mw_effect"] >= g4["min_effect"])
                    if g4["requires_g3"] and g3_ok is not True:
                        g4_ok = False
            add(method, task, "G4", g4_ok, v,
                f"upper-tailed Mann-Whitney p < {g4['alpha']} and P(right > wrong) ≥ {g4['min_effect']}"
                + (" and G3 passed" if g4["requires_g3"] else ""))
            tm = timing.get(task)
            g5_ok, v = None, math.nan
            if tm is not None and method in set(tm["method"]):
                v = float(tm.set_index("method").loc[method, "seconds_per_case_mean"])
                g5_ok = bool(v <= g5["max_seconds"])
            add(method, task, "G5", g5_ok, v, f"seconds per heatmap ≤ {g5['max_seconds']}")
    card = pd.DataFrame(rows)
    overall = []
    for (method, guideline), g in card.groupby(["method", "guideline"]):
        results = set(g["result"]) - {NOT_EVALUATED}
        res = NOT_EVALUATED if not results else ("pass" if results == {"pass"} else "fail")
        overall.append({"method": method, "task": "all", "guideline": guideline, "result": res,
                        "value": math.nan, "rule": "pass on every task where evaluated"})
    return pd.concat([card, pd.DataFrame(overall)], ignore_index=True)
