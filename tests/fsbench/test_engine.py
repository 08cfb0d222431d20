"""Engine: exact resume (10 + 10 == 20), same seed same numbers, files of a run, device errors."""

from __future__ import annotations

import json

import pytest
import torch
from fsbench.engine import run_setting
from fsbench.engine.device import resolve_device, resolve_precision
from fsbench.engine.trainer import train
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.presets import resolve_settings
from fsbench.results import read_metrics
from fsbench.synthetic import synthetic_loader


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = {
    "maml": dict(way=3, shot=1, query=2, meta_batch=2, hidden=4, checkpoint_every=10),
    "protonet": dict(way=3, shot=1, query=2, train_way=4, hidden=4, lr_step=7, checkpoint_every=10),
    "mlp": dict(checkpoint_every=10, batch_size=16),
}
DATASET = {"maml": "doublemnist", "protonet": "omniglot", "mlp": "mnist1d"}


def fresh(method_name: str, iterations: int, store):
    settings = resolve_settings(
        method_name, DATASET[method_name], {**SMALL[method_name], "iterations": iterations}
    )
    torch.manual_seed(0)
    method = build_method(settings, store.example_shape, store.num_classes)
    method.to(torch.device("cpu"))
    return settings, method


@pytest.mark.parametrize("method_name", ["maml", "protonet", "mlp"])
def test_resume_10_plus_10_equals_20_straight(tmp_path, method_name):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    store = load(DATASET[method_name], "train")
    cpu = torch.device("cpu")
    s20, straight = fresh(method_name, 20, store)
    (tmp_path / "straight").mkdir()
    train(straight, store, s20, tmp_path / "straight", device=cpu, quiet=True)

    s10, first = fresh(method_name, 10, store)
    (tmp_path / "resumed").mkdir()
    train(first, store, s10, tmp_path / "resumed", device=cpu, quiet=True)
    del first
    s20b, second = fresh(method_name, 20, store)
    torch.manual_seed(123)  # a different global RNG state must not matter after restore
    out = train(second, store, s20b, tmp_path / "resumed", device=cpu, resume=True, quiet=True)
    assert out.resumed_from == 10 and out.iteration == 20
    for (name, a), b in zip(
        straight.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    log_a = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    log_b = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert log_a == log_b  # the log was cut at the checkpoint and continued, no duplicates


def test_same_seed_same_numbers_different_seed_differs(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    base = resolve_settings(
        "protonet", "omniglot", {**SMALL["protonet"], "iterations": 5, "episodes": 8}
    )
    r1 = run_setting(base, tmp_path / "a", loader=load, quiet=True)
    r2 = run_setting(base, tmp_path / "b", loader=load, quiet=True)
    run_setting({**base, "seed": 1}, tmp_path / "c", loader=load, quiet=True)
    assert r1["accuracy"] == r2["accuracy"] and r1["ci95"] == r2["ci95"]
    w1 = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    w3 = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)["model"]
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)


def test_run_writes_result_log_curve_checkpoint(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    settings = resolve_settings(
        "maml",
        "doublemnist",
        {**SMALL["maml"], "iterations": 4, "episodes": 6, "eval_every": 2, "eval_episodes": 2},
    )
    res = run_setting(settings, tmp_path, loader=load, quiet=True)
    for name in ("result.json", "metrics.jsonl", "curve.png", "checkpoint.pt"):
        assert (tmp_path / name).is_file(), name
    on_disk = json.loads((tmp_path / "result.json").read_text())
    for key in (
        "method",
        "dataset",
        "way",
        "shot",
        "query",
        "accuracy",
        "ci95",
        "episodes",
        "iterations",
        "seed",
        "device",
        "wall_seconds",
        "versions",
        "data",
    ):
        assert key in on_disk, key
    assert on_disk == json.loads(json.dumps(res, default=str))
    assert 0.0 <= res["accuracy"] <= 1.0 and res["episodes"] == 6 and res["iterations"] == 4
    assert set(res["versions"]) >= {"python", "torch", "numpy", "fsbench", "mdmnist", "mnist1d"}
    assert res["ci95_method"] == "1.96*std/sqrt(episodes)"
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m["iteration"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert [m["iteration"] for m in metrics if "val_accuracy" in m] == [2, 4]
    with pytest.raises(FsbenchError, match="--resume"):
        run_setting(settings, tmp_path, loader=load, quiet=True)


def test_episode_too_large_for_split_is_a_user_error(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    settings = resolve_settings("protonet", "omniglot", {**SMALL["protonet"], "way": 50})
    with pytest.raises(FsbenchError, match="50"):
        run_setting(settings, tmp_path, loader=load, quiet=True)
    settings = resolve_settings(
        "protonet", "omniglot", {**SMALL["protonet"], "shot": 5, "query": 5}
    )
    with pytest.raises(FsbenchError, match="shot"):
        run_setting(settings, tmp_path / "b", loader=load, quiet=True)


def test_device_and_precision_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(FsbenchError):
        resolve_precision("fp16", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(FsbenchError, match="CUDA"):
            resolve_device("cuda")


def test_maml_measure_times_both_paths_and_keeps_the_faster(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    settings = resolve_settings(
        "maml",
        "doublemnist",
        {**SMALL["maml"], "iterations": 2, "episodes": 3, "maml_exec": "measure"},
    )
    res = run_setting(settings, tmp_path, loader=load, device="cpu", quiet=True)
    timings = res["maml_exec_seconds"]
    assert set(timings) == {"loop", "vmap"} and all(t > 0 for t in timings.values())
    assert res["maml_exec"] == min(timings, key=timings.get)
    assert res["iterations"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_run(tmp_path, precision):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    settings = resolve_settings(
        "maml",
        "doublemnist",
        {**SMALL["maml"], "iterations": 3, "episodes": 4, "precision": precision},
    )
    res = run_setting(settings, tmp_path, loader=load, device="cuda", quiet=True)
    assert res["precision"] == precision and res["device"].startswith("cuda")
    # auto on CUDA measures loop against vmap on the first meta-batch and keeps the faster.
    assert res["maml_exec"] in ("loop", "vmap")
    assert set(res["maml_exec_seconds"]) == {"loop", "vmap"}
    assert torch.backends.cudnn.benchmark
