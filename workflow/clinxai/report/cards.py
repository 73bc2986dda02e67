"""Saliency cards (seed 004's structure) as JSON with provenance, Markdown and self-contained HTML; a comparison page
per task (methods x attributes, coloured by rank percentile) and the chooser's page. Every number comes from the
attribute and chooser tables (clinxai.analysis.cards): the card never computes one."""

from __future__ import annotations

import html
import json
import math

import numpy as np
import pandas as pd

from ..analysis.cards import ATTRIBUTES, MEASURED, headline, separable, trade_offs
from .labels import METRIC_LABELS

NUMBERS = ("value_mean", "value_sd", "n_models", "rank", "rank_min", "rank_max", "n_methods", "percentile",
           "n_separated")
EXTRA_LABELS = {"seconds_per_case": "seconds per case", "informativeness_rho": "informativeness: ρ with p(pred)",
                "determinism_voxel_cv": "Determinism: voxel CV", "data_spearman": "Data randomisation: ρ"}


def label(metric: str) -> str:
    return EXTRA_LABELS.get(metric) or METRIC_LABELS.get(metric, metric)


def _plain(v):
    """JSON-safe: NaN and None become null, numpy scalars Python numbers."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.integer, np.floating)):
        return None if np.isnan(v) else v.item()
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def agnosticism(method) -> str:
    if method.model_agnostic:
        return "black box: forward passes only"
    if method.needs_layer:
        return "a layer: the activations and gradients of one convolutional layer (the model family's)"
    return "gradients: backward passes through the whole model"


def card(task: str, method, params: dict, attributes: pd.DataFrame, chooser: pd.DataFrame, g5_seconds: float,
         provenance: dict, implementation: str | None = None) -> dict:
    """The card of one method on one task as a dict (the JSON); `implementation`: what computed the maps (the
    timing table's column: captum's class, or clinxai's equivalent of it)."""
    rows = attributes[(attributes["task"] == task) & (attributes["method"] == method.name)]
    out = {"task": task, "method": method.name,
           "captum": {"class": method.captum if not method.wraps else f"{method.captum}({method.wraps})",
                      "version": provenance.get("packages", {}).get("captum"),
                      "implementation": implementation if isinstance(implementation, str) and implementation
                      else "captum"},  # tables written before issue 22 have no such column
           "parameters": {k: _plain(v) if not isinstance(v, (list, tuple)) else list(v) for k, v in params.items()},
           "methodology": {"about": method.about}, "sensitivity": {}, "perceptibility": {}}
    for a in ATTRIBUTES:
        if not a.metrics:
            text = agnosticism(method) if a.name == "model_agnosticism" else method.meaning
            out[a.category][a.name] = {"status": "from the method registry", "text": text}
            continue
        entries = []
        for metric in a.metrics:
            r = rows[rows["metric"] == metric]
            if len(r) and np.isfinite(r["value_mean"].iloc[0]):
                r = r.iloc[0]
                entries.append({"metric": metric, "label": label(metric), "better": r["better"],
                                **{k: _plain(r[k]) for k in NUMBERS},
                                "better_than_others": _plain(r["better_than_others"]),
                                "source": {"table": r["source_table"], "key": r["source_key"]}})
        entry = {"status": "measured" if entries else "not measured", "metrics": entries}
        if a.name == "hyperparameter_dependence":
            entry["consequential"] = [{"parameter": v.param, "values_tried": list(v.values),
                                       "relative_to_used": v.relative} for v in method.grid]
        if a.name == "computational_efficiency" and entries:
            entry["g5_max_seconds"] = g5_seconds
            entry["within_g5"] = bool(entries[0]["value_mean"] <= g5_seconds)
        out[a.category][a.name] = entry
    scores = chooser[(chooser["task"] == task) & (chooser["method"] == method.name) & (chooser["attribute"] == "score")]
    out["chooser"] = {r["profile"]: {"score": _plain(r["value"]), "rank": _plain(r["rank"]),
                                     "coverage": _plain(r["coverage"])} for _, r in scores.iterrows()}
    out["provenance"] = provenance
    return out


def _fmt(v, digits=3) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _metric_text(e: dict) -> str:
    sd = f" ± {_fmt(e['value_sd'])}" if e["value_sd"] is not None else ""
    span = f", {_fmt(e['rank_min'])}–{_fmt(e['rank_max'])} across models" if e["rank_min"] is not None else ""
    star = " ∗ in the top group Nemenyi separates from all others" if e["better_than_others"] else ""
    return (f"{e['label']}: {_fmt(e['value_mean'])}{sd} ({e['better']} is better); rank {_fmt(e['rank'])} of "
            f"{e['n_methods']}{span}{star} [{e['source']['table']}: {e['source']['key']}]")


def card_markdown(c: dict) -> str:
    lines = [f"# Saliency card: {c['method']} on {c['task']}", "", c["methodology"]["about"], "",
             f"captum `{c['captum']['class']}` {c['captum']['version']} (computed by: "
             f"{c['captum'].get('implementation', 'captum')}); parameters: "
             + ", ".join(f"`{k}={v}`" for k, v in c["parameters"].items()), ""]
    for category in ("methodology", "sensitivity", "perceptibility"):
        lines += [f"## {category.capitalize()}", ""]
        for name, e in c[category].items():
            if name == "about":
                continue
            title = name.replace("_", " ")
            if "text" in e:
                lines.append(f"- **{title}** ({e['status']}): {e['text']}")
            elif e["status"] == "not measured":
                lines.append(f"- **{title}**: not measured in this run")
            else:
                lines.append(f"- **{title}**:")
                lines += [f"  - {_metric_text(m)}" for m in e["metrics"]]
                if e.get("consequential"):
                    lines.append("  - varied: " + "; ".join(f"{v['parameter']} {v['values_tried']}"
                                                           + (" × the value used" if v["relative_to_used"] else "")
                                                           for v in e["consequential"]))
                if "within_g5" in e:
                    lines.append(f"  - G5 (≤ {e['g5_max_seconds']} s per heatmap): "
                                 f"{'within' if e['within_g5'] else 'over'}")
        lines.append("")
    if c["chooser"]:
        lines += ["## Method chooser", ""] + [f"- {p}: score {_fmt(v['score'])}, rank {_fmt(v['rank'])} "
                                              f"(covers {_fmt(v['coverage'])} of the profile's weight)"
                                              for p, v in c["chooser"].items()] + [""]
    p = c["provenance"]
    lines.append(f"Provenance: commit {p['commit']} (when the cards were made), config md5 {p['config_md5']}.")
    return "\n".join(lines) + "\n"


STYLE = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:1em auto;color:#222}"
         "table{border-collapse:collapse}td,th{padding:2px 6px;border-bottom:1px solid #ddd;font-size:13px}"
         ".bar{background:#eee;width:120px;height:10px;display:inline-block}"
         ".bar span{display:block;height:10px;background:#2a7ab0}.src{color:#777;font-size:11px}")


