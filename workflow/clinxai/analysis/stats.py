"""Statistics of the evaluation (SPEC §5-6): informativeness of plausibility (Spearman, upper-tailed Mann-Whitney,
medians with order-statistic CIs), Friedman + Nemenyi across methods, Kendall τ-b between method rankings.

Every test returns NaN with a `note` saying why when it cannot be computed (too few values, no wrong predictions,
fewer than three methods), never an exception: a table with a missing test is still a table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

MARKER_LEVELS = ((0.0005, "***"), (0.005, "**"), (0.025, "*"))  # Table 3's Mann-Whitney markers


def significance_marker(p: float, levels=MARKER_LEVELS) -> str:
    """`***` p < 0.0005, `**` p < 0.005, `*` p < 0.025, `NS` otherwise; `n.c.` (not computable) when p
    is NaN. Not "n/a" or "NA": pandas reads those back from a CSV as missing values."""
    if p is None or not np.isfinite(p):
        return "n.c."
    for level, mark in levels:
        if p < level:
            return mark
    return "NS"


def median_ci(x, level: float = 0.95) -> tuple[float, float, float]:
    """Median and the distribution-free CI of the median from order statistics: the widest-inside interval
    [x_(l), x_(n-l+1)] with P(l <= B <= n-l) >= level for B ~ Binomial(n, 1/2). NaN bounds when n is too small to
    reach the level (n < 6 for 95 %)."""
    x = np.sort(np.asarray(x, float)[np.isfinite(np.asarray(x, float))])
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(x))
    best = None
    for lo in range(1, n // 2 + 1):  # 1-based rank of the lower bound; coverage falls as lo grows
        coverage = stats.binom.cdf(n - lo, n, 0.5) - stats.binom.cdf(lo - 1, n, 0.5)
        if coverage < level:
            break
        best = lo
    if best is None:
        return med, math.nan, math.nan
    return med, float(x[best - 1]), float(x[n - best])


def spearman(x, y) -> dict:
    """Spearman's ρ of two paired samples (NaN pairs dropped)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3:
        return {"rho": math.nan, "p": math.nan, "n": n, "note": f"{n} paired values (need 3)"}
    if np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return {"rho": math.nan, "p": math.nan, "n": n, "note": "constant values"}
    r = stats.spearmanr(x[ok], y[ok])
    return {"rho": float(r.statistic), "p": float(r.pvalue), "n": n, "note": ""}


def mann_whitney_greater(right, wrong) -> dict:
    """Upper-tailed Mann-Whitney U: are scores of right predictions stochastically greater than of wrong ones?
    `effect` = U / (n_right n_wrong), the probability that a right case scores higher (ties count half)."""
    right = np.asarray(right, float)
    wrong = np.asarray(wrong, float)
    right, wrong = right[np.isfinite(right)], wrong[np.isfinite(wrong)]
    if len(right) == 0 or len(wrong) == 0:
        which = "wrong" if len(wrong) == 0 else "right"
        return {"u": math.nan, "p": math.nan, "effect": math.nan, "n_right": len(right), "n_wrong": len(wrong),
                "note": f"not computable: no {which} predictions with a defined score"}
    r = stats.mannwhitneyu(right, wrong, alternative="greater")
    return {"u": float(r.statistic), "p": float(r.pvalue), "effect": float(r.statistic) / (len(right) * len(wrong)),
            "n_right": len(right), "n_wrong": len(wrong), "note": ""}


