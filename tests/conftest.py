import shutil
from pathlib import Path

import pytest

from clinxai.data.phantom_brats import write_phantom_brats
from clinxai.data.phantom_mrnet import write_phantom_mrnet

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def brats_master(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats") / "BraTS2020"
    write_phantom_brats(root, n_cases=6, hgg_fraction=0.5, shape=(32, 32, 20), seed=0)
    return root


@pytest.fixture
def brats_dir(brats_master, tmp_path):
    """A private, modifiable copy of a small phantom BraTS folder."""
    return Path(shutil.copytree(brats_master, tmp_path / "BraTS2020"))


@pytest.fixture(scope="session")
def mrnet_master(tmp_path_factory):
    root = tmp_path_factory.mktemp("mrnet") / "MRNet"
    write_phantom_mrnet(root, n_train=8, n_valid=2, tear_fraction=0.5, shape=(6, 24, 24), seed=0)
    return root


@pytest.fixture
def mrnet_dir(mrnet_master, tmp_path):
    return Path(shutil.copytree(mrnet_master, tmp_path / "MRNet"))
