"""Rule tables: the paper's Tables 2 (G3), 3 (G4) and 4 (G5), Table 5 (localisation, degradation) and Table 6
(sensitivity) as long CSV, Markdown, LaTeX and HTML."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.io import atomic_path
from clinxai.logs import job_log
from clinxai.report.tables import (table2, table3, table4, table5, table6, tables_by_task, timing_by_task,
                                   write_table)

CAPTIONS = {
    "table2": "Table 2. Guideline 3, truthfulness: mean ± std per method (ΔAUPC over the models; MI correlation and "
              "MSFI over all cases of all models). Higher is better; bold: top three; ∗: significantly better than "
              "the others (Friedman + Nemenyi). NaN: the method was not evaluated on the task or the metric is "
              "undefined for it (maps identical across modalities).",
    "table3": "Table 3. Guideline 4, informative plausibility: Spearman ρ of the plausibility score with the "
              "predicted-class probability (∗ p < 0.05; bold: top three), the upper-tailed Mann-Whitney U test of "
              "right > wrong predictions (∗ p < 0.025, ∗∗ p < 0.005, ∗∗∗ p < 0.0005, NS not significant, n.c. not "
              "computable) and the medians (95 % CI) of both groups, cases pooled over the models.",
    "table4": "Table 4. Guideline 5, computational efficiency: seconds to compute one heatmap, mean ± std over the "
              "models (on the hardware of this run).",
    "table5": "Table 5. Localisation and degradation: mean ± std per method over all cases of all models (DS_c over "
              "the models). RMA, RRA, VxAP, MaxF1, AUROC and the pointing game of the positive map against the "
              "clinical mask, modalities pooled; DS = mean(LeRF − MoRF) of the explained class's probability, "
              "DS_c = DS − α·Δ (seed 002). Higher is better; bold: top three; ∗: significantly better than the "
              "others (Friedman + Nemenyi). NaN: the method was not evaluated on the task.",
    "table6": "Table 6. Sensitivity: each attribute's headline score, mean ± std per method over the cases of the "
              "models it ran on. Input: Spearman ρ of the map under scanner shifts (bias field, Rician noise, Gibbs "
              "ringing, contrast, a small rigid move; seed 001) with the original; max-sensitivity (Yeh et al. "
              "2019, as Quantus); model and data randomisation (Adebayo et al. 2018) and the other class: ρ with "
              "the original map; determinism: mean ρ of repeated maps; hyperparameters: ρ of each grid setting "
              "with the reference; minimality: Gini index (seed 004). Bold: top three by each score's better "
              "direction (lower for max-sensitivity, randomisation and the other class); ∗: significantly better "
              "than the others (Friedman + Nemenyi). NaN: not evaluated, or (the other class) the map is the exact "
              "negative, a property of the model.",
}


with job_log(snakemake.log[0]) as log:
    sm = snakemake
    tasks = sm.params.tasks
    built = {"table2": table2(pd.read_csv(sm.input.metrics), tasks, sm.params.synthetic_metric),
             "table3": table3(tables_by_task(sm.input.informativeness), tasks),
             "table4": table4(timing_by_task(sm.input.timing), tasks),
             "table5": table5(pd.read_csv(sm.input.metrics), tasks),
             "table6": table6(pd.read_csv(sm.input.metrics), tasks)}
    for name, (long, wide) in built.items():
        paths = {k: sm.output[f"{name}_{k}"] for k in ("csv", "md", "tex")}
        write_table(long, wide, paths, CAPTIONS[name], f"tab:{name}")
        with atomic_path(sm.output[f"{name}_html"]) as tmp:
            Path(tmp).write_text(wide.to_html(escape=True) + f"<p>{CAPTIONS[name]}</p>\n", encoding="utf-8")
        log.info("%s\n%s", name, wide.to_string())
