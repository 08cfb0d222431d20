"""--log tensorboard: event files read back with TensorBoard's own EventAccumulator.

The curves must hold exactly the metrics log's records (one point per logged step), the test
result and the settings as hparams; a resume from an earlier checkpoint continues the same
curves with no step twice; without the package, one Error: line says how to install it.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine import run_setting
from fsbench.resolve import resolve_settings
from fsbench.results import read_json, read_metrics
from fsbench.synthetic import synthetic_loader

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)
from tensorboard.backend.event_processing.event_multiplexer import (  # noqa: E402
    EventMultiplexer,
)
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

SMALL = dict(
    way=3,
    shot=1,
    query=2,
    train_way=4,
    hidden=4,
    episodes=6,
    eval_every=5,
    eval_episodes=2,
    checkpoint_every=10,
    log="tensorboard",
)


def settings(iterations: int) -> dict:
    return resolve_settings("protonet", "omniglot", {**SMALL, "iterations": iterations})


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve in the event files under ``folder``: tag -> [(step, value)]."""
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def expected(out) -> dict[str, list[tuple[int, float]]]:
    """The curves the metrics log and result.json of a run say TensorBoard must show."""
    log = read_metrics(out / "metrics.jsonl")
    curves: dict[str, list[tuple[int, float]]] = {}
    for rec in log:
        for key, value in rec.items():
            if key != "iteration":
                tag = f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"
                curves.setdefault(tag, []).append((rec["iteration"], float(np.float32(value))))
    res = read_json(out / "result.json")
    for key in ("accuracy", "ci95"):
        curves[f"test/{key}"] = [(res["iterations"], float(np.float32(res[key])))]
    return curves


def test_event_files_hold_the_metrics_log_test_result_and_hparams(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    s = settings(10)
    run_setting(s, tmp_path, loader=load, quiet=True)
    got = scalars(tmp_path / "tb")
    assert {"train/loss", "train/accuracy", "train/lr", "val/accuracy", "test/accuracy"} <= set(got)
    assert got == expected(tmp_path)
    assert [step for step, _ in got["val/accuracy"]] == [5, 10]

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["lr"].number_value == s["lr"]
    assert start.hparams["method"].string_value == "protonet"
    assert start.hparams["distance"].string_value == s["distance"]
    assert "_hparams_/session_end_info" in content


def test_resume_continues_the_curves_without_duplicated_steps(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    straight = tmp_path / "straight"
    run_setting(settings(20), straight, loader=load, quiet=True)

    out = tmp_path / "resumed"
    run_setting(settings(10), out, loader=load, quiet=True)
    at_10 = tmp_path / "checkpoint-at-10.pt"
    shutil.copy(out / "checkpoint.pt", at_10)
    run_setting(settings(20), out, loader=load, quiet=True, resume=True)
    # a crash after iteration 10 leaves events up to 20 (and a test result) behind the checkpoint
    shutil.copy(at_10, out / "checkpoint.pt")
    run_setting(settings(20), out, loader=load, quiet=True, resume=True)

    got = scalars(out / "tb")
    for tag, points in got.items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), f"{tag} repeats steps: {steps}"
    assert got == scalars(straight / "tb")  # exact resume: the same numbers at the same steps
    mux = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))  # tensorboard --logdir
    assert set(mux.Runs()) == {"straight/tb", "resumed/tb"}
    assert got == expected(out)
    # the cut file, the continuation, the test result written after training
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 3


def test_resume_of_a_run_without_event_files_writes_its_history(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    run_setting({**settings(10), "log": None}, tmp_path, loader=load, quiet=True)
    assert not (tmp_path / "tb").exists()
    run_setting(settings(20), tmp_path, loader=load, quiet=True, resume=True)
    got = scalars(tmp_path / "tb")
    assert got == expected(tmp_path)
    assert got["train/loss"][0][0] == 1 and got["train/loss"][-1][0] == 20


def test_without_tensorboard_one_error_line_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "o"
    args = ["run", "logreg", "mnist1d", "--iterations", "2", "--log", "tensorboard"]
    r = CliRunner().invoke(main, [*args, "--out", str(out), "--device", "cpu", "--quiet"])
    assert_one_line_error(r, "--log tensorboard", "pip install 'fsbench[tensorboard]'")
    assert not out.exists()
