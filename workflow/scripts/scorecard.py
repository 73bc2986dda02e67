"""Rule scorecard: G3/G4/G5 pass or fail per method and task by the rules in config (`scorecard`)."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.analysis.scorecard import scorecard
from clinxai.io import atomic_path, save_csv
from clinxai.logs import job_log
from clinxai.report.figures import scorecard_figure
from clinxai.report.tables import markdown, scorecard_wide, tables_by_task, timing_by_task

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    rules = {**sm.params.rules, "G3": {**sm.params.rules["G3"], "synthetic_metric": sm.params.synthetic_metric}}
    card = scorecard(pd.read_csv(sm.input.metrics), tables_by_task(sm.input.informativeness),
                     timing_by_task(sm.input.timing), rules, sm.params.tasks)
    wide = scorecard_wide(card, sm.params.tasks)
    save_csv(sm.output.csv, card)
    caption = ("Guidelines scorecard: ✓ pass, ✗ fail, – not evaluated. Rules (config `scorecard`): "
               + "; ".join(f"{g}: {r}" for g, r in card.groupby("guideline")["rule"].first().items()))
    with atomic_path(sm.output.md) as tmp:
        Path(tmp).write_text(markdown(wide, caption), encoding="utf-8")
    scorecard_figure(wide, sm.output.figure)
    log.info("\n%s", wide.to_string())
