"""Per-method and per-model summaries of the stage outputs (torch-free): the models' test performance, ΔAUPC and MI
correlation (Table 2's G3 columns), and MSFI against a known ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ClinxaiError
from ..metrics.modality import mi_correlation
from ..metrics.removal import delta_aupc


def summarise_models(metrics_paths) -> pd.DataFrame:
    """One row per seed (val/test accuracy and AUC, best epoch, seconds), then `mean` and `std` rows over seeds. A
    supplied model (not trained here) has no best epoch (NaN) and 0 epochs run."""
    rows = []
    for path in metrics_paths:
        m = json.loads(Path(path).read_text())
        rows.append({"seed": str(m["seed"]), "best_epoch": m.get("best_epoch", np.nan), "epochs_run": m["epochs_run"],
                     "val_accuracy": m["val"]["accuracy"], "val_auc": m["val"]["auc"],
                     "test_accuracy": m["test"]["accuracy"], "test_auc": m["test"]["auc"],
                     "test_wrong": int(round(m["test"]["n"] * (1 - m["test"]["accuracy"]))),
                     "seconds": m["seconds"]})
    table = pd.DataFrame(rows)
    numeric = table.drop(columns="seed")
    stats = pd.DataFrame([{"seed": "mean", **numeric.mean().to_dict()}, {"seed": "std", **numeric.std(ddof=1).to_dict()}])
    return pd.concat([table, stats], ignore_index=True)


def delta_aupc_table(curves: pd.DataFrame) -> pd.DataFrame:
    rows = [{"task": t, "method": m, "seed": s, **delta_aupc(g)}
            for (t, m, s), g in curves.groupby(["task", "method", "seed"])]
    return pd.DataFrame(rows)


def mi_correlation_table(sums: pd.DataFrame, phi: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Kendall τ-b per (seed, method, case) between φ of the case's model and the map's modality sums."""
    phi_by_seed = {s: g.set_index("modality").loc[names, "phi"].to_numpy() for s, g in phi.groupby("seed")}
    rows = []
    for r in sums.itertuples(index=False):
        r = r._asdict()
        if r["seed"] not in phi_by_seed:
            raise ClinxaiError(f"no modality Shapley values for model seed {r['seed']}")
        mi = np.array([r[f"mi_{n}"] for n in names], float)
        tau, p, reason = mi_correlation(phi_by_seed[r["seed"]], mi, bool(r["identical"]))
        rows.append({"seed": r["seed"], "method": r["method"], "case": r["case"], "mi_correlation": tau,
                     "p_value": p, "reason": reason})
    return pd.DataFrame(rows)


def summarise(task: str, deltas: pd.DataFrame, mi: pd.DataFrame) -> pd.DataFrame:
    """Per method: ΔAUPC over the models and MI correlation over all (model, case) pairs, mean ± std and n."""
    d = deltas.groupby("method")["delta_aupc"].agg(["mean", "std", "count"])
    d.columns = ["delta_aupc_mean", "delta_aupc_std", "delta_aupc_n"]
    m = mi.groupby("method")["mi_correlation"].agg(["mean", "std", "count"])
    m.columns = ["mi_correlation_mean", "mi_correlation_std", "mi_correlation_n"]
    reasons = mi[mi["reason"] != ""].groupby("method")["reason"].agg(lambda r: "; ".join(sorted(set(r))))
    out = d.join(m, how="outer").join(reasons.rename("mi_correlation_nan_reason"), how="left")
    out["mi_correlation_nan_reason"] = out["mi_correlation_nan_reason"].fillna("")
    return out.reset_index().assign(task=task)


def summarise_msfi(task: str, tables: list[pd.DataFrame], accuracy: pd.DataFrame, report_metric: str) -> pd.DataFrame:
    """Per method: mean, std and n of msfi and msfi_global over all (model, case) pairs; the reported metric."""
    t = pd.concat(tables, ignore_index=True)
    out = t.groupby("method").agg(msfi_mean=("msfi", "mean"), msfi_std=("msfi", "std"), msfi_n=("msfi", "count"),
                                  msfi_global_mean=("msfi_global", "mean"), msfi_global_std=("msfi_global", "std"),
                                  msfi_global_n=("msfi_global", "count"), fp_mean=("fp", "mean"))
    out["reported"] = report_metric
    out["acc_t1c"] = accuracy.loc[accuracy["set"] == "T1C", "accuracy"].mean()
    out["acc_flair"] = accuracy.loc[accuracy["set"] == "FLAIR", "accuracy"].mean()
    return out.reset_index().assign(task=task)
