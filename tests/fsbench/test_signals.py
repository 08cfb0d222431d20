"""Preemption: SIGTERM, SIGINT and SIGUSR1 finish the current iteration, write a checkpoint, print
one line and exit with 128 + the signal; the run resumes exactly; reproduce stops its workers."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from fsbench.engine import run_setting, stop
from fsbench.methods.protonet import ProtoNet
from fsbench.resolve import resolve_settings
from fsbench.results import read_metrics
from fsbench.synthetic import synthetic_loader
from robust_helpers import checkpoint_iteration, last_line, lines, start, tiny_args, wait_for

SMALL = dict(way=3, shot=1, query=2, train_way=4, hidden=4, iterations=8, episodes=6)
LOAD = synthetic_loader(size=16, classes=10, per_class=6)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_a_signal_stops_at_the_next_boundary_and_resume_is_exact(tmp_path, monkeypatch, sig):
    settings = resolve_settings("protonet", "omniglot", SMALL)
    straight = run_setting(settings, tmp_path / "straight", loader=LOAD, quiet=True)
    original = ProtoNet.sample_train

    def signalled(self, store, generator, iteration):
        if iteration == 2:  # the signal lands inside iteration 3 (of 1..8)
            os.kill(os.getpid(), sig)
        return original(self, store, generator, iteration)

    out = tmp_path / "run"
    with monkeypatch.context() as m, stop.stop_on_signals():
        m.setattr(ProtoNet, "sample_train", signalled)
        with pytest.raises(stop.RunStopped) as info:
            run_setting(settings, out, loader=LOAD, quiet=True)
    name = signal.Signals(sig).name
    assert info.value.for_cli() == f"stopped at iteration 3 of 8 by {name}; resume with --resume"
    assert info.value.exit_code == 128 + sig
    assert checkpoint_iteration(out / "checkpoint.pt") == 3
    assert not (out / "result.json").exists()
    assert signal.getsignal(sig) is not stop._handler  # the handlers are gone after the block
    with stop.stop_on_signals():  # a new block forgets the earlier signal
        resumed = run_setting(settings, out, loader=LOAD, quiet=True, resume=True)
    assert resumed["accuracy"] == straight["accuracy"] and resumed["resumed_from"] == 3
    assert read_metrics(out / "metrics.jsonl") == read_metrics(
        tmp_path / "straight" / "metrics.jsonl"
    )


def test_sigterm_to_the_cli(tiny_doublemnist, tmp_path):
    """The issue's situation: SIGTERM while training is one line, exit 143, a checkpoint at the
    iteration it names, no result."""
    out = tmp_path / "run"
    proc = start(tiny_args(tiny_doublemnist.data_root, out, 100_000))
    wait_for(lambda: lines(out / "metrics.jsonl") >= 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    line = last_line(err)
    assert err.strip() == line  # --quiet: that one line only
    found = re.fullmatch(
        r"stopped at iteration (\d+) of 100000 by SIGTERM; resume with --resume", line
    )
    assert found, line
    assert checkpoint_iteration(out / "checkpoint.pt") == int(found[1]) >= 50
    assert not (out / "result.json").exists()


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_reproduce_forwards_the_signal_to_its_workers_and_leaves_no_orphan(tmp_path):
    out = tmp_path / "table"
    args = ["reproduce", "mnist1d", "--quick", "--iterations", "100000", "--jobs", "2",
            "--quiet", "--out", str(out)]  # fmt: skip
    proc = start(args)

    def two_cells_training() -> bool:
        return sum(lines(p) >= 1 for p in out.glob("*/seed*/metrics.jsonl")) >= 2

    wait_for(two_cells_training, proc, timeout=300)
    workers = children(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGTERM)  # to the main process only: it forwards
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err
    line = last_line(err)
    assert re.search(r"stopped at iteration \d+ of 100000 by SIGTERM", line), line
    assert "run the same command again" in line
    wait_for(lambda: not any(alive(w) for w in workers), timeout=30)
    stopped = [p.parent for p in out.glob("*/seed*/metrics.jsonl") if lines(p) >= 1]
    for cell in stopped:
        assert checkpoint_iteration(cell / "checkpoint.pt") >= 50, cell
        assert not (cell / "result.json").exists()
