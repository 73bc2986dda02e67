"""The phantom datasets the demo builds in place of real data, by dataset format (clinxai.tasks.TaskKind.phantom)."""

from __future__ import annotations


def _brats(out_dir, p: dict, workers: int) -> str:
    from .phantom_brats import write_phantom_brats

    mapping = write_phantom_brats(out_dir, p["n_cases"], p["hgg_fraction"], p["shape"], p["seed"], workers=workers)
    return f"{len(mapping)} cases ({mapping['Grade'].value_counts().to_dict()})"


def _mrnet(out_dir, p: dict, workers: int) -> str:
    from .phantom_mrnet import write_phantom_mrnet

    labels = write_phantom_mrnet(out_dir, p["n_train"], p["n_valid"], p["tear_fraction"], p["shape"], p["seed"])
    return f"{len(labels)} knees ({int(labels.sum())} tears)"


PHANTOM_WRITERS = {"brats": _brats, "mrnet": _mrnet}


def write_phantom(dataset: str, out_dir, params: dict, workers: int = 1) -> str:
    """Write the phantom of a dataset format with `data.<task>.phantom` settings; returns a one-line summary."""
    return PHANTOM_WRITERS[dataset](out_dir, params, workers)
