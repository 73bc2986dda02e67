"""Logging for rule scripts: everything a job prints goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path


@contextlib.contextmanager
def job_log(path):
    """Send stdout, stderr and `logging` to `path` for the duration of a job; log a traceback on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield logging.getLogger("clinxai")
        except Exception:
            logging.getLogger("clinxai").exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
