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
from fsbench.resolve import resolve_settings
from fsbench.results import read_metrics
from fsbench.settings import SettingError
from fsbench.synthetic import synthetic_loader

SMALL = {
    "maml": dict(way=3, shot=1, query=2, meta_batch=2, hidden=4, checkpoint_every=10),
    "protonet": dict(way=3, shot=1, query=2, train_way=4, hidden=4, lr_step=7, checkpoint_every=10),
    "mlp": dict(checkpoint_every=10, batch_size=16),
    # Magnet refreshes its clusters every 7 iterations: a resume at 10 needs the saved index
    "magnet": dict(
        way=3,
        shot=2,
        query=2,
        hidden=4,
        modes=2,
        clusters_per_batch=4,
        images_per_cluster=2,
        refresh_every=7,
        checkpoint_every=10,
        eval_every=0,
        select="last",
    ),
    "repmet": dict(
        way=3,
        shot=2,
        query=2,
        hidden=4,
        modes=2,
        clusters_per_batch=4,
        images_per_cluster=2,
        embedding_dim=8,
        checkpoint_every=10,
        eval_every=0,
        select="last",
    ),
}
DATASET = {
    "maml": "doublemnist",
    "protonet": "omniglot",
    "mlp": "mnist1d",
    "magnet": "mnist-super",
    "repmet": "mnist-super",
}


def fresh(method_name: str, iterations: int, store):
    settings = resolve_settings(
        method_name, DATASET[method_name], {**SMALL[method_name], "iterations": iterations}
    )
    torch.manual_seed(0)
    method = build_method(settings, store.example_shape, store.num_classes)
    method.to(torch.device("cpu"))
    return settings, method