def _relative(table: str) -> str:
    """A results/... path as seen from a card in results/cards/<task>/ (the links work in the results folder)."""
    return "../../" + table.removeprefix("results/")


def card_html(c: dict) -> str:
    """A self-contained page of one card."""
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(c['method'])} — {html.escape(c['task'])}</title>"
            f"<style>{STYLE}</style>" + card_body(c))


def card_body(c: dict) -> str:
    """One card as an HTML fragment: a compact row per attribute metric with its rank bar."""
    esc = html.escape
    rows = []
    for category in ("methodology", "sensitivity", "perceptibility"):
        rows.append(f"<tr><th colspan=4 style='text-align:left'>{category.capitalize()}</th></tr>")
        for name, e in c[category].items():
            if name == "about":
                continue
            title = esc(name.replace("_", " "))
            if "text" in e:
                rows.append(f"<tr><td>{title}</td><td colspan=3>{esc(e['text'])}</td></tr>")
                continue
            if not e["metrics"]:
                rows.append(f"<tr><td>{title}</td><td colspan=3><i>not measured</i></td></tr>")
                continue
            for k, m in enumerate(e["metrics"]):
                width = 0 if m["percentile"] is None else round(100 * m["percentile"])
                span = f" ({_fmt(m['rank_min'])}–{_fmt(m['rank_max'])})" if m["rank_min"] is not None else ""
                rows.append(
                    f"<tr><td>{title if k == 0 else ''}</td><td>{esc(m['label'])}: <b>{_fmt(m['value_mean'])}</b>"
                    + (f" ± {_fmt(m['value_sd'])}" if m["value_sd"] is not None else "")
                    + f" <span class=src>{esc(m['better'])} is better</span></td>"
                    f"<td><span class=bar title='percentile {width}'><span style='width:{width}%'></span></span> "
                    f"{_fmt(m['rank'])}/{m['n_methods']}{span}{' ∗' if m['better_than_others'] else ''}</td>"
                    f"<td class=src><a href='{esc(_relative(m['source']['table']))}'>{esc(m['source']['table'])}</a>"
                    f"<br>{esc(m['source']['key'])}</td></tr>")
    p = c["provenance"]
    return (f"<h1 id='card-{esc(c['method'])}'>{esc(c['method'])} <small>on {esc(c['task'])}</small></h1>"
            f"<p>{esc(c['methodology']['about'])}</p><p class=src>captum {esc(c['captum']['class'])} "
            f"{esc(str(c['captum']['version']))} (computed by: {esc(c['captum'].get('implementation', 'captum'))}); "
            + esc(", ".join(f"{k}={v}" for k, v in c["parameters"].items()))
            + "</p><table>" + "".join(rows) + "</table><p class=src>Bar: rank percentile among the task's methods "
            "(full = best); ∗ in the top group that Friedman + Nemenyi separate from all others. "
            f"Commit {esc(p['commit'])} (when the cards were made), config md5 {esc(p['config_md5'])}.</p>")


