"""Rule case_viewer: the static HTML case viewer of one task (every heatmap of the chosen test cases over its MRI)."""
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")
import pandas as pd

from clinxai.data.cases import read_meta
from clinxai.logs import job_log
from clinxai.report.viewer import build_viewer
from clinxai.tasks import kind_of

with job_log(snakemake.log[0]) as log:
    sm = snakemake
    task, seeds, methods = sm.wildcards.task, sm.params.seeds, sm.params.methods
    data_dir = Path(sm.input.arrays).parent
    maps = dict(zip([(s, m) for s in seeds for m in methods], sm.input.maps))
    tables = [pd.read_csv(p, dtype={"case": str}) for p in [*sm.input.plausibility, sm.input.scores]]
    manifest = build_viewer(task, kind_of(sm.config, task), sm.params.title, seeds, methods, maps,
                            dict(zip(seeds, sm.input.predictions)), data_dir, read_meta(data_dir), sm.params.cases,
                            sm.params.postprocess, sm.params.dilation, sm.params.has_mask, tables, sm.params.phantom,
                            sm.output.root, sm.params.max_side)
    size = sum(f.stat().st_size for f in Path(sm.output.root).rglob("*") if f.is_file())
    log.info("%d cases, %d models, %d methods: %.1f MB", len(manifest["cases"]), len(seeds), len(methods), size / 1e6)
