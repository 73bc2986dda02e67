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


EXCLUDE = "or exclude the case (data.<task>.on_bad_case: exclude)"


def unreadable(case: str, path, err: Exception) -> CaseError:
    """A file that cannot be read (truncated gzip, random bytes, permission denied, pickled object array)."""
    return CaseError(case, path, f"file cannot be read ({type(err).__name__}: {str(err)[:160]})",
                     f"Re-export or restore the file, {EXCLUDE}.")


def check_voxel_type(case: str, path, array: np.ndarray) -> None:
    """Images are numbers: boolean and object arrays are refused (a mask or a pickled object saved by mistake)."""
    if array.dtype == bool or array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise CaseError(case, path, f"voxels of type {array.dtype}, expected numbers (an image, not a mask)",
                        f"Save the image itself, {EXCLUDE}.")


def check_not_blank(case: str, path, name: str, array: np.ndarray, region: np.ndarray | None = None) -> None:
    """A modality that is all zero, or constant inside the region (the brain), carries no image."""
    values = array[region] if region is not None and region.any() else array
    if values.size == 0 or np.ptp(values) == 0:
        where = "inside the brain" if region is not None else "everywhere"
        raise CaseError(case, path, f"{name} is blank (constant {float(values.flat[0]) if values.size else 0:g} "
                        f"{where})", f"Re-export the {name}, {EXCLUDE}.")


def check_finite(case: str, path, array: np.ndarray) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        n_bad = int((~np.isfinite(array)).sum())
        raise CaseError(case, path, f"{n_bad} NaN/Inf voxels", "Re-export the volume or exclude the case "
                        "(data.<task>.on_bad_case: exclude).")
