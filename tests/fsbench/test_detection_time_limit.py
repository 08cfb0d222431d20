"""--time-limit for detection runs: training stops at an iteration boundary with a checkpoint, one
line, exit 0, no result.json; --resume continues exactly (the same numbers as a straight run)."""

from __future__ import annotations

import re
import types

import pytest
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine import stop

pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")

SMALL = dict(
    scene_size=64, train_scenes=24, val_scenes=2, test_scenes=30, iterations=12, episodes=2,
    query=2, batch_size=2, checkpoint_every=0, representation=32, embedding_dim=16, threads=1,
)  # fmt: skip


@pytest.fixture
def fake_clock(monkeypatch):
    """time.time() of engine/stop.py advances one second each time it is read (once per
    iteration), so a limit of 0.1 min lets about five iterations run."""
    now = [1_000_000.0]

    def tick() -> float:
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(stop, "time", types.SimpleNamespace(time=tick, monotonic=tick))
    monkeypatch.setattr(stop, "process_start", lambda: now[0])
    return now


def test_two_timed_stops_and_a_resume_equal_a_straight_run(tmp_path, fsbench_data_root, fake_clock):
    from fsbench.detection.run import run_detection, settings_for
    from fsbench.engine.trainer import load_checkpoint

    settings = settings_for("repmet-det", "mnist-detect", **SMALL)
    straight = run_detection(
        settings, tmp_path / "straight", data_root=fsbench_data_root, quiet=True
    )
    out = tmp_path / "run"
    stops = []
    for resume in (False, True):
        with pytest.raises(stop.RunStopped) as info:
            run_detection(
                settings,
                out,
                data_root=fsbench_data_root,
                quiet=True,
                resume=resume,
                time_limit=0.1,
            )
        assert info.value.exit_code == 0 and not (out / "result.json").exists()
        stops.append(int(load_checkpoint(out / "checkpoint.pt")["iteration"]))
        assert info.value.iteration == stops[-1]
    assert 0 < stops[0] < stops[1] < 12
    resumed = run_detection(settings, out, data_root=fsbench_data_root, quiet=True, resume=True)
    assert resumed["iterations"] == 12
    assert resumed["map50"] == straight["map50"] and resumed["ci95"] == straight["ci95"]
    assert (out / "episodes.csv").read_bytes() == (tmp_path / "straight/episodes.csv").read_bytes()
    assert (out / "metrics.jsonl").read_bytes() == (
        tmp_path / "straight/metrics.jsonl"
    ).read_bytes()


def test_the_cli_says_it_in_one_line(tmp_path, fsbench_data_root, fake_clock):
    out = tmp_path / "run"
    args = ["run", "repmet-det", "mnist-detect", "--scene-size", "64", "--train-scenes", "24",
            "--iterations", "12", "--episodes", "1", "--query", "1", "--batch-size", "2",
            "--threads", "1", "--checkpoint-every", "0", "--data-root", str(fsbench_data_root),
            "--out", str(out), "--quiet", "--time-limit", "0.1"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert re.fullmatch(
        r"stopped at iteration \d+ of 12 to keep the time limit of 0\.1 min; resume with --resume",
        line,
    ), line
    assert (out / "checkpoint.pt").is_file() and not (out / "result.json").exists()


def test_reproduce_stops_at_the_limit_with_a_checkpoint(tmp_path, monkeypatch, fake_clock):
    from fsbench.detection import reproduce

    tiny = {k: v for k, v in SMALL.items() if k != "embedding_dim"}
    monkeypatch.setattr(reproduce, "QUICK", tiny)
    with pytest.raises(stop.RunStopped) as info:
        reproduce.reproduce_repmet_detection(
            tmp_path, quick=True, quiet=True, echo=lambda _: None, time_limit=0.1,
            started=fake_clock[0],
        )  # fmt: skip
    assert info.value.exit_code == 0 and str(tmp_path / "repmet-det") in str(info.value)
    assert (tmp_path / "repmet-det" / "checkpoint.pt").is_file()
    assert not (tmp_path / "repmet-det" / "result.json").exists()
    assert not (tmp_path / "table.md").exists()
