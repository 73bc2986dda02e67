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


def test_duplicate_key_and_syntax_error_name_file_line_and_column(tmp_path):
    from clinxai.config import load_config_file, main

    dup = tmp_path / "dup.yaml"
    dup.write_text("seeds: [10]\nsplit:\n  seed: 0\n  seed: 1\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml:4:3: key 'seed' appears twice.*first on line 3"):
        load_config_file(dup)
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [10\nsplit: {seed: 0}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:2:\d+: not valid YAML"):
        load_config_file(bad)
    assert main(["check", str(ROOT / "config/config.yaml")]) == 0
    assert main(["check", str(ROOT / "config/config.yaml"), str(dup)]) == 1


def test_checks_that_would_only_fail_in_a_job(tmp_path):
    from clinxai.config import check_against_results, check_device

    with pytest.raises(ConfigError, match=r"training\.device = 'cuda'.*no NVIDIA GPU"):
        check_device(cfg(training__device="cuda"), ["snakemake"], {})
    check_device(cfg(training__device="cuda"), ["snakemake", "--workflow-profile", "profiles/slurm"], {})
    c = cfg()
    c["heatmaps"]["supervoxels"]["knee"]["unified_channel"] = 3
    with pytest.raises(ConfigError, match=r"heatmaps\.supervoxels\.knee\.unified_channel = 3.*use 0 to 2"):
        check_against_results(c, tmp_path)
    (tmp_path / "glioma" / "data").mkdir(parents=True)
    (tmp_path / "glioma" / "data" / "split.csv").write_text("case,label,split\nA,0,train\nB,1,test\n")
    with pytest.raises(ConfigError, match=r"heatmaps\.export\.cases: \['A'\] are not test cases of glioma.*B"):
        check_against_results(cfg(heatmaps__export__cases=["B", "A"]), tmp_path)
    check_against_results(cfg(heatmaps__export__cases=["B"]), tmp_path)


def test_kinds_declare_the_modalities_their_readers_write():
    from clinxai.data import brats, mrnet, synthetic
    from clinxai.tasks import KINDS

    assert KINDS["glioma"].modalities == brats.CHANNEL_NAMES
    assert KINDS["knee"].modalities == mrnet.VIEWS
    assert KINDS["synthetic"].modalities == synthetic.CHANNELS


def test_localisation_keys_are_checked():
    with pytest.raises(ConfigError, match=r"localisation\.road\.seeds lists \[99\].*not in seeds"):
        validate_config(cfg(localisation__road__seeds=[99]))
    with pytest.raises(ConfigError, match=r"localisation\.degradation\.perturbation = 'smear'"):
        validate_config(cfg(localisation__degradation__perturbation="smear"))
    validate_config(cfg(localisation__road__seeds=None, localisation__degradation__max_cases=None))


def test_batching_per_task_overrides_the_shared_values_and_is_checked():
    from clinxai.config import task_batching

    c = cfg(heatmaps__batching__per_task={"synthetic": {"perturbations_per_eval": 64, "batch_size": 32}})
    validate_config(c)
    shared = {k: v for k, v in DEMO["heatmaps"]["batching"].items() if k != "per_task"}
    assert task_batching(c, "synthetic") == {**shared, "perturbations_per_eval": 64, "batch_size": 32}
    assert task_batching(c, "glioma") == shared and task_batching(DEMO, "knee") == shared
    assert task_batching(DEMO, "synthetic") == {**shared, "perturbations_per_eval": 32, "batch_size": 32}  # the demo's own
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) heatmaps\.batching\.per_task\.synthetc"):
        validate_config(cfg(heatmaps__batching__per_task={"synthetc": {"batch_size": 4}}))
    with pytest.raises(ConfigError, match=r"heatmaps\.batching\.per_task\.knee\.perturbations_per_eval = 0"):
        validate_config(cfg(heatmaps__batching__per_task={"knee": {"perturbations_per_eval": 0}}))


def test_removal_batch_size_is_one_number_or_one_per_task():
    from clinxai.config import removal_batch, removal_cfg

    assert removal_batch(DEMO, "knee") == 32 and removal_cfg(DEMO, "glioma")["batch_size"] == 16
    validate_config(cfg(truthfulness__batch_size=8))
    assert removal_batch(cfg(truthfulness__batch_size=8), "knee") == 8
    assert removal_batch(cfg(truthfulness__batch_size={"knee": 24}), "glioma") == 16  # a task left out
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) truthfulness\.batch_size\.kne; allowed here: glioma"):
        validate_config(cfg(truthfulness__batch_size={"kne": 32}))
    with pytest.raises(ConfigError, match=r"truthfulness\.batch_size\.knee = 0: 0 is less than the minimum of 1"):
        validate_config(cfg(truthfulness__batch_size={"knee": 0}))
    with pytest.raises(ConfigError, match=r"truthfulness\.batch_size = 0: 0 is less than the minimum of 1"):
        validate_config(cfg(truthfulness__batch_size=0))
