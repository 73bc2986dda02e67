"""Faults a run meets in the wild: killed mid-run (kill -9 by PID), then the same command again resumes."""
import os
import signal
import subprocess
import sys
import time

from clinxai.runlock import workflow_processes

from helpers import workdir


def test_rerun_after_kill_9_resumes_without_unlock(tmp_path):
    wd = workdir(tmp_path)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config/config.yaml",
           "tests/config/tiny.yaml", "--until", "phantom_brats"]
    run = subprocess.Popen(cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not ((wd / "results/logs/phantom_brats.log").exists()
                                           and list((wd / ".snakemake/locks").glob("*.lock"))):
        time.sleep(0.2)
    assert run.poll() is None, "the run ended before it could be killed"
    os.kill(run.pid, signal.SIGKILL)  # the runner only, as a killed login shell or a lost node leaves it
    run.wait()
    assert list((wd / ".snakemake/locks").glob("*.lock")), "a killed run leaves its locks"
    while time.time() < deadline and workflow_processes(wd.resolve()):  # its job may still be finishing
        time.sleep(0.5)
    again = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "removed the locks of a run that was killed" in again.stderr
    assert "LockException" not in again.stderr and (wd / "results/phantoms/brats/name_mapping.csv").is_file()
