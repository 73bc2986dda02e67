"""Rule truthfulness_summary: ΔAUPC per (method, model), MI correlation per (method, model, case), per-method summary."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.analysis.summaries import delta_aupc_table, mi_correlation_table, summarise
from clinxai.data.cases import modality_names, read_meta
from clinxai.io import save_csv
from clinxai.logs import job_log

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task = sm.wildcards.task
    names = modality_names(read_meta(Path(sm.input.meta).parent))
    curves = pd.concat([pd.read_csv(p) for p in sm.input.curves], ignore_index=True)
    sums = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in sm.input.sums], ignore_index=True)
    deltas = delta_aupc_table(curves)
    mi = mi_correlation_table(sums, pd.read_csv(sm.input.phi), names).assign(task=task)
    summary = summarise(task, deltas, mi)
    save_csv(sm.output.delta_aupc, deltas)
    save_csv(sm.output.mi_correlation, mi)
    save_csv(sm.output.summary, summary)
    log.info("\n%s", summary.to_string(index=False))
