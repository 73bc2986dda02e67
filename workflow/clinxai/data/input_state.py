"""The state of a task's input files as a rule input, so that editing data in place reruns preparation.

Snakemake compares a directory input by the folder's own modification time, which does not change when a file inside
it is rewritten (a re-exported NIfTI, a corrected grade in name_mapping.csv, a fixed MRNet csv). Every parse of the
workflow (each SLURM job's too) lists the files under the task's data folders with their size and modification time;
the list is written to results/manifests/<task>.tsv only when it changed, so its own modification time says when the
inputs last changed, and prepare_data (which lists it as an input) reruns then. Stat calls only, no hashing: a few
milliseconds for BraTS' ~1800 files.
"""

from __future__ import annotations

import os
from pathlib import Path


def input_state(folders) -> tuple[str, int]:
    """One line per file under `folders` (folder index, relative path, size, modification time in ns), and the
    newest modification time among them."""
    lines, newest = [], 0
    for i, folder in enumerate(folders):
        root = Path(folder)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                try:
                    st = p.stat()
                except OSError:  # unreadable entries are reported by the reader, with the case they belong to
                    continue
                lines.append(f"{i}\t{p.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}")
                newest = max(newest, st.st_mtime_ns)
    return "".join(line + "\n" for line in lines), newest


def update_manifest(path, folders) -> str:
    """Write the input state to `path` if it differs from what is there; returns `path`.

    Its modification time says when the inputs changed: the newest input file's when the manifest is first written (a
    run prepared before manifests existed is not redone), now when a listed file changed since (a file restored with
    an old timestamp still counts as a change)."""
    path = Path(path)
    listing, newest = input_state(folders)
    state = "".join(f"# {f}\n" for f in folders) + listing
    first = not path.is_file()
    if first or path.read_text() != state:
        from ..io import atomic_path  # only on a change: pandas, which io imports, would slow every parse

        with atomic_path(path) as tmp:
            tmp.write_text(state)
        if first and newest:
            os.utime(path, ns=(newest, newest))
    return str(path)
