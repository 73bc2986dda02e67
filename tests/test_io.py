"""Outputs: atomic, readable by the group under the user's umask, stale temporary files cleaned, checkpoints
byte-identical for the same weights."""
import os
import stat

import torch

from clinxai.io import atomic_dir, atomic_path
from clinxai.models import GeneNet3D, save_checkpoint


def test_outputs_follow_the_umask_and_stale_parts_are_removed(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import clinxai.io as io_module

        importlib.reload(io_module)  # the module reads the umask at import
        stale_file = tmp_path / ".table.csv.abc123.part.csv"
        stale_dir = tmp_path / ".arrays.xyz.part"
        stale_file.write_text("half")
        stale_dir.mkdir()
        import pandas as pd

        io_module.save_csv(tmp_path / "table.csv", pd.DataFrame({"a": [1]}))
        with io_module.atomic_dir(tmp_path / "arrays") as d:
            (d / "x.npz").write_bytes(b"x")
        assert stat.S_IMODE((tmp_path / "table.csv").stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "arrays").stat().st_mode) == 0o755
        assert not stale_file.exists() and not stale_dir.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays", "table.csv"]
    finally:
        os.umask(old)
        importlib.reload(io_module)


def test_same_weights_give_byte_identical_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = GeneNet3D(4, (8, 8, 8), widths=(4,), fc=8)
    arch = {"in_channels": 4, "grid": [8, 8, 8], "widths": [4], "fc": 8}
    for name in ("a.pt", "b.pt"):
        save_checkpoint(tmp_path / name, model, "glioma", "genenet3d", arch)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_failed_writes_leave_nothing(tmp_path):
    try:
        with atomic_path(tmp_path / "out.csv") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    try:
        with atomic_dir(tmp_path / "dir") as d:
            (d / "f").write_text("partial")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []
