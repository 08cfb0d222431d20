"""SIGTERM/SIGHUP stop ``mnist1d make`` like Ctrl-C; temp files of killed runs are removed later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from mnist1d.cli import main

ENTRY = "from mnist1d.cli import main; main()"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_stop_signal_exits_cleanly(tmp_path: Path, signum: int, code: int) -> None:
    out = tmp_path / "big.npz"
    args = ["make", "--num-samples", "3000000", "--quiet", "--output", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, *args], stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # imports done, generation under way (it needs far longer than this)
    assert proc.poll() is None
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in err
    assert signal.Signals(signum).name in lines[0]
    assert os.listdir(tmp_path) == []


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f".d.npz.tmp-{2**22 + 17}-abc123.npz"  # above pid_max: never alive
    live = tmp_path / f".d.npz.tmp-{os.getpid()}-def456.npz"
    other = tmp_path / f".e.npz.tmp-{2**22 + 17}-abc123.npz"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    result = CliRunner().invoke(
        main, ["make", "--num-samples", "100", "-o", str(tmp_path / "d.npz")]
    )
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == sorted(["d.npz", live.name, other.name])
