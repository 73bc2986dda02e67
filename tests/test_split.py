import pandas as pd
import pytest

from clinxai import ClinxaiError
from clinxai.data.split import stratified_split

FR = {"train": 0.65, "val": 0.15, "test": 0.20}


def cases(n0, n1):
    return pd.DataFrame({"case": [f"c{i:03d}" for i in range(n0 + n1)], "label": [0] * n0 + [1] * n1})


def test_stratified_counts():
    out = stratified_split(cases(60, 40), FR, seed=0)
    counts = out.groupby(["split", "label"]).size()
    assert counts["test", 0] == 12 and counts["test", 1] == 8
    assert counts["val", 0] == 9 and counts["val", 1] == 6
    assert counts["train", 0] == 39 and counts["train", 1] == 26


def test_deterministic_and_seed_dependent():
    a = stratified_split(cases(30, 30), FR, seed=1)
    b = stratified_split(cases(30, 30).sample(frac=1, random_state=5), FR, seed=1)  # input order is irrelevant
    c = stratified_split(cases(30, 30), FR, seed=2)
    assert a.equals(b)
    assert not a["split"].equals(c["split"])


def test_small_class_still_in_every_split():
    out = stratified_split(cases(20, 3), FR, seed=0)
    assert set(out[out.label == 1]["split"]) == {"train", "val", "test"}


def test_bad_fractions():
    with pytest.raises(ClinxaiError, match="sum to 1"):
        stratified_split(cases(5, 5), {"train": 0.5, "val": 0.1, "test": 0.1}, 0)
