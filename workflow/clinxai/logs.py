"""Logging for rule scripts: everything a job prints goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path


@contextlib.contextmanager
def job_log(path):
    """Send stdout, stderr and `logging` to `path` for the duration of a job; log a traceback on failure. captum's
    warnings that every run raises by design are left out (KNOWN_WARNINGS)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    filter_known_warnings()
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


# captum's warnings that every run of a method raises by design: they said nothing a user could act on and buried
# the progress lines (hundreds per heatmaps job)
KNOWN_WARNINGS = (
    r"Input Tensor \d+ did not already require gradients",
    r"Setting backward hooks on ReLU activations",
    r"Setting forward, backward hooks and attributes on non-linear",
)


def filter_known_warnings() -> None:
    import warnings

    for pattern in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
