"""The paper's figures (seaborn, non-interactive backend); every function writes one file atomically."""

from __future__ import annotations

import pandas as pd

from ..attribution.postprocess import STATUS_NONFINITE
from ..io import atomic_path
from .labels import METRIC_LABELS

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


def degradation_curves_figure(curves: pd.DataFrame, task: str, path) -> pd.DataFrame:
    """Mean MoRF (red), LeRF (blue) and random-order (grey, dashed) curves per method over every case of every
    model, one panel per method; the title gives the mean DS. Returns the mean curves (method, curve, step)."""
    plt = _pyplot()
    if "status" in curves:  # failed maps have no DS in Table 5: not in the mean curves either
        curves = curves[curves["status"] != STATUS_NONFINITE]
    per_case = curves.groupby(["method", "curve", "seed", "case", "step"], as_index=False)[["fraction", "prob"]].mean()
    means = per_case.groupby(["method", "curve", "step"])[["fraction", "prob"]].mean()
    methods = sorted(curves["method"].unique())
    cols = min(4, len(methods))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.3 * rows), squeeze=False, sharex=True, sharey=True)
    style = {"morf": (WORST, "-", "MoRF"), "lerf": (BEST, "-", "LeRF"), "random": ("0.5", "--", "random order")}
    for ax, method in zip(axes.ravel(), methods):
        m = means.loc[method]
        for curve, (colour, line, label) in style.items():
            if curve in m.index.get_level_values(0):
                c = m.loc[curve]
                ax.plot(c["fraction"], c["prob"], color=colour, linestyle=line, lw=1.5, label=label)
        ds = float((m.loc["lerf"]["prob"] - m.loc["morf"]["prob"]).iloc[1:].mean())
        ax.set_title(f"{method}\nmean DS = {ds:.3f}", fontsize=8)
        ax.set_ylim(0, 1)
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("fraction of voxels perturbed", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("p(explained class)", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"MoRF / LeRF degradation, {task} (mean over cases and models)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return means.reset_index()


def fig5_right_wrong(table: pd.DataFrame, task: str, score: str, path, max_points: int = 400, seed: int = 0) -> None:
    """Fig. 5: per method, violins (quartiles dashed) and a swarm of the plausibility score of right (blue, left)
    and wrong (red, right) predictions, cases pooled over the models. Swarms show at most `max_points` random
    points per group (the violins use every case)."""
    import seaborn as sns

    plt = _pyplot()
    t = table[["method", "correct", score]].dropna().copy()
    t["prediction"] = t["correct"].map({True: "right", False: "wrong"})
    order = sorted(t["method"].unique(), key=str.lower)
    hue_order = ["right", "wrong"]
    palette = {"right": "tab:blue", "wrong": "tab:red"}
    light = {"right": "#b7d2ea", "wrong": "#f2b8b8"}  # pale violins so the swarm's dots stay visible
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(order) + 1.5), 4.0))
    if t.empty:
        ax.text(0.5, 0.5, "no defined scores", ha="center", transform=ax.transAxes)
    else:
        sns.violinplot(data=t, x="method", y=score, hue="prediction", order=order, hue_order=hue_order,
                       palette=light, split=False, inner="quart", cut=0, density_norm="width", linewidth=0.8,
                       ax=ax, legend=True)
        for line in ax.lines:
            line.set_linestyle("--")
            line.set_color("black")
        shown = t.sample(frac=1.0, random_state=seed).groupby(["method", "prediction"]).head(max_points)
        sns.swarmplot(data=shown, x="method", y=score, hue="prediction", order=order, hue_order=hue_order,
                      palette=palette, dodge=True, size=2.2, ax=ax, legend=False, warn_thresh=1.0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("")
    ax.set_ylabel(METRIC_LABELS.get(score, score))
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.set_title(f"{task}: {METRIC_LABELS.get(score, score)} of right and wrong predictions (all models)",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def critical_difference_plots(matrices: dict, alpha: float, path, grid: list[list] | None = None) -> None:
    """One critical-difference diagram (scikit-posthocs) per (task, metric): methods at their mean rank (1 = best),
    crossbars join methods the Nemenyi test does not separate at `alpha`. One column, or `grid`: rows of (task,
    metric) keys (e.g. a row per metric, a column per task); cells without a computable test stay empty."""
    import scikit_posthocs as sp

    from ..analysis.stats import critical_difference

    plt = _pyplot()
    computable = {k for k, (wide, nem, ranks) in matrices.items() if not nem.empty}
    grid = [[k] for k in matrices if k in computable] if grid is None else grid
    grid = [row for row in grid if any(k in computable for k in row)] or [[None]]
    n_rows, n_cols = len(grid), max(len(row) for row in grid)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(8 * n_cols, 2.3 * n_rows), squeeze=False)
    if grid == [[None]]:
        axes[0, 0].text(0.5, 0.5, "no Friedman test was computable", ha="center")
    cells = [(axes[i, j], key) for i, row in enumerate(grid) for j, key in enumerate(row)]
    for ax, key in cells:
        if key not in computable:
            ax.axis("off")
    for ax, key in [(ax, key) for ax, key in cells if key in computable]:
        wide, nem, ranks = matrices[key]
        sp.critical_difference_diagram(ranks, nem, ax=ax, alpha=alpha, label_props={"fontsize": 7})
        cd = critical_difference(wide.shape[1], wide.shape[0], alpha)
        ax.set_title(f"{key[0]} — {METRIC_LABELS.get(key[1], key[1])}: mean rank over {wide.shape[0]} blocks "
                     f"(Nemenyi CD = {cd:.2f} at α = {alpha})", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def scorecard_figure(wide: pd.DataFrame, path) -> None:
    """The guidelines scorecard as a coloured grid (pass green, fail red, not evaluated grey)."""
    import numpy as np

    plt = _pyplot()
    colour = {"✓": 2, "✗": 0, "–": 1}
    grid = np.array([[colour[c] for c in row] for row in wide.to_numpy()], dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * wide.shape[1], 0.8 + 0.3 * wide.shape[0]))
    from matplotlib.colors import ListedColormap

    ax.imshow(grid, cmap=ListedColormap(["#e06666", "#d9d9d9", "#6aa84f"]), vmin=0, vmax=2, aspect="auto")
    for (i, j), v in np.ndenumerate(wide.to_numpy()):
        ax.text(j, i, v, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(wide.shape[1]), wide.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(wide.shape[0]), wide.index, fontsize=7)
    ax.set_title("Clinical XAI Guidelines scorecard (✓ pass, ✗ fail, – not evaluated)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def sensitivity_attributes_figure(scores: pd.DataFrame, task: str, path) -> None:
    """One panel per sensitivity attribute: its headline score per case (every model) as a box per method, methods
    in the order of their mean by the score's better direction (best on top)."""
    from ..analysis.sensitivity import HEADLINE

    plt = _pyplot()
    import seaborn as sns

    names = [m for m in HEADLINE.values() if m in set(scores["metric"])]
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    n_methods = scores["method"].nunique()
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 0.22 * n_methods * rows + 1.2 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        s = scores[scores["metric"] == name]
        higher = s["better"].iloc[0] == "higher"
        s = s.dropna(subset=["value"])  # e.g. the knee's label scores: the other class's map is −map
        if s.empty:
            ax.set_title(f"{METRIC_LABELS.get(name, name)}\n(no method has a value)", fontsize=8)
            ax.axis("off")
            continue
        order = list(s.groupby("method")["value"].mean().sort_values(ascending=not higher).index)
        sns.boxplot(data=s, x="value", y="method", order=order, ax=ax, color="0.85", fliersize=2, linewidth=0.8)
        ax.set_title(f"{METRIC_LABELS.get(name, name)}\n({'higher' if higher else 'lower'} is better)", fontsize=8)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.suptitle(f"Sensitivity attributes, {task} (per case, every model)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def randomisation_figure(settings: pd.DataFrame, task: str, path) -> pd.DataFrame:
    """Adebayo et al.'s cascade: the mean Spearman ρ (and SSIM) of each method's map to the original against the
    number of layers re-initialised from the output, one line per method. Returns the plotted means."""
    plt = _pyplot()
    cascade = settings[(settings["attribute"] == "model") & settings["metric"].isin(["spearman", "ssim"])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, metric in zip(axes, ("spearman", "ssim")):
        for method, g in cascade[cascade["metric"] == metric].groupby("method"):
            g = g.sort_values("depth")
            ax.plot(g["depth"], g["mean"], marker="o", ms=3, lw=1.2, label=method)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xlabel("layers re-initialised (from the output)")
        ax.set_ylabel(f"{'Spearman ρ' if metric == 'spearman' else 'SSIM'} to the original map")
    layers = cascade.drop_duplicates("depth").sort_values("depth")
    axes[0].set_xticks(layers["depth"].dropna().astype(int))
    axes[1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Model randomisation (cascading), {task}: lower = more sensitive to the model", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return cascade