@pytest.mark.parametrize("method_name", ["maml", "protonet", "mlp", "magnet", "repmet"])
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
    assert set(res["versions"]) >= {
        "python",
        "torch",
        "numpy",
        "fsbench",
        "mdmnist",
        "mnist1d-fast",
    }
    assert res["ci95_method"] == "1.96*std/sqrt(episodes)"
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m["iteration"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert [m["iteration"] for m in metrics if "val_accuracy" in m] == [2, 4]
    with pytest.raises(SettingError, match="pass resume to continue it or overwrite") as err:
        run_setting(settings, tmp_path, loader=load, quiet=True)
    assert "pass --resume to continue it or --overwrite" in err.value.for_cli()


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
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    for bad in ("fp16", "bf16", "auto"):
        with pytest.raises(SettingError, match="^precision") as err:
            resolve_precision(bad, torch.device("cpu"))
        assert err.value.for_cli().startswith("--precision")
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


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("method", "precision"), [("maml", "bf16"), ("protonet", "fp16")])
def test_cuda_mixed_precision_run(tmp_path, method, precision):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    dataset = "doublemnist" if method == "maml" else "omniglot"
    settings = resolve_settings(
        method,
        dataset,
        {**SMALL[method], "iterations": 3, "episodes": 4, "precision": precision},
    )
    res = run_setting(settings, tmp_path, loader=load, device="cuda", quiet=True)
    assert res["precision"] == precision and res["device"].startswith("cuda")
    assert torch.backends.cudnn.benchmark
    if method == "maml":
        # auto on CUDA measures loop, vmap and their CUDA graphs on the first meta-batch and
        # keeps the fastest.
        timings = res["maml_exec_seconds"]
        assert set(timings) == {"loop", "vmap", "graph", "graph-vmap"}
        assert res["maml_exec"] == min(timings, key=timings.get)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_default_is_fp32(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    settings = resolve_settings("maml", "doublemnist", {**SMALL["maml"], "iterations": 2})
    res = run_setting(settings, tmp_path, loader=load, device="cuda", quiet=True)
    assert res["precision"] == "fp32"  # reproductions never run in mixed precision unasked
    assert not any(d["setting"] == "precision" for d in res["deviations"])


# ---- model selection, resume refusal, progress lines ------------------------------------------


def test_best_on_validation_is_tested_and_recorded(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    settings = resolve_settings(
        "protonet",
        "omniglot",
        {**SMALL["protonet"], "iterations": 12, "episodes": 6, "eval_every": 3, "eval_episodes": 4},
    )
    res = run_setting(settings, tmp_path, loader=load, quiet=True)
    vals = [m for m in read_metrics(tmp_path / "metrics.jsonl") if "val_accuracy" in m]
    assert [m["iteration"] for m in vals] == [3, 6, 9, 12]
    best = max(vals, key=lambda m: m["val_accuracy"])  # the first of equal maxima
    sel = res["selection"]
    assert sel["select"] == "best-val" and sel["validations"] == 4
    assert sel["tested_iteration"] == best["iteration"] and "best validation" in sel["tested"]
    assert sel["best_val_accuracy"] == best["val_accuracy"]
    saved = torch.load(tmp_path / "best.pt", weights_only=False)
    assert saved["iteration"] == best["iteration"]
    # the test used those weights: the same evaluation of the best weights gives the same number
    from fsbench.engine.run import test_episodes

    method = build_method(settings, (1, 16, 16), 10)
    method.model.load_state_dict(saved["model"])
    again = test_episodes(
        method, load("omniglot", "test"), settings, torch.device("cpu"), "fp32", True
    )
    assert again.accuracy == res["accuracy"]


def test_selection_survives_resume(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    kw = {**SMALL["protonet"], "episodes": 4, "eval_every": 2, "eval_episodes": 4}
    full = run_setting(
        resolve_settings("protonet", "omniglot", {**kw, "iterations": 12}),
        tmp_path / "a",
        loader=load,
        quiet=True,
    )
    run_setting(
        resolve_settings("protonet", "omniglot", {**kw, "iterations": 6, "checkpoint_every": 2}),
        tmp_path / "b",
        loader=load,
        quiet=True,
    )
    resumed = run_setting(
        resolve_settings("protonet", "omniglot", {**kw, "iterations": 12, "checkpoint_every": 2}),
        tmp_path / "b",
        loader=load,
        quiet=True,
        resume=True,
    )
    assert resumed["selection"] == full["selection"] and resumed["accuracy"] == full["accuracy"]


def test_resume_refuses_other_settings_but_continues_more_iterations(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    base = {**SMALL["mlp"], "iterations": 6}
    run_setting(resolve_settings("mlp", "mnist1d", base), tmp_path, loader=load, quiet=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for change, needle in (
        ({"lr": 0.1}, "lr 0.1 asked, 0.01 in the checkpoint"),
        ({"iterations": 3}, "iterations 3"),
    ):
        with pytest.raises(FsbenchError, match=needle):
            run_setting(
                resolve_settings("mlp", "mnist1d", {**base, **change}),
                tmp_path,
                loader=load,
                quiet=True,
                resume=True,
            )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched
    more = run_setting(
        resolve_settings("mlp", "mnist1d", {**base, "iterations": 9}),
        tmp_path,
        loader=load,
        quiet=True,
        resume=True,
    )
    assert more["iterations"] == 9 and more["resumed_from"] == 6


def test_resume_of_a_checkpoint_older_than_a_setting(tmp_path):
    """A checkpoint written before a setting existed continues when that setting is at its
    default (the behaviour it had then), and is refused when the setting asks otherwise."""
    load = synthetic_loader(size=16, classes=10, per_class=6)
    base = {**SMALL["protonet"], "iterations": 4, "episodes": 4, "checkpoint_every": 2}
    run_setting(resolve_settings("protonet", "omniglot", base), tmp_path, loader=load, quiet=True)
    path = tmp_path / "checkpoint.pt"
    saved = torch.load(path, weights_only=False)
    for key in ("lite_h", "backbone", "dropout"):  # as if written by an older fsbench
        del saved["settings"][key]
    torch.save(saved, path)
    more = run_setting(
        resolve_settings("protonet", "omniglot", {**base, "iterations": 6}),
        tmp_path,
        loader=load,
        quiet=True,
        resume=True,
    )
    assert more["resumed_from"] == 4
    with pytest.raises(FsbenchError, match="dropout 0.5 asked"):
        run_setting(
            resolve_settings("protonet", "omniglot", {**base, "iterations": 8, "dropout": 0.5}),
            tmp_path,
            loader=load,
            quiet=True,
            resume=True,
        )


def test_measured_maml_path_is_kept_on_resume(tmp_path, monkeypatch):
    from fsbench.methods.maml import MAML

    load = synthetic_loader(size=16, classes=10, per_class=6)
    kw = {**SMALL["maml"], "episodes": 2, "maml_exec": "measure", "checkpoint_every": 2}
    run_setting(
        resolve_settings("maml", "doublemnist", {**kw, "iterations": 2}),
        tmp_path,
        loader=load,
        quiet=True,
    )
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["method"]
    assert first["execution"] in ("loop", "vmap") and set(first["execution_timings"]) == {
        "loop",
        "vmap",
    }
    monkeypatch.setattr(MAML, "measure_execution", lambda *a: pytest.fail("measured again"))
    res = run_setting(
        resolve_settings("maml", "doublemnist", {**kw, "iterations": 4}),
        tmp_path,
        loader=load,
        quiet=True,
        resume=True,
    )
    assert res["maml_exec"] == first["execution"]
    assert res["maml_exec_seconds"] == first["execution_timings"]


def test_progress_without_a_terminal_is_plain_lines(tmp_path, monkeypatch, caplog):
    import logging

    from fsbench.engine import trainer

    monkeypatch.setattr(trainer, "ESTIMATE_AFTER", 0.0)
    monkeypatch.setattr(trainer, "LOG_INTERVAL", 0.0)
    monkeypatch.setattr(trainer, "LONG_CPU_RUN", 0.0)
    load = synthetic_loader(size=16, classes=10, per_class=6)
    settings = resolve_settings("mlp", "mnist1d", {**SMALL["mlp"], "iterations": 5})
    with caplog.at_level(logging.INFO, logger="fsbench"):
        run_setting(settings, tmp_path, loader=load)
    lines = [r.getMessage() for r in caplog.records]
    estimate = [ln for ln in lines if ln.startswith("estimate:")]
    assert len(estimate) == 1 and "--device cuda" in estimate[0]  # a long CPU run: a suggestion
    progress = [ln for ln in lines if ln.startswith("iteration ")]
    assert progress and all("it/s" in ln and "left" in ln for ln in progress)
    assert "iteration 5/5" in progress[-1] and "loss" in progress[-1]