def comparison_html(task: str, attributes: pd.DataFrame, methods: list[str], cards: list[dict] | None = None) -> str:
    """Methods x measured attributes (headline metric), cells coloured by rank percentile, each method linking to
    its card: the card files next to the page, or with `cards` every card on the page itself (self-contained: the
    report's page of the task)."""
    esc = html.escape
    heads = [(a, headline(attributes, task, a)) for a in MEASURED]
    heads = [(a, m) for a, m in heads if m]
    t = attributes[attributes["task"] == task].set_index(["method", "metric"])
    body = []
    for method in methods:
        cells = []
        for _, metric in heads:
            if (method, metric) in t.index and np.isfinite(t.loc[(method, metric), "value_mean"]):
                r = t.loc[(method, metric)]
                p = float(r["percentile"])
                colour = f"hsl({round(120 * p)},60%,80%)"
                cells.append(f"<td style='background:{colour}' title='rank {_fmt(_plain(r['rank']))} of "
                             f"{r['n_methods']}'>{_fmt(_plain(r['value_mean']))}</td>")
            else:
                cells.append("<td>–</td>")
        href = f"#card-{method}" if cards else f"{method}.html"
        body.append(f"<tr><th><a href='{esc(href)}'>{esc(method)}</a></th>{''.join(cells)}</tr>")
    header = "".join(f"<th>{esc(a.replace('_', ' '))}<br><span class=src>{esc(label(m))}</span></th>"
                     for a, m in heads)
    return (f"<!doctype html><meta charset=utf-8><title>Saliency cards — {esc(task)}</title><style>{STYLE}</style>"
            f"<h1>Saliency cards: {esc(task)}</h1><p>Each attribute's headline metric per method; colour = rank "
            "percentile among the methods (green best, red worst). A method's name opens its card.</p>"
            f"<table><tr><th>method</th>{header}</tr>{''.join(body)}</table>"
            + "".join(f"<hr>{card_body(c)}" for c in cards or []))


