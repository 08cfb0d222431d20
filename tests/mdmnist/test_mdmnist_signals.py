"""Real signals sent to a running mdmnist: no orphans, no partial output, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mdmnist
import pytest
from mdmnist.lifecycle import remove_stale_temps

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

ENTRY = "from mdmnist.cli import main; main()"
# Big enough to be still running when the signal comes (it is stopped long before the end).
LONG_RUN = ["--num-digit", "3", "--num-image-per-class", "300", "--format", "png"]


def _start(out: Path) -> subprocess.Popen:
    """Start the mdmnist CLI with two workers writing a PNG tree into OUT."""
    args = [*LONG_RUN, "--workers", "2", "--output", str(out), "--quiet"]
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _state(pid: int) -> str | None:
    """The process state letter of PID ('Z' for a zombie), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _children(pid: int) -> list[int]:
    """Pids of the processes whose parent is PID."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _wait_until_writing(proc: subprocess.Popen, parent: Path, timeout: float = 60) -> list[int]:
    """Wait until the workers have written PNG files into the temp folder; return their pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        workers = _children(proc.pid)
        if len(workers) >= 2 and next(parent.glob(".out.tmp-*/train/*/*.png"), None):
            return workers
        time.sleep(0.05)
    raise AssertionError("mdmnist did not start writing")


def _all_gone(pids: list[int], timeout: float = 10) -> bool:
    """True once none of PIDS runs any more (zombies count as gone); kills survivors if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_state(pid) in (None, "Z") for pid in pids):
            return True
        time.sleep(0.05)
    for pid in pids:  # never leave orphans burning the CPU behind a failing test
        if _state(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)
    return False


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_stop_signal_is_handled_like_ctrl_c(tmp_path, signum, code):
    """The issue's reproduction: workers stop, no temp folder, created parents removed, exit 128+n."""
    out = tmp_path / "a" / "b" / "out"
    proc = _start(out)
    workers = _wait_until_writing(proc, out.parent)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), err
    assert signal.Signals(signum).name in lines[0] and "Traceback" not in err
    assert _all_gone(workers), "worker processes outlived the main process"
    assert list(tmp_path.iterdir()) == []  # no output, no temp folder, no a/b


def test_sigkill_workers_end_and_next_run_removes_the_stale_temp(tmp_path):
    out = tmp_path / "out"
    proc = _start(out)
    workers = _wait_until_writing(proc, tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert _all_gone(workers), "workers became orphans after their parent was killed"
    [stale] = tmp_path.glob(".out.tmp-*")
    mdmnist.generate(
        num_digit=1, num_image_per_class=1, output=out, formats=["hdf5"], progress=False
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not stale.exists()


def test_stale_temps_of_live_processes_are_kept(tmp_path):
    """Only dead processes' temp folders go; a stale .old folder is moved back if OUT is missing."""
    out = tmp_path / "out"
    live = tmp_path / f".out.tmp-{os.getpid()}-0a1b2c3d"
    dead_pid = 2**22 + 17  # above the default pid_max of 4194304: never a live process
    dead_tmp = tmp_path / f".out.tmp-{dead_pid}-00000000"
    dead_old = tmp_path / f".out.old-{dead_pid}-00000000"
    other = tmp_path / f".other.tmp-{dead_pid}-00000000"
    for folder in (live, dead_tmp, dead_old, other):
        folder.mkdir()
    (dead_old / "manifest.json").write_text("{}")
    assert remove_stale_temps(out) == [dead_tmp]
    assert live.is_dir() and other.is_dir() and not dead_tmp.exists()
    assert (out / "manifest.json").read_text() == "{}"  # the earlier output is back in place


def test_failed_run_removes_the_parents_it_created(tmp_path, monkeypatch):
    from mdmnist import pipeline

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "_render_all", crash)
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError):
        mdmnist.generate(num_digit=1, output=tmp_path / "a" / "b" / "c" / "out", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # a existed before: kept
    assert list((tmp_path / "a").iterdir()) == []
