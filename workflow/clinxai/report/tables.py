"""The paper's Tables 2-4 and the guidelines scorecard (SPEC §7).

Each table is a long-format CSV (one row per method, task and metric, with the tests behind its marks) and a wide
Markdown / LaTeX rendering laid out like the paper: every registry method in alphabetical order, "NaN" where a
method was not evaluated on a task or the metric is undefined for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.ranking import LOCALISATION, SENSITIVITY
from ..analysis.sensitivity import HEADLINE
from ..analysis.scorecard import NOT_EVALUATED, all_methods
from ..io import atomic_path, save_csv
from .labels import METRIC_LABELS

# `tasks` below: clinxai.tasks.task_records(config), rows of task, kind, title and truthfulness in config order.


def titles(tasks: list[dict]) -> dict[str, str]:
    return {t["task"]: t["title"] for t in tasks}


def removal_tasks(tasks: list[dict]) -> list[str]:
    """Tasks with feature removal and modality Shapley (real-data kinds): Table 2's first columns and Table 3."""
    return [t["task"] for t in tasks if t["truthfulness"] == "removal"]


def table2_columns(tasks: list[dict], groundtruth_metric: str) -> list[tuple[str, str]]:
    """(metric, task) of Table 2 (SPEC §4): ΔAUPC, then MI correlation, of every removal task; then the reported
    MSFI of every task with a known ground truth."""
    removal = removal_tasks(tasks)
    return [(m, t) for m in ("delta_aupc", "mi_correlation") for t in removal] + \
        [(groundtruth_metric, t["task"]) for t in tasks if t["truthfulness"] == "groundtruth"]


def tables_by_task(paths) -> dict[str, pd.DataFrame]:
    """{task: table} of per-task CSVs that carry a `task` column (empty tables are left out)."""
    frames = [pd.read_csv(p) for p in paths]
    return {str(t["task"].iloc[0]): t for t in frames if len(t)}


def timing_by_task(paths) -> dict[str, pd.DataFrame]:
    """{task: table} of results/<task>/heatmaps/timing.csv files."""
    return {Path(p).parts[-3]: pd.read_csv(p) for p in paths}


def _num(x, fmt="{:.2f}") -> str:
    return "NaN" if x is None or not np.isfinite(x) else fmt.format(x)


def _seconds(x) -> str:
    """Seconds like Table 4: three significant digits, no exponent."""
    if x is None or not np.isfinite(x):
        return "NaN"
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


