"""Independent recomputation of the reported numbers from the lower-level outputs of a run (float64, scipy /
scikit-posthocs / fractions, never the package's own functions): ΔAUPC from the curves, φ from the subset table, τ-b
from φ and the modality sums, Friedman and Nemenyi from the blocks, Mann-Whitney and Spearman from the plausibility
tables, Table 2's means; DS, DS_c and the MoRF / LeRF scores from the degradation curves, RMA against the
plausibility stage's FP (the same quantity, written by another stage), the ROAD comparison's ΔAUPC and τ-b, and Table 5's
means and tests; the sensitivity scores from the stage's per-draw rows, the model's findings and the ΔAUPC spread,
and Table 6's means and tests. Called by the end-to-end test on its results."""
from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats

TOL = dict(rtol=1e-12, atol=1e-12)


def _close(a, b, what):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    both_nan = np.isnan(a) & np.isnan(b)
    assert np.allclose(a[~both_nan], b[~both_nan], **TOL), f"{what}: {a} vs {b}"


def delta_aupc(results: Path, task: str) -> pd.DataFrame:
    curves = pd.concat([pd.read_csv(p) for p in (results / task / "truthfulness/removal").rglob("*.csv")])
    rows = []
    for (method, seed), g in curves.groupby(["method", "seed"]):
        m = g[g["curve"] == "map"].sort_values("q")
        base = g[g["curve"] == "baseline"].groupby("q")["performance"].mean().sort_index()
        area_map = float(np.sum(np.diff(m["q"]) * (m["performance"].to_numpy()[1:] + m["performance"].to_numpy()[:-1])
                                / 2))
        area_base = float(np.sum(np.diff(base.index) * (base.to_numpy()[1:] + base.to_numpy()[:-1]) / 2))
        rows.append({"method": method, "seed": seed, "delta_aupc": area_base - area_map})
    mine = pd.DataFrame(rows).set_index(["method", "seed"]).sort_index()
    theirs = pd.read_csv(results / task / "truthfulness/delta_aupc.csv").set_index(["method", "seed"]).sort_index()
    _close(mine["delta_aupc"], theirs.loc[mine.index, "delta_aupc"], f"{task} ΔAUPC")
    return theirs.reset_index()


def shapley(results: Path, task: str) -> pd.DataFrame:
    """φ by the permutation formula (average marginal contribution over all orders), in exact fractions of the
    performances (ratios of counts)."""
    subsets = pd.read_csv(results / task / "truthfulness/shapley_subsets.csv")
    phi = pd.read_csv(results / task / "truthfulness/shapley.csv")
    for seed, g in subsets.groupby("seed"):
        names = list(phi.loc[phi["seed"] == seed, "modality"])
        v = {frozenset() if m == "(none)" else frozenset(m.split("+")): Fraction(p).limit_denominator(10**7)
             for m, p in zip(g["modalities"], g["performance"])}
        orders = list(itertools.permutations(names))
        exact = {n: sum((v[frozenset(o[: o.index(n) + 1])] - v[frozenset(o[: o.index(n)])] for o in orders),
                        Fraction(0)) / len(orders) for n in names}
        stored = phi[phi["seed"] == seed].set_index("modality")["phi"]
        _close([float(exact[n]) for n in names], stored[names], f"{task} seed {seed} φ")
        for a, b in itertools.combinations(names, 2):  # equal quantities compare equal
            assert (exact[a] == exact[b]) == (stored[a] == stored[b]), f"{task} seed {seed}: φ {a} vs {b} tie"
    return phi


def mi_correlation(results: Path, task: str, phi: pd.DataFrame) -> None:
    sums = pd.concat([pd.read_csv(p, dtype={"case": str})
                      for p in (results / task / "truthfulness/modality_sums").rglob("*.csv")])
    mi = pd.read_csv(results / task / "truthfulness/mi_correlation.csv", dtype={"case": str})
    mi = mi.set_index(["seed", "method", "case"])
    for r in sums.itertuples(index=False):
        r = r._asdict()
        names = list(phi.loc[phi["seed"] == r["seed"], "modality"])
        p = phi[phi["seed"] == r["seed"]].set_index("modality").loc[names, "phi"].to_numpy()
        s = np.array([r[f"mi_{n}"] for n in names], float)
        stored = mi.loc[(r["seed"], r["method"], r["case"])]
        if r["identical"] or np.ptp(s) == 0 or np.ptp(p) == 0 or not np.isfinite(s).all():
            assert np.isnan(stored["mi_correlation"]), f"{task} {r['method']} {r['case']}: τ-b should be undefined"
            continue
        ref = stats.kendalltau(p, s, variant="b")
        _close([ref.statistic, ref.pvalue], [stored["mi_correlation"], stored["p_value"]],
               f"{task} seed {r['seed']} {r['method']} {r['case']} τ-b")


