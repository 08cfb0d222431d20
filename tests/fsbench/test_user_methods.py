"""Your own method: registered by a call or an entry point, run and tabled like a built-in one."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.errors import FsbenchError
from fsbench.methods.base import Method
from fsbench.methods.registry import register_method, unregister_method
from torch import nn


class NearestCentroid(Method):
    """Nearest centroid on a 2-layer net: the minimal user method (__init__, two methods)."""

    def __init__(self, backbone: nn.Module | None = None, **kw) -> None:
        super().__init__(backbone, **kw)
        inputs = math.prod(self.shape()) if backbone is None else 0
        self.model = backbone or nn.Sequential(
            nn.Flatten(), nn.Linear(inputs, 32), nn.ReLU(), nn.Linear(32, 16)
        )

    def task_scores(self, support_x, support_y, query_x, way):
        zs, zq = self.model(support_x), self.model(query_x)
        centroids = torch.stack([zs[support_y == c].mean(0) for c in range(way)])
        return -torch.cdist(zq, centroids)

    def train_loss(self, batch):
        logits = self.task_scores(
            batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.way
        )
        loss = F.cross_entropy(logits, batch.query_y[0])
        acc = (logits.argmax(1) == batch.query_y[0]).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": acc}


@pytest.fixture
def centroid():
    """'centroid' registered for one test."""
    register_method("centroid", NearestCentroid, description="nearest centroid, 2-layer net")
    yield "centroid"
    unregister_method("centroid")


def run_args(method: str, data_root: Path, out: Path) -> list[str]:
    """A tiny run of ``method`` on the tiny DoubleMNIST (3 iterations, 5 test episodes)."""
    return [
        "run", method, "doubled", "--iterations", "3", "--episodes", "5", "--query", "5",
        "--train-way", "5", "--train-query", "5", "--images-per-class", "25",
        "--data-root", str(data_root), "--out", str(out), "--quiet", "--device", "cpu",
    ]  # fmt: skip


def test_a_registered_method_runs_like_a_builtin_and_is_marked_in_tables(
    centroid, tiny_doublemnist, tmp_path
):
    runner = CliRunner()
    root = tiny_doublemnist.data_root
    mine = runner.invoke(main, run_args(centroid, root, tmp_path / "runs" / "mine"))
    assert mine.exit_code == 0, mine.output
    theirs = runner.invoke(
        main, [*run_args("protonet", root, tmp_path / "runs" / "proto"), "--hidden", "8"]
    )
    assert theirs.exit_code == 0, theirs.output
    res = json.loads((tmp_path / "runs" / "mine" / "result.json").read_text())
    proto = json.loads((tmp_path / "runs" / "proto" / "result.json").read_text())
    assert res["method"] == "centroid" and res["iterations"] == 3 and res["episodes"] == 5
    assert res["user_method"]["class"] == f"{__name__}:NearestCentroid"
    assert res["user_method"]["origin"] == "register_method"
    assert res["user_method"]["preset"] == "protonet" and res["published_percent"] is None
    assert res["protocol_notes"][0].startswith("A user method")
    assert "user_method" not in proto
    # the protocol is the built-in one: the preset's test episodes, the same data
    for key in ("way", "shot", "query", "episodes", "dataset_label", "data"):
        assert res[key] == proto[key], key
    table = runner.invoke(main, ["table", str(tmp_path / "runs")])
    assert table.exit_code == 0, table.output
    rows = [ln for ln in table.output.splitlines() if ln.startswith("| ")]
    assert any(ln.startswith("| centroid (user method) |") for ln in rows), table.output
    assert any(ln.startswith("| protonet |") for ln in rows), table.output
    listing = runner.invoke(main, ["list"])
    assert "centroid" in listing.output and "nearest centroid, 2-layer net" in listing.output


def test_a_user_method_takes_keyword_settings_and_default_episodes(centroid):
    from fsbench.data.store import ArrayStore

    g = torch.Generator().manual_seed(0)
    store = ArrayStore.from_tensors(torch.rand(60, 1, 4, 4, generator=g), torch.arange(60) % 6)
    method = NearestCentroid(
        example_shape=(1, 4, 4), way=3, shot=2, query=3, train_way=4, train_query=3
    )
    assert method.settings.method == "centroid" and method.settings.train_way == 4
    method.check(store, "train")
    batch = method.sample_train(store, store.generator(0), 0)
    assert batch.support_x.shape == (1, 8, 1, 4, 4)  # train_way 4 x train_shot 2
    loss, metrics = method.train_loss(batch)
    assert loss.ndim == 0 and "loss" in metrics
    result = method.evaluate(store, store.generator(1), episodes=4)
    assert result.episodes == 4 and 0.0 <= result.accuracy <= 1.0
    with pytest.raises(FsbenchError, match="way 7 is larger"):
        NearestCentroid(example_shape=(1, 4, 4), way=7).check(store, "test")


def test_names_that_clash_are_refused(centroid):
    with pytest.raises(FsbenchError, match="'protonet' is a built-in method.*replace=True"):
        register_method("protonet", NearestCentroid, description="x")
    with pytest.raises(FsbenchError, match="'centroid' is already registered"):
        register_method("centroid", NearestCentroid, description="x")
    again = register_method("centroid", NearestCentroid, description="again", replace=True)
    assert again.description == "again"
    with pytest.raises(FsbenchError, match="not a subclass of fsbench.methods.base.Method"):
        register_method("other", nn.Linear, description="x")  # type: ignore[arg-type]
    with pytest.raises(FsbenchError, match="preset 'nope' of method 'other'"):
        register_method("other", NearestCentroid, description="x", preset="nope")
    with pytest.raises(FsbenchError, match="preset of method 'other': lr must be a number > 0"):
        register_method("other", NearestCentroid, description="x", preset={"lr": -1.0})


PLUGIN = '''
"""A user's package with one fsbench method (an entry point)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from fsbench.methods.base import Method