def chooser_sections(chooser: pd.DataFrame, attributes: pd.DataFrame, nemenyi: pd.DataFrame, profiles: dict,
                     alpha: float, top: int = 3) -> list[dict]:
    """Per priority profile and task: the top methods with score, rank, coverage and trade-offs, and what the Nemenyi
    test says of the first against the next ones on the prioritised attributes' metrics."""
    out = []
    for profile, weights in profiles.items():
        for task in sorted(attributes["task"].unique()):
            s = chooser[(chooser["profile"] == profile) & (chooser["task"] == task) & (chooser["attribute"] == "score")]
            s = s.dropna(subset=["value"]).sort_values(["rank", "method"])
            sec = {"profile": profile, "weights": weights, "task": task, "ranked": [], "verdicts": []}
            out.append(sec)
            if s.empty:
                sec["verdicts"] = ["No prioritised attribute was measured for this task."]
                continue
            sec["ranked"] = [{"rank": r["rank"], "method": r["method"], "score": r["value"], "coverage": r["coverage"],
                              "trade_offs": trade_offs(attributes, task, r["method"])}
                             for _, r in s.head(top).iterrows()]
            metrics = [m for m in (headline(attributes, task, a) for a, w in weights.items() if w) if m]
            best = sec["ranked"][0]["method"]
            for other in [r["method"] for r in sec["ranked"][1:]]:
                tested, won = separable(nemenyi, attributes, task, metrics, best, other, alpha)
                if not tested:
                    text = "no significance test of the prioritised attributes is available (timing has none)."
                elif not won:
                    text = f"the data cannot separate them on {', '.join(tested)} (Nemenyi, α = {alpha})."
                else:
                    text = "Nemenyi (α = {}) separates them: {}.".format(
                        alpha, "; ".join(f"{w} better on {m}" for m, w in won))
                sec["verdicts"].append(f"{best} vs {other}: {text}")
    return out


INTRO = ("Score = weighted mean of each prioritised attribute's rank percentile (1 = best by the attribute's declared "
         "direction; a negative weight prefers the other end), over the attributes a method has values for; coverage = "
         "the share of the profile's weight those carry. Set your own weights in `cards.priorities`.")


def chooser_markdown(sections: list[dict]) -> str:
    lines, profile = ["# Which method for my task?", "", INTRO, ""], None
    for sec in sections:
        if sec["profile"] != profile:
            profile = sec["profile"]
            lines += [f"## Profile `{profile}`: " + ", ".join(f"{a} {w:g}" for a, w in sec["weights"].items()), ""]
        lines += [f"### {sec['task']}", ""]
        if sec["ranked"]:
            lines += ["| rank | method | score | coverage | high | low |", "|---|---|---|---|---|---|"]
            lines += [f"| {r['rank']:g} | {r['method']} | {r['score']:.3f} | {r['coverage']:.2f} | "
                      f"{', '.join(r['trade_offs'][0]) or '–'} | {', '.join(r['trade_offs'][1]) or '–'} |"
                      for r in sec["ranked"]]
        lines += [""] + sec["verdicts"] + [""]
    return "\n".join(lines) + "\n"


def chooser_html(sections: list[dict]) -> str:
    esc = html.escape
    parts, profile = [f"<h1>Which method for my task?</h1><p>{esc(INTRO)}</p>"], None
    for sec in sections:
        if sec["profile"] != profile:
            profile = sec["profile"]
            parts.append(f"<h2>Profile {esc(profile)}: "
                         + esc(", ".join(f"{a} {w:g}" for a, w in sec["weights"].items())) + "</h2>")
        rows = "".join(f"<tr><td>{r['rank']:g}</td><td>{esc(r['method'])}</td><td>{r['score']:.3f}</td>"
                       f"<td>{r['coverage']:.2f}</td><td>{esc(', '.join(r['trade_offs'][0]) or '–')}</td>"
                       f"<td>{esc(', '.join(r['trade_offs'][1]) or '–')}</td></tr>" for r in sec["ranked"])
        table = (f"<table><tr><th>rank</th><th>method</th><th>score</th><th>coverage</th><th>high</th><th>low</th>"
                 f"</tr>{rows}</table>") if rows else ""
        parts.append(f"<h3>{esc(sec['task'])}</h3>{table}"
                     + "".join(f"<p>{esc(v)}</p>" for v in sec["verdicts"]))
    return f"<!doctype html><meta charset=utf-8><title>Which method?</title><style>{STYLE}</style>" + "".join(parts)


def card_json(c: dict) -> str:
    return json.dumps(c, indent=1, ensure_ascii=False)