def friedman_nemenyi(results: Path, units: dict, max_missing: float) -> None:
    """units: (task, metric) -> (per-unit table, block columns)."""
    friedman = pd.read_csv(results / "statistics/friedman.csv").set_index(["task", "metric"])
    nemenyi = pd.read_csv(results / "statistics/nemenyi.csv")
    metrics = pd.read_csv(results / "statistics/metrics.csv").set_index(["task", "metric", "method"])
    for (task, metric), (table, blocks) in units.items():
        g = table.groupby("method")[metric]
        _close(g.mean(), metrics.loc[[(task, metric, m) for m in g.mean().index], "mean"], f"{task} {metric} means")
        _close(g.std(ddof=1), metrics.loc[[(task, metric, m) for m in g.mean().index], "std"], f"{task} {metric} sd")
        wide = table.set_index(blocks + ["method"])[metric].unstack("method")
        keep = [m for m in wide.columns if wide[m].isna().mean() <= max_missing]
        wide = wide[keep].dropna()
        row = friedman.loc[(task, metric)]
        if wide.shape[1] < 3 or wide.shape[0] < 2 or np.all(wide.to_numpy() == wide.to_numpy()[:, :1]):
            assert np.isnan(row["chi2"]), f"{task} {metric}: Friedman should be undefined"
            continue
        chi2, p = stats.friedmanchisquare(*wide.to_numpy(float).T)
        _close([chi2, p], [row["chi2"], row["p"]], f"{task} {metric} Friedman")
        ref = sp.posthoc_nemenyi_friedman(wide.to_numpy(float))
        ref.index = ref.columns = list(wide.columns)
        mine = nemenyi[(nemenyi["task"] == task) & (nemenyi["metric"] == metric)]
        mine = mine.pivot(index="method_a", columns="method_b", values="p").loc[ref.index, ref.columns]
        _close(ref.to_numpy(), mine.to_numpy(), f"{task} {metric} Nemenyi")


def informativeness(results: Path, task: str, score: str) -> pd.DataFrame:
    table = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in (results / task / "plausibility").glob("*.csv")
                       if p.name != "informativeness.csv"])
    info = pd.read_csv(results / task / "plausibility/informativeness.csv").set_index("method")
    for method, g in table.groupby("method"):
        s, ok = g[score].to_numpy(float), np.isfinite(g[score].to_numpy(float))
        right, wrong = s[g["correct"].to_numpy(bool) & ok], s[~g["correct"].to_numpy(bool) & ok]
        r = info.loc[method]
        if len(right) and len(wrong):
            mw = stats.mannwhitneyu(right, wrong, alternative="greater")
            _close([mw.statistic, mw.pvalue], [r["mw_u"], r["mw_p"]], f"{task} {method} Mann-Whitney")
        x, y = s[ok], g["prob_pred"].to_numpy(float)[ok]
        if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            rho = stats.spearmanr(x, y)
            _close([rho.statistic, rho.pvalue], [r["spearman_rho"], r["spearman_p"]], f"{task} {method} Spearman")
    return table