def table2(metrics: pd.DataFrame, tasks: list[dict], groundtruth_metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """G3 truthfulness: mean ± std per method; top three in bold, `*` significantly better than the others
    (Friedman + Nemenyi). `metrics` is the statistics stage's metrics.csv."""
    long = metrics[metrics["guideline"] == "G3"].copy()
    wide = pd.DataFrame(index=all_methods())
    for name, task in table2_columns(tasks, groundtruth_metric):
        wide[f"{METRIC_LABELS[name]} {titles(tasks)[task]}"] = _mean_std_cells(long, task, name, wide.index)
    return long[LONG_COLUMNS].sort_values(["task", "metric", "method"]).reset_index(drop=True), wide


LONG_COLUMNS = ["method", "task", "metric", "mean", "std", "n", "mean_rank", "top3", "better_than_others",
                "friedman_chi2", "friedman_df", "friedman_p"]
TABLE5_METRICS = ("rma", "rra", "vxap", "max_f1", "auroc", "pointing_game", "ds", "ds_c")
TABLE6_METRICS = tuple(HEADLINE.values())  # each sensitivity attribute's headline score


def _mean_std_cells(long: pd.DataFrame, task: str, metric: str, methods, fmt: str = "{:.2f}") -> list[str]:
    """`mean ± std` per method, bold among the top three, `∗` when significantly better than the others."""
    m = long[(long["task"] == task) & (long["metric"] == metric)].set_index("method")
    cells = []
    for method in methods:
        if method not in m.index or not np.isfinite(m.loc[method, "mean"]):
            cells.append("NaN")
            continue
        r = m.loc[method]
        text = f"{fmt.format(r['mean'])} ± {_num(r['std'], fmt)}"
        text = f"**{text}**" if r["top3"] else text
        cells.append(("∗" if r["better_than_others"] else "") + text)
    return cells


def _guideline_table(metrics: pd.DataFrame, tasks: list[dict], guideline: str, names, formats: dict):
    """Table 2's layout for one guideline column of metrics.csv: a column per (metric in `names`, task) that the run
    has, mean ± std per method, top three (by each metric's better direction) in bold, `∗` significantly better
    than the others; the long CSV has every metric of the guideline."""
    long = metrics[metrics["guideline"] == guideline].copy()
    wide = pd.DataFrame(index=all_methods())
    have = set(zip(long["task"], long["metric"]))
    for metric in names:
        for task in titles(tasks):
            if (task, metric) in have:
                wide[f"{METRIC_LABELS.get(metric, metric)} {titles(tasks)[task]}"] = _mean_std_cells(
                    long, task, metric, wide.index, formats.get(metric, "{:.2f}"))
    cols = LONG_COLUMNS[:3] + ["better"] + LONG_COLUMNS[3:]
    return long[cols].sort_values(["task", "metric", "method"]).reset_index(drop=True), wide


def table5(metrics: pd.DataFrame, tasks: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Localisation and degradation: per task RMA, RRA, VxAP, MaxF1, AUROC, the pointing game (tasks with a
    clinical mask), DS and DS_c (every task)."""
    return _guideline_table(metrics, tasks, LOCALISATION, TABLE5_METRICS, {"ds": "{:.3f}", "ds_c": "{:.3f}"})


def table6(metrics: pd.DataFrame, tasks: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sensitivity: each attribute's headline score (clinxai.analysis.sensitivity.HEADLINE) per task; the long CSV
    has every sensitivity score (SSIM, top-10 % IoU, CV, the other minimality measures)."""
    return _guideline_table(metrics, tasks, SENSITIVITY, TABLE6_METRICS, {})


def table3(info: dict[str, pd.DataFrame], tasks: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """G4 informative plausibility: Spearman ρ of the score with the predicted probability (`*` p < 0.05, top
    three in bold), and per task the upper-tailed Mann-Whitney marker with medians (95 % CI) of right and wrong."""
    rows, wide = [], pd.DataFrame(index=all_methods())
    for task in removal_tasks(tasks):  # the paper's Table 3; a ground-truth task's informativeness is in its CSV
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
        title = titles(tasks)[task]
        wide[f"Spearman ρ {title}"] = rho
        wide[f"Stat. sig. {title}"] = sig
        wide[f"Right pred. {title}"] = right
        wide[f"Wrong pred. {title}"] = wrong
    order = [c for c in wide.columns if c.startswith("Spearman")] + \
        [c for c in wide.columns if not c.startswith("Spearman")]
    return pd.DataFrame(rows), wide[order]


def table4(timing: dict[str, pd.DataFrame], tasks: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """G5 computational efficiency: seconds per heatmap per case, mean ± std over models (and cases)."""
    rows, wide = [], pd.DataFrame(index=all_methods())
    for task in titles(tasks):
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
        wide[titles(tasks)[task]] = cells
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


def scorecard_wide(card: pd.DataFrame, tasks: list[dict]) -> pd.DataFrame:
    """Methods × (task, guideline) with ✓ / ✗ / –, like the bottom row of the paper's Fig. 1."""
    symbol = {"pass": "✓", "fail": "✗", NOT_EVALUATED: "–"}
    names = {**titles(tasks), "all": "all tasks"}
    wide = pd.DataFrame(index=all_methods())
    for task in [t for t in names if t in set(card["task"])]:
        for guideline in ("G3", "G4", "G5"):
            g = card[(card["task"] == task) & (card["guideline"] == guideline)].set_index("method")["result"]
            wide[f"{guideline} {names[task]}"] = [symbol[g.get(m, NOT_EVALUATED)] for m in wide.index]
    return wide
