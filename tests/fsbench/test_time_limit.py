"""--time-limit: training stops at an iteration boundary before the limit with a checkpoint,
one line says how far it got, exit 0 without a result.json; --resume continues exactly."""

from __future__ import annotations

import json
import re
import types

import pytest
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine import run_setting, stop
from fsbench.resolve import resolve_settings
from fsbench.results import read_metrics
from fsbench.synthetic import synthetic_loader
from robust_helpers import checkpoint_iteration, last_line, run, tiny_args

SMALL = dict(
    way=3, shot=1, query=2, train_way=4, hidden=4, iterations=20, episodes=6, checkpoint_every=7,
    eval_every=4, eval_episodes=2, select="best-val",
)  # fmt: skip
LOAD = synthetic_loader(size=16, classes=10, per_class=6)


@pytest.fixture
def fake_clock(monkeypatch):
    """time.time() of engine/stop.py advances one second each time it is read."""
    now = [1_000_000.0]

    def tick() -> float:
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(stop, "time", types.SimpleNamespace(time=tick, monotonic=tick))
    return now


def test_two_timed_stops_and_a_resume_equal_a_straight_run(tmp_path, fake_clock):
    settings = resolve_settings("protonet", "omniglot", SMALL)
    straight = run_setting(settings, tmp_path / "straight", loader=LOAD, quiet=True)
    out = tmp_path / "run"
    stops = []
    for resume in (False, True):  # each call gets 0.1 min = 6 ticks: stops after ~5 iterations
        with pytest.raises(stop.RunStopped) as info:
            run_setting(settings, out, loader=LOAD, quiet=True, resume=resume, time_limit=0.1)
        assert info.value.exit_code == 0
        assert info.value.for_cli().endswith("the time limit of 0.1 min; resume with --resume")
        assert str(info.value).endswith("resume with resume=True")  # the API's parameter
        assert not (out / "result.json").exists()
        stops.append(checkpoint_iteration(out / "checkpoint.pt"))
        assert info.value.iteration == stops[-1]
    assert 0 < stops[0] < stops[1] < 20
    resumed = run_setting(settings, out, loader=LOAD, quiet=True, resume=True)
    assert resumed["accuracy"] == straight["accuracy"] and resumed["ci95"] == straight["ci95"]
    assert resumed["selection"] == straight["selection"]
    assert (out / "episodes.csv").read_bytes() == (tmp_path / "straight/episodes.csv").read_bytes()
    assert read_metrics(out / "metrics.jsonl") == read_metrics(
        tmp_path / "straight" / "metrics.jsonl"
    )
    assert "time_limit" not in json.dumps(resumed["settings"])  # not a setting of the run


def test_a_limit_that_lasts_is_no_stop(tmp_path):
    settings = resolve_settings("protonet", "omniglot", {**SMALL, "iterations": 4})
    res = run_setting(settings, tmp_path, loader=LOAD, quiet=True, time_limit=600)
    assert res["iterations"] == 4 and (tmp_path / "result.json").is_file()


def test_the_cli(tiny_doublemnist, tmp_path):
    """One line, exit 0, no result.json; the settings are the run's whatever the limit, so
    --resume with another limit continues it."""
    out = tmp_path / "run"
    done = run(tiny_args(tiny_doublemnist.data_root, out, 100_000, "--time-limit", "0.25"))
    assert done.returncode == 0, done.stderr
    line = last_line(done.stderr)
    assert done.stderr.strip() == line and done.stdout == ""
    found = re.fullmatch(
        r"stopped at iteration (\d+) of 100000 to keep the time limit of 0\.25 min; "
        r"resume with --resume",
        line,
    )
    assert found, line
    assert checkpoint_iteration(out / "checkpoint.pt") == int(found[1])
    assert not (out / "result.json").exists()


def test_reproduce_stops_every_cell_and_says_how_to_go_on(tmp_path, monkeypatch, fake_clock):
    monkeypatch.setattr("fsbench.engine.stop.process_start", lambda: fake_clock[0])
    out = tmp_path / "table"
    args = ["reproduce", "mnist1d", "--quick", "--iterations", "1000", "--quiet", "--out",
            str(out), "--time-limit", "0.1"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert re.search(r"stopped at iteration \d+ of 1000 to keep the time limit of 0\.1 min; "
                     r"run the same command again", r.output), r.output  # fmt: skip
    assert not list(out.glob("*/seed*/result.json")) and not (out / "table.md").exists()