def degradation(results: Path, task: str) -> pd.DataFrame:
    """Per-case DS, mean MoRF / LeRF probability and gains from the curves; DS_c per model from those."""
    curves = pd.concat([pd.read_csv(p, dtype={"case": str})
                        for p in (results / task / "localisation/degradation").rglob("*.csv")])
    scores = pd.read_csv(results / task / "localisation/scores.csv", dtype={"case": str})
    stored = scores.set_index(["seed", "method", "case", "metric"])["value"]
    mine, labels = {}, {}
    for (seed, method, case), g in curves[curves["step"] > 0].groupby(["seed", "method", "case"]):
        q = {c: g[g["curve"] == c].groupby("step")["prob"].mean().sort_index().to_numpy(float)
             for c in ("morf", "lerf", "random")}
        failed = np.nan if g["status"].iloc[0] == "non_finite" else 0.0  # a failed map has no score
        mine.update({(seed, method, case, "ds"): np.mean(q["lerf"] - q["morf"]) + failed,
                     (seed, method, case, "morf"): q["morf"].mean() + failed,
                     (seed, method, case, "lerf"): q["lerf"].mean() + failed,
                     (seed, method, case, "morf_gain"): np.mean(q["random"] - q["morf"]) + failed,
                     (seed, method, case, "lerf_gain"): np.mean(q["lerf"] - q["random"]) + failed})
        labels[(seed, method, case)] = int(g["label"].iloc[0])
    keys = list(mine)
    _close([mine[k] for k in keys], stored.loc[keys], f"{task} degradation scores")
    ds_c = pd.read_csv(results / task / "localisation/ds_c.csv").set_index(["seed", "method"])
    alpha = float(ds_c["alpha"].iloc[0])
    for (seed, method), row in ds_c.iterrows():
        ds = {k: v for k, v in mine.items() if k[:2] == (seed, method) and k[3] == "ds" and np.isfinite(v)}
        by_class = {}
        for k, v in ds.items():
            by_class.setdefault(labels[k[:3]], []).append(v)
        means = [np.mean(v) for v in by_class.values()]
        _close(np.mean(list(ds.values())) - alpha * 0.5 * (max(means) - min(means)), row["ds_c"],
               f"{task} seed {seed} {method} DS_c")
    return scores


def rma_is_fp(results: Path, task: str, scores: pd.DataFrame) -> None:
    """RMA (localisation stage) and FP (plausibility stage) are one quantity written by two stages: every model and
    case of one table must have the other's value (a join of the two stages' rows)."""
    rma = scores[scores["metric"] == "rma"].set_index(["seed", "method", "case"])["value"]
    plaus = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in (results / task / "plausibility").glob("*.csv")
                       if p.name != "informativeness.csv"]).set_index(["seed", "method", "case"])["fp"]
    assert len(rma) == len(plaus), f"{task}: {len(rma)} RMA rows vs {len(plaus)} FP rows"
    np.testing.assert_allclose(rma.sort_index(), plaus.loc[rma.sort_index().index], rtol=0, atol=1e-10,
                               err_msg=f"{task}: RMA differs from FP")


def road(results: Path, task: str) -> None:
    curves = pd.concat([pd.read_csv(p) for p in (results / task / "localisation/road").glob("seed*.csv")])
    means = {}
    for (rep, method), g in curves.groupby(["replacement", "method"]):
        areas = []
        for _, s in g.groupby("seed"):
            m = s[s["curve"] == "map"].sort_values("q")
            b = s[s["curve"] == "baseline"].groupby("q")["performance"].mean().sort_index()
            areas.append(np.trapezoid(b.to_numpy(), b.index) - np.trapezoid(m["performance"], m["q"]))
        means.setdefault(rep, {})[method] = np.mean(areas)
    comparison = pd.read_csv(results / task / "localisation/road/comparison.csv").set_index(["replacement", "method"])
    for rep, d in means.items():
        _close(list(d.values()), comparison.loc[[(rep, m) for m in d], "mean"], f"{task} {rep} ΔAUPC")
    kendall = pd.read_csv(results / task / "localisation/road/kendall.csv").iloc[0]
    methods = sorted(means["road"])
    a = np.array([means[kendall["replacement_a"]][m] for m in methods])
    b = np.array([means["road"][m] for m in methods])
    if np.ptp(a) > 0 and np.ptp(b) > 0:
        ref = stats.kendalltau(a, b, variant="b")
        _close([ref.statistic, ref.pvalue], [kendall["tau_b"], kendall["p"]], f"{task} ROAD τ-b")


