import copy

import pytest
import yaml

from clinxai.config import ConfigError, validate_config

from helpers import ROOT

DEMO = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def cfg(**changes):
    c = copy.deepcopy(DEMO)
    for dotted, value in changes.items():
        node = c
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return c


def test_demo_config_is_valid():
    validate_config(DEMO)


def test_paper_config_matches_schema():
    validate_config(yaml.safe_load((ROOT / "config/paper.yaml").read_text()), check_paths=False)


def test_unknown_key_is_named():
    c = cfg()
    c["data"]["glioma"]["gird"] = [1, 2, 3]
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) data\.glioma\.gird; allowed here: .*grid"):
        validate_config(c)


def test_unknown_top_level_key():
    c = cfg()
    c["sedes"] = [1]
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) sedes"):
        validate_config(c)


def test_wrong_type_names_key_and_expected_form():
    with pytest.raises(ConfigError, match=r"data\.glioma\.grid = \[48, 48\].*expected three positive integers"):
        validate_config(cfg(data__glioma__grid=[48, 48]))
    with pytest.raises(ConfigError, match=r"data\.knee\.on_bad_case = 'skip'.*stop.*exclude"):
        validate_config(cfg(data__knee__on_bad_case="skip"))


def test_missing_data_path(tmp_path):
    c = cfg(data__glioma__source="brats", data__glioma__brats_dir=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"data\.glioma\.brats_dir = .*nope.*name_mapping\.csv not found"):
        validate_config(c)
    with pytest.raises(ConfigError, match=r"data\.glioma\.brats_dir = None"):
        validate_config(cfg(data__glioma__source="brats"))


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ConfigError, match=r"split\.fractions.*sum to 1"):
        validate_config(cfg(split__fractions={"train": 0.6, "val": 0.1, "test": 0.1}))
    with pytest.raises(ConfigError, match=r"data\.synthetic\.split_fractions.*sum to 1"):
        validate_config(cfg(data__synthetic__split_fractions={"train": 0.9, "val": 0.1, "test": 0.1}))
    validate_config(cfg(data__synthetic__split_fractions=None))  # null: the global split
