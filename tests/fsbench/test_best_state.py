"""The best-on-validation model is tested with the method's state saved beside its weights."""

from __future__ import annotations

import json

import fsbench.engine.run as engine_run
import torch
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine.trainer import save_checkpoint


def test_tested_state_takes_the_method_state_of_the_model_it_tests(tmp_path):
    last = {"model": {"w": 1}, "method": {"v": "last"}, "iteration": 5, "settings": {}}
    save_checkpoint(tmp_path / "checkpoint.pt", last)
    save_checkpoint(
        tmp_path / "best.pt", {"model": {"w": 2}, "method": {"v": "best"}, "iteration": 3}
    )
    weights, state, why = engine_run.tested_state(tmp_path, {"select": "best-val"})
    assert (weights, state) == ({"w": 2}, {"v": "best"}) and "iteration 3" in why
    weights, state, why = engine_run.tested_state(tmp_path, {"select": "last"})
    assert (weights, state, why) == ({"w": 1}, {"v": "last"}, "last iteration")
    # a best.pt of an earlier fsbench (weights only): the last state, as it was tested then
    save_checkpoint(tmp_path / "best.pt", {"model": {"w": 2}, "iteration": 3})
    assert engine_run.tested_state(tmp_path, {"select": "best-val"})[1] == {"v": "last"}


def test_a_best_val_magnet_run_tests_with_the_best_models_variance(tmp_path):
    out = tmp_path / "m"
    args = ["run", "magnet", "mnist-super", "--images-per-class", "6", "--resize", "16"]
    args += ["--iterations", "6", "--hidden", "4", "--episodes", "3", "--query", "1"]
    args += ["--modes", "2", "--refresh-every", "2", "--images-per-cluster", "2"]
    args += ["--eval-every", "1", "--eval-episodes", "2", "--select", "best-val"]
    args += ["--data-root", str(tmp_path / "data"), "--out", str(out), "--quiet"]
    args += ["--threads", "1"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    result = json.loads((out / "result.json").read_text())
    best = torch.load(out / "best.pt", weights_only=False)
    last = torch.load(out / "checkpoint.pt", weights_only=False)
    assert result["selection"]["tested_iteration"] == best["iteration"]
    variance = float(best["method"]["variance_sum"]) / best["method"]["variance_count"]
    assert result["soft_vote_variance"] == variance
    if best["iteration"] != last["iteration"]:  # the last model's variance is another number
        lv = float(last["method"]["variance_sum"]) / last["method"]["variance_count"]
        assert lv != variance
