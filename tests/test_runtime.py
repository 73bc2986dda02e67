"""The torch stages' process settings (clinxai.runtime): glibc keeps freed blocks instead of faulting them back in."""
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"

# Faults of three 20 MiB allocations in a row, each filled and freed. glibc maps the first with mmap (its threshold
# starts at 128 KiB) and returns it; the second comes from a heap that has to grow and fault its pages in; the third
# reuses it. With the blocks kept (threshold 32 MiB, trims beyond 1 GiB) the second already reuses the first's pages.
SCRIPT = f"""
import resource, sys
import numpy as np
sys.path.insert(0, {str(WORKFLOW)!r})
from clinxai.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(20 * 2**20 // 8)
    del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, *faults)
"""


def _run(mode: str, **env) -> tuple[str, list[int]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], [int(x) for x in out[1:]]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's parameters are glibc's")
def test_freed_blocks_are_kept_instead_of_faulted_back_in():
    applied, kept = _run("keep")
    _, default = _run("default")
    assert applied == "True"
    assert default[1] > 100  # glibc as it comes: the second block's pages faulted in anew
    assert kept[1] < 0.1 * default[1]  # kept: reused
    assert kept[0] > 100  # the first touch of new memory faults either way: the measurement can see faults


def test_a_user_setting_of_the_allocator_wins():
    assert _run("keep", MALLOC_TRIM_THRESHOLD_="131072")[0] == "False"
    assert _run("keep", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=131072")[0] == "False"
    # other allocator settings (a container's arena limit) say nothing about these thresholds
    if platform.libc_ver()[0] == "glibc":
        assert _run("keep", MALLOC_ARENA_MAX="2")[0] == "True"


def test_every_torch_stage_sets_its_threads_and_the_allocator(monkeypatch):
    import torch

    from clinxai import runtime

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append("kept"))
    threads = torch.get_num_threads()
    try:
        runtime.use_threads(1)
        assert torch.get_num_threads() == 1 and calls == ["kept"]
    finally:
        torch.set_num_threads(threads)
    # no torch stage sets its threads another way (this is what `use_threads` replaced)
    package = WORKFLOW / "clinxai"
    direct = [p for p in package.rglob("*.py") if "set_num_threads" in p.read_text() and p.name != "runtime.py"]
    assert direct == []
