"""Rule method_statistics: per (task, metric) means, Friedman + Nemenyi, CD diagrams; Kendall τ-b of rankings."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.analysis.ranking import (LOCALISATION, SENSITIVITY, compare_methods, kendall_table, metric_units,
                                     per_model_means)
from clinxai.io import save_csv
from clinxai.logs import job_log
from clinxai.report.figures import critical_difference_plots
from clinxai.report.tables import TABLE5_METRICS, TABLE6_METRICS


def by_task(paths):
    frames = [pd.read_csv(p, dtype={"case": str}) for p in paths]
    if not frames:
        return {}
    table = pd.concat(frames, ignore_index=True)
    return {task: g for task, g in table.groupby("task")}


with job_log(snakemake.log[0]) as log:
    sm = snakemake
    tasks = sm.params.tasks
    groundtruth = {t["task"] for t in tasks if t["truthfulness"] == "groundtruth"}
    units = metric_units(by_task(sm.input.delta_aupc), by_task(sm.input.mi_correlation), by_task(sm.input.plausibility),
                         sm.params.synthetic_metric, sm.params.score, groundtruth,
                         by_task(sm.input.localisation_scores), by_task(sm.input.ds_c),
                         by_task(sm.input.sensitivity_scores))
    metrics, friedman, nemenyi, matrices = compare_methods(units, sm.params.alpha, sm.params.max_missing)
    kendall = kendall_table(metrics, {t["task"]: t["kind"] for t in tasks})
    save_csv(sm.output.metrics, metrics)
    save_csv(sm.output.friedman, friedman)
    save_csv(sm.output.nemenyi, nemenyi)
    save_csv(sm.output.kendall, kendall)
    save_csv(sm.output.per_model, per_model_means(units))
    guideline = dict(zip(zip(metrics["task"], metrics["metric"]), metrics["guideline"])) if len(metrics) else {}
    critical_difference_plots({k: v for k, v in matrices.items() if guideline.get(k) not in (LOCALISATION, SENSITIVITY)},
                              sm.params.cd_alpha, sm.output.cd_plots)
    task_order = [t["task"] for t in tasks]  # Table 5's metrics, a row each, a column per task
    critical_difference_plots(matrices, sm.params.cd_alpha, sm.output.cd_localisation,
                              [[(t, m) for t in task_order] for m in TABLE5_METRICS])
    critical_difference_plots(matrices, sm.params.cd_alpha, sm.output.cd_sensitivity,  # Table 6's scores
                              [[(t, m) for t in task_order] for m in TABLE6_METRICS])
    log.info("\n%s\n%s", friedman.to_string(index=False), kendall.to_string(index=False))
