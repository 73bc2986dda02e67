"""The state of a task's input files as a rule input, so that editing data in place reruns preparation.

(The file written here is called the task's input "manifest" -- results/manifests/<task>.tsv -- not to be confused
with the manifest dataset kind's CSV, clinxai.data.manifest.)

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
        if root.is_file():  # a file listed on its own (a manifest and the images it names)
            st = root.stat()
            lines.append(f"{i}\t{root.name}\t{st.st_size}\t{st.st_mtime_ns}")
            newest = max(newest, st.st_mtime_ns)
            continue
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


def manifest_files(path, skip=("case", "label", "split", "group")) -> list[str]:
    """The manifest CSV and every existing file its cells name (relative to its folder): the inputs of a manifest
    task, wherever they lie. csv, not pandas: every parse of the workflow runs this."""
    import csv

    path = Path(path)
    files = [str(path)]
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh):
                for column, value in row.items():
                    if column and column.strip() not in skip and value and value.strip():
                        p = Path(value.strip())
                        p = p if p.is_absolute() else path.parent / p
                        if p.is_file():
                            files.append(str(p))
    except (OSError, UnicodeDecodeError, csv.Error):  # the reader reports a bad manifest with its line
        pass
    return files


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