def sensitivity(results: Path, task: str) -> pd.DataFrame:
    """Per-case scores: the mean over a setting's draws, then over the settings, in plain Python; a label score is
    left out where the other class's map was the exact negative. The flip shares and the ΔAUPC spread likewise."""
    raw = pd.concat([pd.read_csv(p, dtype={"case": str, "setting": str}, keep_default_na=False, na_values=[""])
                     for p in (results / task / "sensitivity").glob("seed*/*.csv")])
    raw["case"], raw["better"] = raw["case"].fillna(""), raw["better"].fillna("")
    negated = {(r.seed, r.method, r.case) for r in raw.itertuples() if r.metric == "negated" and r.value == 1}
    draws: dict = {}
    for r in raw.itertuples():
        if r.case == "" or r.better == "":
            continue
        value = np.nan if r.attribute == "label" and (r.seed, r.method, r.case) in negated else r.value
        name = r.metric if r.metric == r.attribute else f"{r.attribute}_{r.metric}"
        draws.setdefault((r.seed, r.method, r.case, name), {}).setdefault(r.setting, []).append(value)
    mine = {k: np.nanmean([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in per.values()])
            if any(np.isfinite(v).any() for v in per.values()) else np.nan for k, per in draws.items()}
    scores = pd.read_csv(results / task / "sensitivity/scores.csv", dtype={"case": str})
    stored = scores.set_index(["seed", "method", "case", "metric"])["value"]
    assert len(stored) == len(mine), f"{task}: {len(stored)} sensitivity scores vs {len(mine)} recomputed"
    keys = list(mine)
    _close([mine[k] for k in keys], stored.loc[keys], f"{task} sensitivity scores")
    findings = pd.read_csv(results / task / "sensitivity/findings.csv", keep_default_na=False, na_values=[""])
    flips = raw[raw["metric"] == "flipped"]
    first = flips["method"].iloc[0]
    for (seed, setting), g in flips[flips["method"] == first].groupby(["seed", "setting"]):
        row = findings[(findings["finding"] == "flipped") & (findings["seed"] == seed) & (findings["setting"] == setting)]
        _close(g["value"].mean(), row["share"].item(), f"{task} seed {seed} {setting} flip share")
    spread = raw[raw["metric"] == "delta_aupc"]
    if len(spread):
        table = pd.read_csv(results / task / "sensitivity/hyperparameters.csv").set_index(["seed", "method"])
        for (seed, method), g in spread.groupby(["seed", "method"]):
            _close(g["value"].max() - g["value"].min(), table.loc[(seed, method), "delta_aupc_spread"],
                   f"{task} {method} ΔAUPC spread")
    return scores


def cards_are_traceable(results: Path, methods: dict, profiles: dict) -> int:
    """Every number in every card JSON is its row's in attributes.csv / chooser.csv, and those rows are recomputed
    here from the tables they cite: the mean (sd) over the models of per_model.csv (or the timing and
    informativeness rows), the rank by the metric's direction among the task's methods (ties share the best rank,
    scipy's rankdata 'min'), the percentile (n − rank) / (n − 1), and the chooser's score, rank and coverage from the
    profile's weights. Returns how many numbers were checked."""
    import json

    attributes = pd.read_csv(results / "cards/attributes.csv", dtype={"source_key": str})
    chooser = pd.read_csv(results / "cards/chooser.csv")
    per_model = pd.read_csv(results / "statistics/per_model.csv")
    # the attribute rows from the cited tables
    for (task, metric), g in attributes.groupby(["task", "metric"]):
        source = g["source_table"].iloc[0]
        if source.endswith("per_model.csv"):
            v = per_model[(per_model["task"] == task) & (per_model["metric"] == metric)].groupby("method")["value"]
            mean, sd = v.mean(), v.std(ddof=1)
        elif source.endswith("timing.csv"):
            t = pd.read_csv(results.parent / source).set_index("method")
            mean, sd = t["seconds_per_case_mean"], t["seconds_per_case_std"]
        else:
            mean = pd.read_csv(results.parent / source).set_index("method")["spearman_rho"]
            sd = mean * np.nan
        g = g.set_index("method")
        _close(mean.loc[g.index], g["value_mean"], f"{task} {metric} means")
        _close(sd.loc[g.index], g["value_sd"], f"{task} {metric} sds")
        finite = mean.loc[g.index].dropna()
        sign = -1 if g["better"].iloc[0] == "higher" else 1
        rank = pd.Series(stats.rankdata(sign * finite.to_numpy(float), method="min"), index=finite.index)
        n = len(finite)
        _close(rank, g.loc[rank.index, "rank"], f"{task} {metric} ranks")
        _close((n - rank) / (n - 1) if n > 1 else rank * 0 + 1, g.loc[rank.index, "percentile"], f"{task} {metric} %")
    # the chooser from the attribute rows and the profiles' weights
    first = {"determinism": "determinism_spearman", "hyperparameter_dependence": "hyperparameters_spearman",
             "computational_efficiency": "seconds_per_case", "minimality": "minimality_gini"}
    for (profile, task), g in chooser[chooser["attribute"] == "score"].groupby(["profile", "task"]):
        weights = profiles[profile]
        parts = chooser[(chooser["profile"] == profile) & (chooser["task"] == task) & (chooser["attribute"] != "score")]
        for a, metric in parts.groupby("attribute")["metric"].first().items():
            assert a not in first or metric == first[a], (profile, task, a, metric)
        scores = {}
        for method in g["method"]:
            mine = parts[parts["method"] == method]
            q = [p if weights[a] > 0 else 1 - p for a, p in zip(mine["attribute"], mine["percentile"])]
            w = [abs(weights[a]) for a in mine["attribute"]]
            p_rows = attributes[(attributes["task"] == task) & (attributes["method"] == method)].set_index("metric")
            _close(p_rows.loc[mine["metric"], "percentile"], mine["percentile"], f"{profile} {task} {method} parts")
            scores[method] = (np.dot(w, q) / sum(w) if w else np.nan, sum(w) / sum(abs(v) for v in weights.values()))
        got = g.set_index("method")
        _close([v for v, _ in scores.values()], got.loc[list(scores), "value"], f"{profile} {task} scores")
        _close([c for _, c in scores.values()], got.loc[list(scores), "coverage"], f"{profile} {task} coverage")
        finite = [m for m, (v, _) in scores.items() if np.isfinite(v)]  # a method with none of the attributes: NaN
        ranks = stats.rankdata([-round(scores[m][0], 12) for m in finite], method="min")
        _close(ranks, got.loc[finite, "rank"], f"{profile} {task} chooser ranks")
        assert got.loc[[m for m in scores if m not in finite], "rank"].isna().all()
    checked = 0
    for task, n in methods.items():
        files = sorted((results / "cards" / task).glob("*.json"))
        assert len(files) == n and (results / "cards" / task / "index.html").is_file(), task
        for f in files:
            card = json.loads(f.read_text())
            for category in ("methodology", "sensitivity", "perceptibility"):
                for attribute, entry in card[category].items():
                    for m in entry.get("metrics", []) if isinstance(entry, dict) else []:
                        row = attributes[(attributes["task"] == task) & (attributes["method"] == card["method"])
                                         & (attributes["metric"] == m["metric"])]
                        assert len(row) == 1 and row["attribute"].item() == attribute, (f, m["metric"])
                        assert m["source"] == {"table": row["source_table"].item(), "key": row["source_key"].item()}
                        for k in ("value_mean", "value_sd", "n_models", "rank", "rank_min", "rank_max", "n_methods",
                                  "percentile", "n_separated"):
                            _close(np.nan if m[k] is None else m[k], row[k].item(), f"{f.name} {m['metric']} {k}")
                            checked += 1
            for profile, v in card["chooser"].items():
                row = chooser[(chooser["profile"] == profile) & (chooser["task"] == task)
                              & (chooser["method"] == card["method"]) & (chooser["attribute"] == "score")]
                _close([np.nan if v[k] is None else v[k] for k in ("score", "rank", "coverage")],
                       [row["value"].item(), row["rank"].item(), row["coverage"].item()], f"{f.name} {profile}")
                checked += 3
    return checked


