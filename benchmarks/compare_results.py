"""Compare two results/ trees file by file, e.g. a run before and after a refactor.

    python benchmarks/compare_results.py RUN_A/results RUN_B/results

Every file is compared byte for byte (sha256). A file whose bytes differ is then compared with what legitimately
varies between two identical runs taken out: CSV columns and JSON keys holding wall times ("seconds" in the name),
Table 4 and the scorecard's G5 rows (built from those times), checkpoints compared tensor by tensor (the archive
records a temporary file name), and PNG figures (reported, not compared: rendering). Logs and Snakemake benchmark
timings are left out. Exit status 1 when anything else differs.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd

SKIP = ("logs/", "benchmarks/")
TIMING_FILES = ("tables/table4.",)  # Table 4 is the timing table


def digests(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(SKIP):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _drop_times(obj):
    if isinstance(obj, dict):
        return {k: _drop_times(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [_drop_times(v) for v in obj]
    return obj


def same_apart_from_times(a: Path, b: Path, rel: str) -> bool | None:
    """True/False after taking out what varies between identical runs; None where the file is not compared."""
    if rel.startswith(TIMING_FILES) or rel.endswith(".png"):
        return None
    if rel.endswith(".csv"):
        ta, tb = pd.read_csv(a), pd.read_csv(b)
        if rel.endswith("scorecard.csv"):  # G5 passes or fails by the measured seconds
            ta, tb = ta[ta["guideline"] != "G5"], tb[tb["guideline"] != "G5"]
        keep = [c for c in ta.columns if "seconds" not in c]
        return ta[keep].equals(tb[[c for c in tb.columns if "seconds" not in c]])
    if rel.endswith(".json"):
        return _drop_times(json.loads(a.read_text())) == _drop_times(json.loads(b.read_text()))
    if rel.endswith(".pt"):
        import torch

        sa, sb = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
        sa, sb = sa.get("state_dict", sa), sb.get("state_dict", sb)
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    return False


def main(a: str, b: str) -> int:
    ra, rb = Path(a), Path(b)
    da, db = digests(ra), digests(rb)
    both = sorted(set(da) & set(db))
    only_a, only_b = sorted(set(da) - set(db)), sorted(set(db) - set(da))
    differ = [k for k in both if da[k] != db[k]]
    verdicts = {k: same_apart_from_times(ra / k, rb / k, k) for k in differ}
    real = [k for k, v in verdicts.items() if v is False]
    print(f"{len(both)} files in both: {len(both) - len(differ)} byte-identical; of the {len(differ)} others, "
          f"{sum(v is True for v in verdicts.values())} equal apart from wall times / archive names, "
          f"{sum(v is None for v in verdicts.values())} not compared (figures, Table 4), {len(real)} differ; "
          f"{len(only_a)} only in A, {len(only_b)} only in B")
    for title, items in (("only in A", only_a), ("only in B", only_b), ("DIFFERS", real),
                         ("not compared", [k for k, v in verdicts.items() if v is None]),
                         ("equal apart from times", [k for k, v in verdicts.items() if v is True])):
        for k in items:
            print(f"{title}: {k}")
    return 1 if real or only_a or only_b else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
