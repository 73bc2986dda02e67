"""Shared input checks and the bad-case policy (stop, or exclude and list the case in a report)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import ClinxaiError


class CaseError(ClinxaiError):
    """A problem with one case; `case` and `path` say where, the message says what to do."""

    def __init__(self, case: str, path, problem: str, fix: str):
        self.case, self.path, self.problem, self.fix = case, str(path), problem, fix
        super().__init__(f"case {case}: {problem} [{path}]. {fix}")


@dataclass
class BadCasePolicy:
    """`stop` raises the first CaseError; `exclude` records it and lets the caller skip the case."""

    mode: str = "stop"
    excluded: list[dict] = field(default_factory=list)

    def __post_init__(self):
        if self.mode not in ("stop", "exclude"):
            raise ClinxaiError(f"on_bad_case must be 'stop' or 'exclude', got {self.mode!r}")

    def handle(self, err: CaseError) -> None:
        if self.mode == "stop":
            raise err
        self.excluded.append({"case": err.case, "file": err.path, "problem": err.problem, "fix": err.fix})


def check_finite(case: str, path, array: np.ndarray) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        n_bad = int((~np.isfinite(array)).sum())
        raise CaseError(case, path, f"{n_bad} NaN/Inf voxels", "Re-export the volume or exclude the case "
                        "(data.<task>.on_bad_case: exclude).")
