"""Rule sensitivity_summary: per-case scores, per-method and per-setting summaries, the model's findings (flipped
predictions, antisymmetric logits) and the spread of ΔAUPC over the hyperparameter grid, for one task."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from clinxai.analysis.sensitivity import (case_scores, hyperparameter_spread, method_summary, model_findings,
                                          read_tables, setting_summary)
from clinxai.io import save_csv
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    raw = read_tables(sm.input.tables)
    scores = case_scores(raw)
    save_csv(sm.output.scores, scores)
    save_csv(sm.output.summary, method_summary(scores))
    save_csv(sm.output.settings, setting_summary(raw))
    findings = model_findings(raw)
    save_csv(sm.output.findings, findings)
    save_csv(sm.output.hyperparameters, hyperparameter_spread(raw))
    log.info("%d scores of %d methods; findings:\n%s", len(scores), scores["method"].nunique(),
             findings[findings["method"] == ""].to_string(index=False))
