"""The paper's Tables 2-4 and the guidelines scorecard (SPEC §7).

Each table is a long-format CSV (one row per method, task and metric, with the tests behind its marks) and a wide
Markdown / LaTeX rendering laid out like the paper: every registry method in alphabetical order, "NaN" where a
method was not evaluated on a task or the metric is undefined for it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .attribution.registry import METHODS
from .io import atomic_path, save_csv

TASK_TITLES = {"glioma": "Glioma", "knee": "Knee", "synthetic": "Synthetic glioma"}
METRIC_TITLES = {"delta_aupc": "ΔAUPC", "mi_correlation": "MI correlation", "msfi_global": "MSFI (whole map)",
                 "msfi": "MSFI", "fp": "FP"}
# Table 2's columns (SPEC §4): feature removal and MI correlation on the real-data tasks, MSFI on the synthetic one
TABLE2_COLUMNS = [("delta_aupc", "glioma"), ("delta_aupc", "knee"), ("mi_correlation", "glioma"),
                  ("mi_correlation", "knee"), ("synthetic", "synthetic")]
TABLE3_TASKS = ["glioma", "knee"]  # the paper's Table 3; the synthetic task's informativeness is in its own CSV


def tables_by_task(paths) -> dict[str, pd.DataFrame]:
    """{task: table} of per-task CSVs that carry a `task` column (empty tables are left out)."""
    frames = [pd.read_csv(p) for p in paths]
    return {str(t["task"].iloc[0]): t for t in frames if len(t)}


def timing_by_task(paths) -> dict[str, pd.DataFrame]:
    """{task: table} of results/<task>/heatmaps/timing.csv files."""
    return {Path(p).parts[-3]: pd.read_csv(p) for p in paths}


def all_methods() -> list[str]:
    return sorted(METHODS, key=str.lower)


def _num(x, fmt="{:.2f}") -> str:
    return "NaN" if x is None or not np.isfinite(x) else fmt.format(x)


def _seconds(x) -> str:
    """Seconds like Table 4: three significant digits, no exponent."""
    if x is None or not np.isfinite(x):
        return "NaN"
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


def table2(metrics: pd.DataFrame, synthetic_metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """G3 truthfulness: mean ± std per method; top three in bold, `*` significantly better than the others
    (Friedman + Nemenyi). `metrics` is the statistics stage's metrics.csv."""
    long = metrics[metrics["guideline"] == "G3"].copy()
    wide = pd.DataFrame(index=all_methods())
    for metric, task in TABLE2_COLUMNS:
        name = synthetic_metric if task == "synthetic" else metric
        title = f"{METRIC_TITLES[name]} {TASK_TITLES[task]}"
        m = long[(long["task"] == task) & (long["metric"] == name)].set_index("method")
        cells = []
        for method in wide.index:
            if method not in m.index or not np.isfinite(m.loc[method, "mean"]):
                cells.append("NaN")
                continue
            r = m.loc[method]
            text = f"{r['mean']:.2f} ± {_num(r['std'])}"
            text = f"**{text}**" if r["top3"] else text
            cells.append(("∗" if r["better_than_others"] else "") + text)
        wide[title] = cells
    cols = ["method", "task", "metric", "mean", "std", "n", "mean_rank", "top3", "better_than_others",
            "friedman_chi2", "friedman_df", "friedman_p"]
    return long[cols].sort_values(["task", "metric", "method"]).reset_index(drop=True), wide


