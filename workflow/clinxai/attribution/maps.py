"""Heatmap files, without torch: the light rules (plausibility, tables) read maps and should not pay torch's
import."""

from __future__ import annotations

import numpy as np

from ..io import atomic_path

def save_maps(path, maps: dict[str, list[np.ndarray]]) -> None:
    flat = {f"{case}__{i}": p.astype(np.float32) for case, parts in maps.items() for i, p in enumerate(parts)}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **flat)


def load_maps(path, cases=None) -> dict[str, list[np.ndarray]]:
    """{case: [per-modality raw map]} from a heatmaps .npz; only `cases` when given (the others are not read)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    wanted = None if cases is None else {str(c) for c in cases}
    with np.load(path) as npz:
        for key in npz.files:
            case, i = key.rsplit("__", 1)
            if wanted is None or case in wanted:
                out.setdefault(case, {})[int(i)] = npz[key]
    return {c: [parts[i] for i in sorted(parts)] for c, parts in out.items()}
