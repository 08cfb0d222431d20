"""fsbench eval: a trained run tested on other settings; equal to the run's own test on its own.

Also the bad input of issue-level commands: eval without a checkpoint, --resume with other
settings, an unknown --inner-loss: one Error: line, a non-zero exit, nothing changed on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine import run_setting
from fsbench.engine.evaluate import evaluate_run
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_loader

LOAD = synthetic_loader(size=16, classes=12, per_class=8)
SMALL = dict(way=3, shot=1, query=2, train_way=4, hidden=4, iterations=6, episodes=10)


def trained(tmp_path: Path, method: str = "protonet", **extra) -> tuple[Path, dict]:
    if method == "protonet":  # with best-on-validation selection, as its preset
        dataset, kw = "omniglot", dict(SMALL, eval_every=3, eval_episodes=4)
    else:
        dataset, kw = "doublemnist", dict(SMALL, train_way=None, meta_batch=2)
    settings = resolve_settings(method, dataset, {**kw, **extra})
    out = tmp_path / "run"
    return out, run_setting(settings, out, loader=LOAD, quiet=True)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("method", ["protonet", "maml"])
def test_eval_with_the_runs_own_settings_equals_its_test(tmp_path, method):
    run_dir, own = trained(tmp_path, method)
    res = evaluate_run(run_dir, tmp_path / "e", loader=LOAD, quiet=True)
    assert res["accuracy"] == own["accuracy"] and res["ci95"] == own["ci95"]
    assert res["selection"]["tested"] == own["selection"]["tested"]
    assert res["evaluated_from"]["run"] == str(run_dir)
    assert (tmp_path / "e" / "episodes.csv").read_text() == (run_dir / "episodes.csv").read_text()


def test_eval_on_other_settings_records_them(tmp_path):
    run_dir, own = trained(tmp_path)
    res = evaluate_run(run_dir, tmp_path / "e", way=4, shot=2, episodes=7, loader=LOAD, quiet=True)
    assert (res["way"], res["shot"], res["episodes"]) == (4, 2, 7)
    assert res["settings"]["train_shot"] == 1  # what it was trained with, as it was
    assert {"setting": "train_shot", "value": 1, "preset": 2} in res["deviations"]
    assert res["iterations"] == own["iterations"] == 6
    assert json.loads((tmp_path / "e" / "result.json").read_text())["way"] == 4


def test_eval_of_a_folder_without_a_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "empty"), "--way", "5"])
    assert_one_line_error(r, "checkpoint.pt", "not an fsbench run")
    assert list((tmp_path / "empty").iterdir()) == []


def test_eval_of_a_maml_run_on_another_way_is_refused(tmp_path):
    run_dir, _ = trained(tmp_path, "maml")
    before = snapshot(tmp_path)
    r = CliRunner().invoke(main, ["eval", str(run_dir), "--way", "5", "--device", "cpu"])
    assert_one_line_error(r, "--way 5", "3-way")
    assert snapshot(tmp_path) == before


def test_resume_with_other_settings_changes_nothing(tiny_doublemnist, tmp_path):
    common = [
        "run",
        "protonet",
        "doubled",
        "--data-root",
        str(tiny_doublemnist.data_root),
        "--images-per-class",
        "25",
        "--train-way",
        "5",
        "--iterations",
        "2",
        "--episodes",
        "3",
        "--eval-every",
        "1",
        "--eval-episodes",
        "2",
        "--hidden",
        "4",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(tmp_path / "o"),
    ]
    ok = CliRunner().invoke(main, common)
    assert ok.exit_code == 0, ok.output
    before = snapshot(tmp_path / "o")
    r = CliRunner().invoke(main, [*common, "--resume", "--lr", "0.01"])
    assert_one_line_error(r, "--resume", "lr 0.01 asked, 0.001 in the checkpoint")
    assert snapshot(tmp_path / "o") == before


def test_unknown_inner_loss(tmp_path):
    r = CliRunner().invoke(
        main, ["run", "maml", "doubled", "--inner-loss", "sum", "--out", str(tmp_path / "x")]
    )
    assert_one_line_error(r, "--inner-loss", "mean", "cbfinn")
    assert not (tmp_path / "x").exists()
