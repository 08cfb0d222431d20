"""The Python API is the command line's engine: fsbench.train/evaluate/load_run give the CLI's
numbers, write only when given ``out``, leave the process as they found it, and name parameters in
their errors (the CLI names flags)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import fsbench
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine.evaluate import evaluate_run
from fsbench.results import read_metrics

# result.json entries that differ between two runs of the same settings: times and provenance
VOLATILE = ("wall_seconds", "train_seconds", "eval_seconds", "load_seconds", "finished_at")
VOLATILE += ("versions", "machine", "git")
# a tiny ProtoNets run on the 25-per-class DoubleMNIST of conftest, as flags and as keywords
SETTINGS = dict(iterations=3, episodes=6, way=5, train_way=5, shot=1, query=3, train_query=3)
SETTINGS |= dict(hidden=4, threads=1, checkpoint_every=2)


def flags(settings: dict) -> list[str]:
    return [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]


def stable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in VOLATILE}


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def runs(tiny_doublemnist, tmp_path_factory):
    """The same tiny setting through the CLI and through fsbench.train(out=...)."""
    root = tmp_path_factory.mktemp("api-runs")
    data = dict(data_root=tiny_doublemnist.data_root, num_image_per_class=25)
    r = CliRunner().invoke(
        main,
        ["run", "protonet", "doubled", "--images-per-class", "25", "--device", "cpu", "--quiet",
         "--data-root", str(data["data_root"]), "--out", str(root / "cli"), *flags(SETTINGS)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    lib = fsbench.train("protonet", "doubled", out=root / "lib", device="cpu", **data, **SETTINGS)
    return root, data, lib


def test_train_with_out_writes_the_cli_result(runs):
    root, _, lib = runs
    cli = json.loads((root / "cli" / "result.json").read_text())
    written = json.loads((root / "lib" / "result.json").read_text())
    assert stable(written) == stable(cli)
    assert stable(lib.result) == stable(cli)
    assert lib.out == root / "lib"
    assert sorted(p.name for p in (root / "lib").iterdir()) == sorted(
        p.name for p in (root / "cli").iterdir()
    )
    assert (lib.accuracy, lib.ci95, lib.episodes) == (cli["accuracy"], cli["ci95"], 6)
    assert lib.history == read_metrics(root / "cli" / "metrics.jsonl")
    assert isinstance(lib.method, fsbench.ProtoNet)


def test_train_without_out_writes_nothing_and_gives_the_same_numbers(runs, tmp_path, monkeypatch):
    root, data, lib = runs
    cli = json.loads((root / "cli" / "result.json").read_text())
    rows = (root / "cli" / "episodes.csv").read_text().splitlines()[1:]
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path), files_under(Path(data["data_root"])), files_under(root)
    res = fsbench.train("protonet", "doubled", device="cpu", **data, **SETTINGS)
    assert (
        files_under(tmp_path),
        files_under(Path(data["data_root"])),
        files_under(root),
    ) == before
    assert res.out is None
    assert res.accuracy == cli["accuracy"] and res.ci95 == cli["ci95"]
    assert [f"{i},{a:.6f}" for i, a in enumerate(res.per_episode)] == rows  # the CLI's file
    assert res.per_episode == lib.per_episode
    assert stable(res.result) == stable(cli)
    assert res.history == read_metrics(root / "cli" / "metrics.jsonl")  # kept in memory
    assert res.settings == cli["settings"]


def test_load_run_and_evaluate_round_trip(runs, tmp_path):
    root, data, lib = runs
    run = fsbench.load_run(root / "lib")
    assert run.settings["hidden"] == 4 and run.result == lib.result and run.iteration == 3
    assert run.history == lib.history and run.tested == lib.result["selection"]["tested"]
    mine, theirs = run.method.model.state_dict(), lib.method.model.state_dict()
    for a, b in zip(mine.values(), theirs.values(), strict=True):
        assert torch.equal(a, b)
    again = fsbench.evaluate(run, data_root=data["data_root"], device="cpu")
    assert (again.accuracy, again.per_episode) == (lib.accuracy, lib.per_episode)
    # another shot, and the CLI's evaluation of the same run folder gives the same numbers
    other = fsbench.evaluate(run, shot=2, episodes=4, out=tmp_path / "e", **data)
    cli = evaluate_run(root / "lib", tmp_path / "c", shot=2, episodes=4, data_root=data["data_root"],
                       device="cpu", quiet=True)  # fmt: skip
    assert (other.accuracy, other.shot, other.episodes) == (cli["accuracy"], 2, 4)
    assert json.loads((tmp_path / "e" / "result.json").read_text())["evaluated_from"]["run"]
    # a RunResult and a run folder are accepted too
    assert fsbench.evaluate(lib, **data).accuracy == lib.accuracy
    assert fsbench.evaluate(root / "lib", **data).per_episode == lib.per_episode


def tiny_store(classes: int, per_class: int, seed: int) -> fsbench.ArrayStore:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (classes * per_class, 1, 16, 16), generator=gen)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return fsbench.ArrayStore(images.to(torch.uint8), labels)


def process_state() -> tuple:
    return (
        torch.get_num_threads(),
        torch.random.get_rng_state(),
        repr(np.random.get_state()),
        random.getstate(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )


def same_state(a: tuple, b: tuple) -> bool:
    return all(
        torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(a, b, strict=True)
    )


def test_objects_as_data_leave_the_process_as_it_was(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = {"train": tiny_store(8, 6, 0), "val": tiny_store(5, 6, 1), "test": tiny_store(6, 6, 2)}
    kw = dict(iterations=3, episodes=5, way=3, shot=2, query=2, train_way=3, train_query=2)
    kw |= dict(hidden=4, eval_every=2, eval_episodes=2, select="best-val")
    torch.manual_seed(7)
    before = process_state()
    first = fsbench.train("protonet", data, name="mine", device="cpu", threads=2, **kw)
    assert same_state(process_state(), before)  # threads 2 inside the run only
    torch.manual_seed(123)  # another global RNG state: the run seeds itself
    second = fsbench.train("protonet", data, name="mine", device="cpu", threads=2, **kw)
    assert (first.accuracy, first.per_episode) == (second.accuracy, second.per_episode)
    assert first.result["dataset_label"] == "mine" and first.result["torch_threads"] == 2
    assert first.settings["dataset"] == "folder"  # resolved over your own data's preset
    assert first.result["selection"]["validations"] == 1
    assert any("val_accuracy" in rec for rec in first.history)
    before = process_state()
    score = fsbench.evaluate(first.method, {"test": data["test"]}, device="cpu", episodes=3)
    assert same_state(process_state(), before) and score.episodes == 3
    assert not list(tmp_path.iterdir())
    # a user's method instance: rebuilt for the data, its own keyword settings kept
    mine = fsbench.ProtoNet(example_shape=(1, 16, 16), hidden=4, distance="euclidean")
    res = fsbench.train(mine, data, device="cpu", **{**kw, "hidden": 4})
    assert res.settings["distance"] == "euclidean" and mine.given == {
        "hidden": 4,
        "distance": "euclidean",
    }
    assert isinstance(res.method, fsbench.ProtoNet) and res.method is not mine


def test_set_deterministic_is_the_explicit_switch():
    before = process_state()
    try:
        fsbench.set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        fsbench.set_deterministic(None)
        torch.use_deterministic_algorithms(before[4], warn_only=before[5])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[6:8]


def test_errors_name_the_parameter_and_the_cli_the_flag(runs, tmp_path):
    root, data, _ = runs
    stores = {"train": tiny_store(8, 6, 0), "test": tiny_store(6, 6, 2)}
    with pytest.raises(fsbench.SettingError) as err:
        fsbench.train("protonet", stores, resume=True)
    assert "resume" in str(err.value) and "out" in str(err.value) and "--" not in str(err.value)
    assert "--resume" in err.value.for_cli() and "--out" in err.value.for_cli()
    with pytest.raises(fsbench.SettingError, match="^lr must be a number > 0"):
        fsbench.train("protonet", stores, lr=-1.0)
    with pytest.raises(fsbench.SettingError, match="hiden is not a setting"):
        fsbench.train("protonet", stores, hiden=4)
    with pytest.raises(fsbench.SettingError, match="needs the test split"):
        fsbench.train("protonet", {"train": stores["train"]})
    with pytest.raises(fsbench.FsbenchError) as err:  # OUT holds a run: resume= or overwrite=
        fsbench.train("protonet", "doubled", out=root / "lib", device="cpu", **data, **SETTINGS)
    assert "pass resume to continue it or overwrite to start again" in str(err.value)
    r = CliRunner().invoke(
        main,
        ["run", "protonet", "doubled", "--images-per-class", "25", "--device", "cpu",
         "--data-root", str(data["data_root"]), "--out", str(root / "lib"), *flags(SETTINGS)],
    )  # fmt: skip
    assert r.exit_code == 1 and "pass --resume to continue it or --overwrite" in r.output


def test_import_is_lazy():
    code = "import sys, fsbench; print('torch' in sys.modules, fsbench.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", fsbench.__version__]
    for name in fsbench.__all__:
        assert getattr(fsbench, name) is not None, name
