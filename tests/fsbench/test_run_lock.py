"""One writer per run folder: a held folder is one line naming it and the holder's PID, and
nothing is written there; a lock left by a dead process never blocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine import run_lock, run_setting
from fsbench.engine.reproduce import plan_table
from fsbench.errors import FsbenchError
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_loader
from fsbench.table_specs import TABLES
from PIL import Image
from robust_helpers import last_line, lines, start, tiny_args, wait_for

SMALL = dict(way=3, shot=1, query=2, train_way=4, hidden=4, iterations=4, episodes=4)


def settings(**extra):
    return resolve_settings("protonet", "omniglot", {**SMALL, **extra})


def snapshot(folder):
    """Names, sizes and modification times of everything in a folder."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_held_folder_refuses_run_eval_and_predict_and_writes_nothing(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    out = tmp_path / "run"
    run_setting(settings(), out, loader=load, quiet=True)
    images = tmp_path / "images"
    for k in range(2):
        (images / str(k)).mkdir(parents=True)
        Image.fromarray(np.full((16, 16), 80 * k, np.uint8)).save(images / str(k) / "0.png")
    with run_lock.acquire(out):  # another writer (a second open file: flock does not share)
        before = snapshot(out)
        for resume, overwrite in ((True, False), (False, True), (False, False)):
            with pytest.raises(FsbenchError, match=f"{out} is in use .*PID {os.getpid()}"):
                run_setting(settings(), out, loader=load, quiet=True, resume=resume,
                            overwrite=overwrite)  # fmt: skip
        r = CliRunner().invoke(main, ["eval", str(out), "--out", str(out), "--overwrite"])
        assert_one_line_error(r, str(out), f"PID {os.getpid()}")
        r = CliRunner().invoke(
            main,
            ["predict", str(out), "--support", str(images), "--query", str(images),
             "--out", str(out / "p.csv")],
        )  # fmt: skip
        assert_one_line_error(r, str(out), f"PID {os.getpid()}")
        assert snapshot(out) == before
    # released: the same calls go through
    again = run_setting(settings(), out, loader=load, quiet=True, resume=True)
    assert again["iterations"] == 4
    r = CliRunner().invoke(main, ["predict", str(out), "--support", str(images),
                                  "--query", str(images), "--out", str(out / "p.csv")])  # fmt: skip
    assert r.exit_code == 0, r.output


def test_reproduce_refuses_a_cell_another_process_holds_before_running_anything(tmp_path):
    spec = TABLES["mnist1d"]
    plan = plan_table(spec, tmp_path, quick=True, overrides={"iterations": 3})
    held = plan[0].out
    held.mkdir(parents=True)
    with run_lock.acquire(held), pytest.raises(FsbenchError, match=f"{held} is in use"):
        plan_table(spec, tmp_path, quick=True, overrides={"iterations": 3})
    assert sorted(p.name for p in held.iterdir()) == [run_lock.LOCK_NAME]


def test_a_lock_left_by_a_killed_process_never_blocks(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    code = (
        "import sys, time; from fsbench.engine import run_lock; "
        f"run_lock.acquire({str(folder)!r}); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FsbenchError, match=f"PID {holder.pid}"):
            run_lock.acquire(folder)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (folder / run_lock.LOCK_NAME).read_text().strip() == str(holder.pid)  # left behind
    run_lock.acquire(folder).release()  # ... and free
    load = synthetic_loader(size=16, classes=10, per_class=6)
    assert run_setting(settings(), folder, loader=load, quiet=True)["iterations"] == 4


def test_two_cli_runs_into_one_out(tiny_doublemnist, tmp_path):
    """The issue's first situation: the second run is one line naming the first's PID, exit 1,
    and the first run's files are its own (no interleaved metrics)."""
    out = tmp_path / "run"
    first = start(tiny_args(tiny_doublemnist.data_root, out, 100_000))
    try:
        wait_for(lambda: lines(out / "metrics.jsonl") >= 3, first)
        for extra in ((), ("--resume",), ("--overwrite",)):
            second = start(tiny_args(tiny_doublemnist.data_root, out, 50, "--seed", "2", *extra))
            _, err = second.communicate(timeout=300)
            assert second.returncode == 1, err
            assert last_line(err) == err.strip(), err  # one line
            assert err.startswith("Error: ") and f"PID {first.pid}" in err and str(out) in err
        assert first.poll() is None  # untouched, still training
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM
    assert not (out / "result.json").exists()
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["iteration"] for r in records if "loss" in r]  # logged every 50 of 100,000
    assert steps == list(range(50, 50 * len(steps) + 1, 50))  # one run's log, in order
