"""A run killed (SIGKILL: no handler, no clean-up) at several random moments and resumed each time
ends with the same result and per-episode file as a run never killed."""

from __future__ import annotations

import json
import random
import signal
import time

from click.testing import CliRunner
from fsbench.cli import main
from robust_helpers import leftovers, lines, run, start, tiny_args, wait_for

ITERATIONS = 150


def test_sigkill_at_random_moments_then_resume_equals_a_straight_run(tiny_doublemnist, tmp_path):
    root = tiny_doublemnist.data_root
    every = ("--checkpoint-every", "1")  # a checkpoint each iteration: kills land mid-write too
    straight = tmp_path / "straight"
    r = CliRunner().invoke(main, tiny_args(root, straight, ITERATIONS, *every))
    assert r.exit_code == 0, r.output

    out = tmp_path / "killed"
    rng = random.Random(20261204)
    kills = 0
    for _ in range(3):
        proc = start(tiny_args(root, out, ITERATIONS, *every, "--resume"))
        target = lines(out / "metrics.jsonl") + rng.randint(3, 30)
        try:
            wait_for(lambda t=target: lines(out / "metrics.jsonl") >= t, proc)
        except AssertionError:  # finished before the moment came: nothing to kill
            break
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        kills += proc.returncode == -signal.SIGKILL
    assert kills >= 2
    # what a kill in the middle of a checkpoint write leaves (the kills above land there only
    # by chance): half a temporary file of the dead process; the resume must sweep it away
    half = (out / "checkpoint.pt").read_bytes()[:1000]
    (out / f".checkpoint.pt.tmp{proc.pid}").write_bytes(half)
    done = run(tiny_args(root, out, ITERATIONS, *every, "--resume"))
    assert done.returncode == 0, done.stderr

    a = json.loads((straight / "result.json").read_text())
    b = json.loads((out / "result.json").read_text())
    assert (b["accuracy"], b["ci95"], b["iterations"]) == (a["accuracy"], a["ci95"], ITERATIONS)
    assert (out / "episodes.csv").read_bytes() == (straight / "episodes.csv").read_bytes()
    assert (out / "metrics.jsonl").read_bytes() == (straight / "metrics.jsonl").read_bytes()
    assert leftovers(out) == []  # temporaries of killed writes were swept on resume