def informativeness(table: pd.DataFrame, score: str = "msfi", level: float = 0.95) -> pd.DataFrame:
    """Per method (cases pooled over all models): Spearman of the score with the predicted-class probability,
    upper-tailed Mann-Whitney of right vs wrong, also within each predicted class (the class confounder), and
    medians with CIs of both groups."""
    rows = []
    for method, g in table.groupby("method"):
        s = g[score].to_numpy(float)
        right, wrong = g["correct"].astype(bool).to_numpy(), ~g["correct"].astype(bool).to_numpy()
        rho = spearman(s, g["prob_pred"])
        mw = mann_whitney_greater(s[right], s[wrong])
        row = {"method": method, "score": score, "n": int(np.isfinite(s).sum()),
               "spearman_rho": rho["rho"], "spearman_p": rho["p"], "spearman_note": rho["note"],
               "mw_u": mw["u"], "mw_p": mw["p"], "mw_effect": mw["effect"], "mw_marker": significance_marker(mw["p"]),
               "n_right": mw["n_right"], "n_wrong": mw["n_wrong"], "mw_note": mw["note"]}
        for name, mask in (("right", right), ("wrong", wrong)):
            row[f"median_{name}"], row[f"ci_low_{name}"], row[f"ci_high_{name}"] = median_ci(s[mask], level)
        for cls in sorted(g["pred"].unique()):
            in_cls = g["pred"].to_numpy() == cls
            c = mann_whitney_greater(s[right & in_cls], s[wrong & in_cls])
            row[f"mw_p_pred{cls}"], row[f"mw_marker_pred{cls}"] = c["p"], significance_marker(c["p"])
            row[f"mw_note_pred{cls}"] = c["note"]
        rows.append(row)
    return pd.DataFrame(rows)


def method_matrix(long: pd.DataFrame, blocks: list[str], value: str, max_missing: float = 0.5):
    """Blocks × methods matrix for the Friedman test. Methods without a defined value in more than `max_missing`
    of the blocks are left out (e.g. MI correlation of maps identical across modalities), then blocks with any
    missing value. Returns (matrix, methods left out)."""
    wide = long.pivot_table(index=blocks, columns="method", values=value, aggfunc="first", dropna=False)
    missing = wide.isna().mean()
    dropped = sorted(missing.index[missing > max_missing])
    wide = wide.drop(columns=dropped).dropna(axis=0, how="any")
    return wide, dropped


def friedman_nemenyi(wide: pd.DataFrame, alpha: float = 0.01,
                     higher_is_better: bool = True) -> tuple[dict, pd.DataFrame, pd.Series]:
    """Friedman χ²(k−1) over methods (columns) with blocks (rows), Nemenyi post-hoc p-values and mean ranks
    (1 = best: the highest value, or the lowest where lower is better). `better` lists the methods significantly
    better than the others: the smallest top group (by mean rank) every member of which beats every method outside
    it at p < alpha."""
    import scikit_posthocs as sp

    k, n = wide.shape[1], wide.shape[0]
    ranks = wide.rank(axis=1, ascending=not higher_is_better).mean().sort_values()
    result = {"k": k, "n_blocks": n, "chi2": math.nan, "df": k - 1, "p": math.nan, "better": [], "note": ""}
    if k < 3 or n < 2:
        result["note"] = f"not computable: {k} methods and {n} complete blocks (need 3 and 2)"
        return result, pd.DataFrame(), ranks
    values = wide.to_numpy(float)
    if np.all(values == values[:, :1]):
        result["note"] = "not computable: every method has the same value in every block"
        return result, pd.DataFrame(), ranks
    chi2, p = stats.friedmanchisquare(*values.T)
    nemenyi = sp.posthoc_nemenyi_friedman(values)
    nemenyi.index = nemenyi.columns = list(wide.columns)
    result.update(chi2=float(chi2), p=float(p))
    order = list(ranks.index)
    for size in range(1, k):
        top, rest = order[:size], order[size:]
        if all(nemenyi.loc[a, b] < alpha and ranks[a] < ranks[b] for a in top for b in rest):
            result["better"] = top
            break
    return result, nemenyi, ranks


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of mean ranks: q_α √(k(k+1)/(6N)), q_α the studentized range quantile / √2."""
    if k < 2 or n < 1:
        return math.nan
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def kendall_rankings(a: pd.Series, b: pd.Series) -> dict:
    """Kendall τ-b between two method rankings given as per-method means (methods in both, finite only)."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    n = len(both)
    if n < 3:
        return {"tau_b": math.nan, "p": math.nan, "n_methods": n, "note": f"{n} methods in common (need 3)"}
    if both["a"].nunique() == 1 or both["b"].nunique() == 1:
        return {"tau_b": math.nan, "p": math.nan, "n_methods": n, "note": "one ranking is constant"}
    r = stats.kendalltau(both["a"], both["b"], variant="b")
    return {"tau_b": float(r.statistic), "p": float(r.pvalue), "n_methods": n, "note": ""}
