"""Rule saliency_cards: the attribute and chooser tables, a card per method and task (JSON, Markdown, HTML), a
comparison page per task and the chooser's page "Which method for my task?"."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.analysis.cards import attribute_table, choose
from clinxai.attribution.registry import METHODS, method_params
from clinxai.io import atomic_dir, atomic_path, save_csv
from clinxai.logs import job_log
from clinxai.provenance import card_provenance
from clinxai.report.cards import (card, card_html, card_json, card_markdown, chooser_html, chooser_markdown,
                                  chooser_sections, comparison_html)
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    p = sm.params
    nemenyi = pd.read_csv(sm.input.nemenyi)
    timing = {t: pd.read_csv(f) for t, f in zip(p.tasks, sm.input.timing)}
    attributes = attribute_table(pd.read_csv(sm.input.metrics), pd.read_csv(sm.input.per_model), nemenyi, timing,
                                 {t: pd.read_csv(f) for t, f in zip(p.plausibility_tasks, sm.input.informativeness)},
                                 p.alpha)
    chooser = choose(attributes, p.priorities)
    save_csv(sm.output.attributes, attributes)
    save_csv(sm.output.chooser, chooser)
    provenance = card_provenance(sm.input.config, sm.input.versions, Path(sm.scriptdir).parents[1])
    for task in p.tasks:
        methods, overrides = p.methods[task], p.params[task]
        used = timing[task].set_index("method").get("implementation", pd.Series(dtype=object))
        cards = [card(task, METHODS[name], method_params(name, kind_of(sm.config, task).layout, overrides.get(name)),
                      attributes, chooser, p.g5_seconds, provenance, used.get(name)) for name in methods]
        with atomic_dir(sm.output[f"cards_{task}"]) as tmp:
            for c in cards:
                (Path(tmp) / f"{c['method']}.json").write_text(card_json(c), encoding="utf-8")
                (Path(tmp) / f"{c['method']}.md").write_text(card_markdown(c), encoding="utf-8")
                (Path(tmp) / f"{c['method']}.html").write_text(card_html(c), encoding="utf-8")
            (Path(tmp) / "index.html").write_text(comparison_html(task, attributes, methods), encoding="utf-8")
        with atomic_path(sm.output[f"page_{task}"]) as tmp:
            Path(tmp).write_text(comparison_html(task, attributes, methods, cards), encoding="utf-8")
        log.info("%s: %d cards", task, len(methods))
    sections = chooser_sections(chooser, attributes, nemenyi, p.priorities, p.alpha)
    for key, text in (("chooser_md", chooser_markdown(sections)), ("chooser_html", chooser_html(sections))):
        with atomic_path(sm.output[key]) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    log.info("\n%s", chooser_markdown(sections))
