"""Resuming after a killed run (kill -9, a node lost, a closed laptop) without `snakemake --unlock`.

Snakemake locks the working directory while it runs (.snakemake/locks) and leaves the locks behind when it is killed;
the next run then stops with a LockException until the user runs --unlock. Snakemake's locks record no process, so
the workflow records one: the main process of every run writes its host and PID to .snakemake/clinxai-holder.json
when it finds no locks (the run that is about to take them). A later run that finds locks removes them only when
all of these hold: the recorded holder ran on this host, that process is gone, and no other process of a workflow
is running in this directory on this host (a killed run's job processes may still be finishing). Anything else (a
live run, another host on a shared file system, no record) leaves the locks to Snakemake's own error.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def workflow_processes(workdir: Path) -> list[int]:
    """PIDs of other processes of a Snakemake workflow (the runner or its jobs) working in `workdir` on this host."""
    mine, found = _ancestors(), []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid in mine:
            continue
        try:
            if Path(os.readlink(entry / "cwd")) != workdir:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"snakemake") or b".snakemake/scripts" in a for a in argv):
            found.append(pid)
    return found


def clear_stale_locks(workdir, is_main: bool) -> str | None:
    """Remove the locks a killed run left in `workdir` (see the module doc); returns a line saying what was done."""
    if not is_main:
        return None
    workdir = Path(workdir).resolve()
    state = workdir / ".snakemake"
    locks = sorted((state / "locks").glob("*.lock")) if (state / "locks").is_dir() else []
    holder_file = state / "clinxai-holder.json"
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    note = None
    if locks:
        try:
            holder = json.loads(holder_file.read_text())
        except (OSError, ValueError):
            return None
        if holder.get("host") != me["host"] or _alive(int(holder.get("pid", 0))):
            return None
        others = workflow_processes(workdir)
        if others:
            return (f"clinxai: the run that locked {workdir} (PID {holder['pid']}) is gone, but job processes "
                    f"{others[:5]} still work there; wait for them to end (or kill them), then rerun.")
        for lock in locks:
            lock.unlink(missing_ok=True)
        note = (f"clinxai: removed the locks of a run that was killed (PID {holder['pid']} on {holder['host']}); "
                "resuming where it stopped.")
    state.mkdir(parents=True, exist_ok=True)
    tmp = holder_file.with_suffix(f".{me['pid']}.part")
    tmp.write_text(json.dumps(me))
    os.replace(tmp, holder_file)
    return note
