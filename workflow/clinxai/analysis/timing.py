"""Heatmap timing (G5, Table 4): seconds per heatmap per case, per method, with the settings that produced them."""

from __future__ import annotations

import pandas as pd


def timing_table(tables: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over models of each model's mean seconds per case; device, threads and batching recorded."""
    per_model = tables.groupby(["method", "seed"], sort=False)["seconds"].mean().reset_index()
    out = per_model.groupby("method", sort=False)["seconds"].agg(["mean", "std", "count"]).reset_index()
    out.columns = ["method", "seconds_per_case_mean", "seconds_per_case_std", "n_models"]
    first = tables.drop_duplicates("method").set_index("method")
    for col in ("device", "threads", "batch_size", "perturbations_per_eval", "implementation", "captum", "torch"):
        if col in first:  # `implementation`: recorded since issue 22
            out[col] = out["method"].map(first[col])
    flagged = tables.assign(flagged=tables["status"] != "ok").groupby("method", sort=False)["flagged"].sum()
    out["flagged_maps"] = out["method"].map(flagged).astype(int)
    return out