class Centroids(Method):
    """Nearest centroid on a 2-layer net, from an installed package."""

    def __init__(self, backbone=None, **kw):
        super().__init__(backbone, **kw)
        self.model = backbone or nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(self.shape()), 32), nn.ReLU(), nn.Linear(32, 16)
        )

    def task_scores(self, support_x, support_y, query_x, way):
        zs, zq = self.model(support_x), self.model(query_x)
        centroids = torch.stack([zs[support_y == c].mean(0) for c in range(way)])
        return -torch.cdist(zq, centroids)

    def train_loss(self, batch):
        logits = self.task_scores(batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.way)
        loss = F.cross_entropy(logits, batch.query_y[0])
        acc = (logits.argmax(1) == batch.query_y[0]).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": acc}
'''


def write_distribution(site: Path, dist: str, version: str, entry_points: dict[str, str]) -> None:
    """An installed distribution as pip leaves it: its .dist-info with entry_points.txt."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text("[fsbench.methods]\n" + lines)


def fsbench_subprocess(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *sys.path[1:]])
    return subprocess.run(
        [sys.executable, "-m", "fsbench", *args], env=env, capture_output=True, text=True
    )


def test_an_entry_point_method_runs_from_the_command_line(tiny_doublemnist, tmp_path):
    site = tmp_path / "site"
    (site / "centroid_plugin").mkdir(parents=True)
    (site / "centroid_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    write_distribution(site, "centroid-plugin", "0.3", {"ep-centroid": "centroid_plugin:Centroids"})
    out = tmp_path / "run"
    done = fsbench_subprocess(site, *run_args("ep-centroid", tiny_doublemnist.data_root, out))
    assert done.returncode == 0, done.stdout + done.stderr
    res = json.loads((out / "result.json").read_text())
    assert res["method"] == "ep-centroid" and res["iterations"] == 3
    assert res["user_method"] == {
        "name": "ep-centroid",
        "class": "centroid_plugin:Centroids",
        "origin": "entry point ep-centroid = centroid_plugin:Centroids",
        "distribution": "centroid-plugin",
        "version": "0.3",
        "preset": "protonet",
    }


def test_a_broken_entry_point_is_one_line_naming_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_distribution(site, "broken-plugin", "1.0", {"ep-broken": "no_such_module:Method"})
    monkeypatch.syspath_prepend(str(site))
    unregister_method("ep-broken")
    r = CliRunner().invoke(main, ["run", "ep-broken", "doubled", "--out", str(tmp_path / "o")])
    assert_one_line_error(
        r,
        "entry point ep-broken = no_such_module:Method",
        "broken-plugin 1.0",
        "ModuleNotFoundError",
    )
    assert not (tmp_path / "o").exists()
    listing = CliRunner().invoke(main, ["list"])
    assert listing.exit_code == 0 and "(not loaded) entry point ep-broken" in listing.output


def tiny_table():
    """A one-cell ProtoNets table on the tiny DoubleMNIST whose --quick runs in seconds."""
    from fsbench.table_specs import Cell, TableSpec

    quick = {
        "iterations": 3, "episodes": 5, "query": 5, "train_way": 5, "train_query": 5,
        "hidden": 8, "data_options": {"num_image_per_class": 25},
    }  # fmt: skip
    cell = Cell("protonet", "doublemnist", "Double MNIST", "5-way 1-shot", {"way": 5, "shot": 1})
    return TableSpec("protonet-omniglot", "a tiny table", (cell,), (0,), (0,), quick, "tiny")


def test_reproduce_with_adds_a_marked_row_under_the_tables_protocol(
    centroid, tiny_doublemnist, tmp_path, monkeypatch
):
    from fsbench.table_specs import TABLES

    monkeypatch.setitem(TABLES, "protonet-omniglot", tiny_table())
    out = tmp_path / "rep"
    args = ["reproduce", "protonet-omniglot", "--quick", "--quiet", "--out", str(out)]
    args += ["--data-root", str(tiny_doublemnist.data_root), "--device", "cpu"]
    r = CliRunner().invoke(main, [*args, "--with", centroid])
    assert r.exit_code == 0, r.output
    mine = json.loads(
        (out / "centroid-doublemnist-shot1-way5" / "seed0" / "result.json").read_text()
    )
    theirs = json.loads(
        (out / "protonet-doublemnist-shot1-way5" / "seed0" / "result.json").read_text()
    )
    assert mine["user_method"]["name"] == "centroid"
    for key in ("way", "shot", "query", "episodes", "iterations", "seed", "data"):
        assert mine[key] == theirs[key], key
    assert mine["settings"]["hidden"] == 8  # the --quick values every method reads
    layout = (out / "table_source_layout.md").read_text()
    assert "| Double MNIST, centroid (user method) |" in layout, layout
    assert "| centroid (user method) | doublemnist |" in (out / "table.md").read_text()
    refused = CliRunner().invoke(main, [*args, "--with", "protonet"])
    assert_one_line_error(refused, "--with takes a user's method; protonet is built in")
    unknown = CliRunner().invoke(main, [*args, "--with", "nothing-here"])
    assert_one_line_error(unknown, "unknown method 'nothing-here'")
    jobs = CliRunner().invoke(main, [*args, "--with", centroid, "--jobs", "2", "--overwrite"])
    assert_one_line_error(jobs, "registered by a call", "entry point")


class LossOnly(NearestCentroid):
    """A user method whose metrics hold its loss alone (no training accuracy)."""

    def train_loss(self, batch):
        loss, _ = super().train_loss(batch)
        return loss, {"loss": loss.detach()}


def test_a_method_that_logs_only_its_loss_trains(monkeypatch):
    import fsbench
    from fsbench.data.store import ArrayStore
    from fsbench.engine import trainer

    monkeypatch.setattr(trainer, "show_progress", lambda quiet: True)  # the progress bar too
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(96, 1, 4, 4, generator=g), torch.arange(96) % 12
    splits = {
        "train": ArrayStore.from_tensors(x[y < 6], y[y < 6]),
        "test": ArrayStore.from_tensors(x[y >= 6], y[y >= 6] - 6),
    }
    register_method("lossonly", LossOnly, description="loss-only metrics")
    try:
        res = fsbench.train("lossonly", splits, iterations=3, episodes=2, query=3, train_query=3)
    finally:
        unregister_method("lossonly")
    rows = [h for h in res.history if "loss" in h]
    assert [h["iteration"] for h in rows] == [1, 2, 3] and "accuracy" not in rows[0]
    assert res.episodes == 2