def recompute_all(results: Path, removal_tasks, plausibility_tasks, score="msfi", groundtruth=("synthetic",),
                  groundtruth_metric="msfi_global", max_missing=0.5, localisation_tasks=(),
                  sensitivity_tasks=()) -> int:
    """Every check above on a run's results; returns how many (task, metric) blocks were recomputed."""
    results = Path(results)
    units = {}
    for task in removal_tasks:
        deltas = delta_aupc(results, task)
        phi = shapley(results, task)
        mi_correlation(results, task, phi)
        units[(task, "delta_aupc")] = (deltas, ["seed"])
        mi = pd.read_csv(results / task / "truthfulness/mi_correlation.csv", dtype={"case": str})
        units[(task, "mi_correlation")] = (mi, ["seed", "case"])
    for task in plausibility_tasks:
        table = informativeness(results, task, score)
        units[(task, score)] = (table, ["seed", "case"])
        if task in groundtruth:
            units[(task, groundtruth_metric)] = (table, ["seed", "case"])
    for task in localisation_tasks:
        scores = degradation(results, task)
        if task in plausibility_tasks:
            rma_is_fp(results, task, scores)
        if task in removal_tasks:
            road(results, task)
        for metric, g in scores.groupby("metric"):
            units[(task, metric)] = (g.rename(columns={"value": metric}), ["seed", "case"])
        units[(task, "ds_c")] = (pd.read_csv(results / task / "localisation/ds_c.csv"), ["seed"])
    for task in sensitivity_tasks:
        for metric, g in sensitivity(results, task).groupby("metric"):
            units[(task, metric)] = (g.rename(columns={"value": metric}), ["seed", "case"])
    friedman_nemenyi(results, units, max_missing)
    return len(units)
