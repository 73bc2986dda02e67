"""The paper's figures (seaborn, non-interactive backend); every function writes one file atomically."""

from __future__ import annotations

import pandas as pd

from .io import atomic_path

BEST, WORST = "tab:blue", "tab:red"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    suffix = str(path).rsplit(".", 1)[-1]
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format=suffix)


def fig3_perturbation_curves(curves: pd.DataFrame, deltas: pd.DataFrame, task: str, path) -> pd.DataFrame:
    """Fig. 3: per model, the perturbation curves of the best and worst method by ΔAUPC, each with the mean of its
    random baselines (dashed) and a 95 % bootstrap band; the legend gives ΔAUPC = AUPC(Hb) − AUPC(H).

    Returns the (seed, method, role) rows drawn.
    """
    import seaborn as sns

    plt = _pyplot()
    seeds = sorted(deltas["seed"].unique())
    fig, axes = plt.subplots(1, len(seeds), figsize=(3.6 * len(seeds), 3.4), squeeze=False, sharey=True)
    drawn = []
    metric = curves["metric"].iloc[0] if "metric" in curves else "performance"
    for ax, seed in zip(axes[0], seeds):
        d = deltas[(deltas["seed"] == seed) & deltas["delta_aupc"].notna()].sort_values("delta_aupc")
        if d.empty:
            ax.set_title(f"seed {seed}: no curves")
            continue
        picks = [(d.iloc[-1], BEST, "best")] + ([(d.iloc[0], WORST, "worst")] if len(d) > 1 else [])
        for row, colour, role in picks:
            c = curves[(curves["seed"] == seed) & (curves["method"] == row["method"])]
            m = c[c["curve"] == "map"].sort_values("q")
            b = c[c["curve"] == "baseline"]
            ax.plot(m["q"], m["performance"], color=colour, lw=2,
                    label=f"{row['method']}: ΔAUPC = {row['aupc_baseline']:.2f} − {row['aupc_map']:.2f} "
                          f"= {row['delta_aupc']:.2f}")
            ax.fill_between(m["q"], m["performance"], color=colour, alpha=0.06)
            sns.lineplot(data=b, x="q", y="performance", ax=ax, color=colour, linestyle="--", lw=1.2,
                         errorbar=("ci", 95), seed=0, label=None)
            drawn.append({"seed": seed, "method": row["method"], "role": role, "delta_aupc": row["delta_aupc"]})
        ax.set_title(f"{task}, model seed {seed}", fontsize=9)
        ax.set_xlabel("fraction of the map's positive voxels removed (q)")
        ax.set_ylabel("accuracy" if metric == "accuracy" else "ROC AUC" if metric == "auc" else metric)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=6, loc="lower left", title="solid: map, dashed: baselines", title_fontsize=6)
    fig.suptitle(f"Cumulative feature removal, {task}: best (blue) and worst (red) method per model", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return pd.DataFrame(drawn)