def table3(info: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """G4 informative plausibility: Spearman ρ of the score with the predicted probability (`*` p < 0.05, top
    three in bold), and per task the upper-tailed Mann-Whitney marker with medians (95 % CI) of right and wrong."""
    rows, wide = [], pd.DataFrame(index=all_methods())
    for task in TABLE3_TASKS:
        t = info.get(task, pd.DataFrame(columns=["method"])).set_index("method")
        top = set(t.loc[t["spearman_rho"] > 0, "spearman_rho"].nlargest(3).index) if len(t) else set()
        rho, sig, right, wrong = [], [], [], []
        for method in wide.index:
            if method not in t.index:
                rho.append("NaN"), sig.append("NaN"), right.append("NaN"), wrong.append("NaN")
                continue
            r = t.loc[method]
            cell = _num(r["spearman_rho"]) + (" ∗" if np.isfinite(r["spearman_p"]) and r["spearman_p"] < 0.05 else "")
            rho.append(f"**{cell}**" if method in top and np.isfinite(r["spearman_rho"]) else cell)
            sig.append(r["mw_marker"])
            right.append(f"{_num(r['median_right'])} ({_num(r['ci_low_right'])}, {_num(r['ci_high_right'])})")
            wrong.append(f"{_num(r['median_wrong'])} ({_num(r['ci_low_wrong'])}, {_num(r['ci_high_wrong'])})")
            for name in ("spearman_rho", "spearman_p", "mw_u", "mw_p", "mw_effect", "median_right", "ci_low_right",
                         "ci_high_right", "median_wrong", "ci_low_wrong", "ci_high_wrong"):
                rows.append({"method": method, "task": task, "score": r["score"], "statistic": name,
                             "value": r[name], "n": r["n"], "n_right": r["n_right"], "n_wrong": r["n_wrong"],
                             "marker": r["mw_marker"] if name.startswith("mw") else "",
                             "note": r["mw_note"] if name.startswith("mw") else r["spearman_note"]})
        title = TASK_TITLES[task]
        wide[f"Spearman ρ {title}"] = rho
        wide[f"Stat. sig. {title}"] = sig
        wide[f"Right pred. {title}"] = right
        wide[f"Wrong pred. {title}"] = wrong
    order = [c for c in wide.columns if c.startswith("Spearman")] + \
        [c for c in wide.columns if not c.startswith("Spearman")]
    return pd.DataFrame(rows), wide[order]


def table4(timing: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """G5 computational efficiency: seconds per heatmap per case, mean ± std over models (and cases)."""
    rows, wide = [], pd.DataFrame(index=all_methods())
    for task in ("glioma", "knee", "synthetic"):
        t = timing.get(task, pd.DataFrame(columns=["method"])).set_index("method")
        cells = []
        for method in wide.index:
            if method not in t.index:
                cells.append("NaN")
                continue
            r = t.loc[method]
            cells.append(f"{_seconds(r['seconds_per_case_mean'])} ± {_seconds(r['seconds_per_case_std'])}")
            rows.append({"method": method, "task": task, "metric": "seconds_per_heatmap",
                         "mean": r["seconds_per_case_mean"], "std": r["seconds_per_case_std"],
                         "n": r["n_models"]})
        wide[TASK_TITLES[task]] = cells
    return pd.DataFrame(rows, columns=["method", "task", "metric", "mean", "std", "n"]), wide


def markdown(wide: pd.DataFrame, caption: str) -> str:
    head = "| Method | " + " | ".join(wide.columns) + " |"
    rule = "|---|" + "---|" * len(wide.columns)
    body = ["| " + " | ".join([str(m), *map(str, r)]) + " |" for m, r in zip(wide.index, wide.to_numpy())]
    return "\n".join([head, rule, *body, "", caption, ""])


def _tex(cell: str) -> str:
    s = str(cell).replace("\\", r"\textbackslash{}")
    for a, b in (("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("±", r"$\pm$"), ("ρ", r"$\rho$"),
                 ("Δ", r"$\Delta$"), ("∗", r"$^{*}$")):
        s = s.replace(a, b)
    if "**" in s:
        s = r"\textbf{" + s.replace("**", "") + "}"
    return s


def latex(wide: pd.DataFrame, caption: str, label: str) -> str:
    lines = [r"\begin{table}[t]", r"\centering", r"\footnotesize",
             r"\begin{tabular}{l" + "c" * len(wide.columns) + "}", r"\hline",
             " & ".join(["Method", *map(_tex, wide.columns)]) + r" \\", r"\hline"]
    lines += [" & ".join([_tex(m), *map(_tex, r)]) + r" \\" for m, r in zip(wide.index, wide.to_numpy())]
    lines += [r"\hline", r"\end{tabular}", rf"\caption{{{_tex(caption)}}}", rf"\label{{{label}}}", r"\end{table}", ""]
    return "\n".join(lines)


def write_table(long: pd.DataFrame, wide: pd.DataFrame, paths: dict, caption: str, label: str) -> None:
    """paths: csv (long format), md, tex."""
    save_csv(paths["csv"], long)
    for key, text in (("md", markdown(wide, caption)), ("tex", latex(wide, caption, label))):
        with atomic_path(paths[key]) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")


NOT_EVALUATED = "not evaluated"  # not "n/a": pandas reads that back from the CSV as a missing value


def scorecard(metrics: pd.DataFrame, info: dict[str, pd.DataFrame], timing: dict[str, pd.DataFrame],
              rules: dict) -> pd.DataFrame:
    """Per method and task, pass / fail / not evaluated of G3, G4, G5 by the rules in config (`scorecard`), with the values
    and the rule that decided; plus an "all tasks" row per method: pass where it passes on every task it was
    evaluated on."""
    g3, g4, g5 = rules["G3"], rules["G4"], rules["G5"]
    mean = metrics.set_index(["task", "metric", "method"])["mean"]
    rows = []

    def add(method, task, guideline, ok, value, rule):
        rows.append({"method": method, "task": task, "guideline": guideline,
                     "result": NOT_EVALUATED if ok is None else ("pass" if ok else "fail"), "value": value, "rule": rule})

    tasks = sorted(set(metrics["task"]) | set(info) | set(timing), key=list(TASK_TITLES).index)
    for task in tasks:
        for method in all_methods():
            g3_ok = None
            if task == "synthetic":
                v = mean.get(("synthetic", g3["synthetic_metric"], method), math.nan)
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


def scorecard_wide(card: pd.DataFrame) -> pd.DataFrame:
    """Methods × (task, guideline) with ✓ / ✗ / –, like the bottom row of the paper's Fig. 1."""
    symbol = {"pass": "✓", "fail": "✗", NOT_EVALUATED: "–"}
    tasks = [t for t in [*TASK_TITLES, "all"] if t in set(card["task"])]
    wide = pd.DataFrame(index=all_methods())
    for task in tasks:
        for guideline in ("G3", "G4", "G5"):
            g = card[(card["task"] == task) & (card["guideline"] == guideline)].set_index("method")["result"]
            wide[f"{guideline} {TASK_TITLES.get(task, 'all tasks')}"] = [symbol[g.get(m, NOT_EVALUATED)] for m in wide.index]
    return wide
