"""A run whose training loss becomes NaN or infinite stops there with one line (which iteration,
the learning rate, what to do), exit 1 and no result: weights after it are not worth testing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine.trainer import TrainingDiverged, check_finite
from fsbench.methods.base import Method
from fsbench.methods.registry import register_method, unregister_method
from torch import nn


class BlowsUp(Method):
    """Nearest centroid whose loss turns NaN from its third training step on."""

    def __init__(self, backbone: nn.Module | None = None, **kw) -> None:
        super().__init__(backbone, **kw)
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.shape()), 8))
        self.steps = 0

    def task_scores(self, support_x, support_y, query_x, way):
        zs, zq = self.model(support_x), self.model(query_x)
        centroids = torch.stack([zs[support_y == c].mean(0) for c in range(way)])
        return -torch.cdist(zq, centroids)

    def train_loss(self, batch):
        self.steps += 1
        logits = self.task_scores(
            batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.way
        )
        loss = F.cross_entropy(logits, batch.query_y[0])
        if self.steps >= 3:
            loss = loss * float("nan")
        return loss, {"loss": loss.detach()}


@pytest.fixture
def blows_up():
    register_method("blowsup", BlowsUp, description="NaN from step 3")
    yield "blowsup"
    unregister_method("blowsup")


def test_a_nan_loss_stops_the_run_with_one_line(blows_up, tiny_doublemnist, tmp_path):
    out = tmp_path / "run"
    args = [
        "run", blows_up, "doubled", "--iterations", "6", "--episodes", "2", "--query", "5",
        "--train-way", "5", "--train-query", "5", "--images-per-class", "25", "--lr", "0.5",
        "--data-root", str(tiny_doublemnist.data_root), "--out", str(out), "--quiet",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert_one_line_error(
        result, "training diverged: the loss is nan at iteration 3 of 6", "learning rate 0.5",
        "lower --lr", "--overwrite",
    )  # fmt: skip
    assert result.exit_code == 1
    assert not (out / "result.json").exists()
    assert '"iteration": 3, "loss": NaN' in (out / "metrics.jsonl").read_text()  # logged first


def test_check_finite_names_parameters_for_the_api():
    check_finite({"loss": 1.5, "lr": 0.1}, 4, 10)  # finite: nothing
    check_finite({"lr": 0.1}, 4, 10)  # a method that logs no loss: nothing to judge
    with pytest.raises(TrainingDiverged) as err:
        check_finite({"loss": float("inf"), "lr": 0.1}, 4, 10)
    assert str(err.value).startswith("training diverged: the loss is inf at iteration 4 of 10")
    assert "lower lr" in str(err.value) and "again with overwrite" in str(err.value)
