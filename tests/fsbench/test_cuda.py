"""Every CUDA path of fsbench: tiny runs of every method, CPU/CUDA agreement, resume, precision,
MAML's execution paths and CUDA graphs, episode sampling, predict.

Tests take a ``device``: the CPU variant runs everywhere (so the test's own logic is checked on
machines without a GPU), the CUDA variant carries the ``cuda`` marker and skips cleanly without
one. ``pytest -m cuda`` runs the CUDA variants alone (benchmarks/gpu_run.sh does).

Tolerances (relative error ||x - ref|| / ||ref|| against a float64 CPU reference of the same
weights and episode): fp32 1e-4 for losses and 1e-3 for meta-gradients; TF32 (the CUDA default
here, 10-bit mantissa products) 1e-2 and 5e-2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine import run_setting
from fsbench.engine.trainer import train
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.methods.maml_graph import GraphedMetaBatch, MetaBatchLoss
from fsbench.methods.protonet import prototypical_logits
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images, synthetic_loader

HAS_CUDA = torch.cuda.is_available()
NEEDS_CUDA = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
CUDA_ONLY = [pytest.mark.cuda, NEEDS_CUDA]
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA_ONLY)]
LOAD = synthetic_loader(size=16, classes=12, per_class=10)

# The smallest settings each method trains with (method, dataset, overrides).
TINY = {
    "maml": ("doublemnist", dict(way=3, shot=1, query=2, meta_batch=2, hidden=4)),
    "fomaml": ("doublemnist", dict(way=3, shot=1, query=2, meta_batch=2, hidden=4)),
    "protonet": ("omniglot", dict(way=3, shot=1, query=2, train_way=4, hidden=4)),
    "protonet-lite": (
        "omniglot",
        dict(way=3, shot=3, query=2, train_way=3, hidden=8, norm="group", lite_h=2),
    ),
    "magnet": (
        "mnist-super",
        dict(way=3, shot=2, query=2, hidden=4, modes=2, clusters_per_batch=4, images_per_cluster=2),
    ),
    "repmet": (
        "mnist-super",
        dict(
            way=3,
            shot=2,
            query=2,
            hidden=4,
            modes=2,
            clusters_per_batch=4,
            images_per_cluster=2,
            embedding_dim=8,
        ),
    ),
    "logreg": ("mnist1d", dict(batch_size=16)),
    "mlp": ("mnist1d", dict(batch_size=16)),
    "cnn": ("mnist1d", dict(batch_size=16)),
    "gru": ("mnist1d", dict(batch_size=16)),
}
COMMON = {"iterations": 3, "episodes": 4, "eval_every": 0, "select": "last", "checkpoint_every": 0}


def tiny_settings(name: str, **extra) -> dict:
    dataset, kw = TINY[name]
    method = "protonet" if name == "protonet-lite" else name
    return resolve_settings(method, dataset, {**kw, **COMMON, **extra})


@pytest.fixture
def deterministic_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuDNN's deterministic algorithms, no benchmarking: two CUDA runs of the same kernels are
    bitwise equal (otherwise Adam turns the noise of atomics in zero-gradient terms, such as the
    conv biases before batch norm, into steps of size lr)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref||, in float64 on the CPU."""
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    return float((x - ref).norm() / ref.norm().clamp_min(1e-30))


# ---- every method, a tiny run ------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(TINY))
def test_every_method_tiny_run(tmp_path, device, name):
    res = run_setting(tiny_settings(name), tmp_path, loader=LOAD, device=device, quiet=True)
    assert res["device"].startswith(device)
    assert res["iterations"] == 3 and 0.0 <= res["accuracy"] <= 1.0
    weights = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


@pytest.mark.parametrize("device", DEVICES)
def test_pretrain_then_mtl(tmp_path, device):
    episode = {"way": 3, "shot": 1, "query": 2, "episodes": 4, "eval_every": 0, "select": "last"}
    pre = resolve_settings(
        "pretrain",
        "doublemnist",
        {**episode, "widths": [4, 8, 8, 16], "epochs": 1, "batch_size": 32, "test_inner_steps": 2},
    )
    done = run_setting(pre, tmp_path / "pre", loader=LOAD, device=device, quiet=True)
    assert done["device"].startswith(device)
    mtl = resolve_settings(
        "mtl",
        "doublemnist",
        {
            **episode,
            "pretrained": str(tmp_path / "pre"),
            "iterations": 2,
            "inner_steps": 2,
            "test_inner_steps": 2,
        },
    )
    res = run_setting(mtl, tmp_path / "mtl", loader=LOAD, device=device, quiet=True)
    assert res["device"].startswith(device) and 0.0 <= res["accuracy"] <= 1.0


# ---- the same weights and episode: the same loss on CPU and CUDA -------------------------------


def _loss_and_grads(method, episode) -> tuple[torch.Tensor, list[torch.Tensor]]:
    method.model.zero_grad(set_to_none=True)
    loss, _ = method.train_loss(episode)
    loss.backward()
    return loss.detach(), [p.grad.detach().clone() for p in method.model.parameters()]


def _episode_to(ep, device, dtype):
    from dataclasses import replace

    return replace(
        ep,
        support_x=ep.support_x.to(device, dtype),
        query_x=ep.query_x.to(device, dtype),
        support_y=ep.support_y.to(device),
        query_y=ep.query_y.to(device),
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tf32", [False, True], ids=["fp32", "tf32"])
@pytest.mark.parametrize("name", ["maml", "protonet"])
def test_same_weights_same_loss_as_float64_cpu(device, tf32, name):
    store = synthetic_images(classes=10, per_class=10, size=16)
    settings = tiny_settings(name, hidden=8, maml_exec="loop")
    torch.manual_seed(0)
    ref = build_method(settings, store.example_shape, store.num_classes)
    episode = ref.sample_train(store, torch.Generator().manual_seed(3), 0)
    ours = build_method(settings, store.example_shape, store.num_classes)
    ours.model.load_state_dict(ref.model.state_dict())
    ref.model.double()
    ours.to(torch.device(device))
    ref_loss, ref_grads = _loss_and_grads(ref, _episode_to(episode, "cpu", torch.float64))
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        loss, grads = _loss_and_grads(ours, _episode_to(episode, device, torch.float32))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    loss_tol, grad_tol = (1e-2, 5e-2) if tf32 and device == "cuda" else (1e-4, 1e-3)
    assert rel_err(loss, ref_loss) < loss_tol
    assert (
        rel_err(
            torch.cat([g.flatten() for g in grads]), torch.cat([g.flatten() for g in ref_grads])
        )
        < grad_tol
    )


# ---- resume on the device equals a straight run ------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["maml", "protonet"])
def test_resume_equals_straight_run(tmp_path, device, name, deterministic_cuda):
    store = LOAD(TINY[name][0], "train", device=device)
    dev = torch.device(device)
    exec_ = {"maml_exec": "graph" if device == "cuda" else "loop"} if name == "maml" else {}

    def fresh(iterations: int):
        s = tiny_settings(name, iterations=iterations, checkpoint_every=3, **exec_)
        torch.manual_seed(0)
        return s, build_method(s, store.example_shape, store.num_classes).to(dev)

    (tmp_path / "straight").mkdir()
    (tmp_path / "resumed").mkdir()
    s6, straight = fresh(6)
    train(straight, store, s6, tmp_path / "straight", device=dev, quiet=True)
    s3, first = fresh(3)
    train(first, store, s3, tmp_path / "resumed", device=dev, quiet=True)
    s6b, second = fresh(6)
    out = train(second, store, s6b, tmp_path / "resumed", device=dev, resume=True, quiet=True)
    assert out.resumed_from == 3 and out.iteration == 6
    for (key, a), b in zip(
        straight.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)


# ---- mixed precision -----------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_protonet_distances_stay_float32_under_autocast(device):
    support = torch.randn(6, 32, device=device) * 30
    labels = torch.arange(3, device=device).repeat_interleave(2)
    query = torch.randn(5, 32, device=device) * 30
    with torch.autocast(device, dtype=torch.bfloat16):
        under = prototypical_logits(support.bfloat16(), labels, query.bfloat16(), 3)
    assert under.dtype == torch.float32
    exact = prototypical_logits(support.bfloat16().float(), labels, query.bfloat16().float(), 3)
    torch.testing.assert_close(under, exact)


@pytest.mark.cuda
@NEEDS_CUDA
@pytest.mark.parametrize("name", ["maml", "protonet", "magnet"])
def test_bf16_runs(tmp_path, name):
    extra = {"maml_exec": "graph"} if name == "maml" else {}
    settings = tiny_settings(name, precision="bf16", **extra)
    res = run_setting(settings, tmp_path, loader=LOAD, device="cuda", quiet=True)
    assert res["precision"] == "bf16" and 0.0 <= res["accuracy"] <= 1.0


# ---- MAML's execution paths ---------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_maml_exec_measure_records_its_choice(tmp_path, device):
    settings = tiny_settings("maml", maml_exec="measure", iterations=2)
    res = run_setting(settings, tmp_path, loader=LOAD, device=device, quiet=True)
    timings = res["maml_exec_seconds"]
    expected = {"loop", "vmap"} | ({"graph", "graph-vmap"} if device == "cuda" else set())
    assert set(timings) == expected and all(t > 0 for t in timings.values())
    assert res["maml_exec"] == min(timings, key=timings.get)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["maml_exec"] == res["maml_exec"]


def test_measure_leaves_out_a_graph_path_that_cannot_be_captured(monkeypatch, caplog):
    """Here a graph cannot be captured (no CUDA): measure warns and keeps the eager paths."""
    import fsbench.methods.maml as maml_module

    monkeypatch.setattr(maml_module, "measured_paths", lambda device: ("loop", "graph", "vmap"))
    store = synthetic_images(classes=10, per_class=10, size=16)
    method = build_method(tiny_settings("maml", maml_exec="measure"), store.example_shape, 10)
    episode = method.sample_train(store, torch.Generator().manual_seed(0), 0)
    chosen = method.measure_execution(episode, repeats=1)
    assert set(method.execution_timings) == {"loop", "vmap"} and chosen in ("loop", "vmap")
    assert "graph left out" in caplog.text and "CUDA" in caplog.text
    loss, _ = method.train_loss(episode)  # trains on by the chosen path
    assert torch.isfinite(loss)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("execution", ["loop", "vmap"])
@pytest.mark.parametrize("name", ["maml", "fomaml"])
def test_graphed_meta_batch_equals_the_eager_path(device, execution, name):
    """On CUDA the captured graphs; on CPU the module they capture: the eager path's loss and
    meta-gradient on three different meta-batches (each replay reads its new inputs)."""
    store = synthetic_images(classes=10, per_class=10, size=16, device=device)
    torch.manual_seed(0)
    # 5-way, 3 queries: with 3 support images batch norm's statistics at the last 1x1 feature
    # map are so ill-conditioned that loop and vmap differ by 2e-3 in float32 (on the CPU too)
    settings = tiny_settings(name, way=5, query=3, hidden=8, meta_batch=3, inner_steps=2)
    method = build_method(settings, store.example_shape, store.num_classes).to(torch.device(device))
    params = list(method.model.parameters())
    graphed = GraphedMetaBatch(method, execution, 2) if device == "cuda" else None
    module = MetaBatchLoss(method, execution, 2)
    gen = torch.Generator(device=device).manual_seed(4)
    for _ in range(3):
        ep = method.sample_train(store, gen, 0)
        losses, accs = method.run_tasks(dict(method.model.named_parameters()), ep, 2, "loop")
        want = torch.autograd.grad(losses.mean(), params)
        loss, acc = graphed(ep) if graphed else module(ep.support_x, ep.support_y, ep.query_x,
                                                       ep.query_y)  # fmt: skip
        got = torch.autograd.grad(loss, params)
        torch.testing.assert_close(loss, losses.mean(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(acc, accs.mean())
        flat = torch.cat([g.flatten() for g in got])
        assert rel_err(flat, torch.cat([g.flatten() for g in want])) < 1e-4


@pytest.mark.parametrize("device", DEVICES)
def test_graph_path_needs_cuda_and_trains_like_the_loop(tmp_path, device, deterministic_cuda):
    if device == "cpu":
        settings = tiny_settings("maml", maml_exec="graph")
        with pytest.raises(FsbenchError, match="--maml-exec graph captures CUDA graphs"):
            run_setting(settings, tmp_path / "x", loader=LOAD, device="cpu", quiet=True)
        assert not (tmp_path / "x" / "result.json").exists()
        return
    store = LOAD("doublemnist", "train", device="cuda")
    trained = {}
    for execution in ("loop", "graph"):
        settings = tiny_settings("maml", maml_exec=execution, iterations=5)
        torch.manual_seed(0)
        method = build_method(settings, store.example_shape, store.num_classes)
        method.to(torch.device("cuda"))
        (tmp_path / execution).mkdir()
        train(
            method, store, settings, tmp_path / execution, device=torch.device("cuda"), quiet=True
        )
        assert method.execution == execution
        trained[execution] = method.model.state_dict()
    for key, a in trained["loop"].items():
        torch.testing.assert_close(a, trained["graph"][key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.cuda
@NEEDS_CUDA
def test_graphed_training_step_never_waits_for_the_host():
    """After the capture: sampling, the graphed meta-step and fused Adam, no synchronisation."""
    store = synthetic_images(classes=10, per_class=10, size=16, device="cuda")
    settings = tiny_settings("maml", hidden=8, meta_batch=3, maml_exec="graph")
    method = build_method(settings, store.example_shape, store.num_classes).to(torch.device("cuda"))
    opt, _ = method.make_optimizer()
    gen = torch.Generator(device="cuda").manual_seed(0)

    def step() -> torch.Tensor:
        loss, _ = method.train_loss(method.sample_train(store, gen, 0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    step()  # capture
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert opt.defaults.get("fused")


# ---- episodes sampled on the device --------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_episode_sampling_on_the_device_draws_valid_episodes(device):
    store = synthetic_images(classes=9, per_class=7, size=8, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    way, shot, query, batch = 4, 2, 3, 50
    idx, classes = store.sample_indices(gen, way, shot, query, batch)
    assert idx.device.type == device and idx.shape == (batch, way, shot + query)
    for b in range(batch):
        assert len(set(classes[b].tolist())) == way  # distinct classes
        assert len(set(idx[b].flatten().tolist())) == way * (shot + query)  # distinct examples
        assert torch.equal(store.labels[idx[b]], classes[b].unsqueeze(1).expand(-1, shot + query))
    ep = store.sample_episode(
        torch.Generator(device=device).manual_seed(0), way, shot, query, batch
    )
    assert ep.support_x.device.type == device and ep.support_x.dtype == torch.float32
    expected = store.to_float(store.data[idx[:, :, :shot].reshape(-1)])
    torch.testing.assert_close(ep.support_x.reshape(expected.shape), expected)
    assert torch.equal(ep.query_y[0], torch.arange(way, device=device).repeat_interleave(query))
    counts = torch.bincount(classes.flatten().cpu(), minlength=store.num_classes)
    assert (counts > 0).all()  # 200 draws of 4 of 9 classes reach every class


# ---- fsbench predict on the device ---------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_predict_on_the_device_equals_cpu(tmp_path, device):
    from test_data_folder import split_folder

    folder = split_folder(tmp_path, per_class=8)
    run_dir = tmp_path / "run"
    r = CliRunner().invoke(
        main,
        ["run", "protonet", "folder", "--dataset-dir", str(folder), "--iterations", "2",
         "--hidden", "4", "--episodes", "2", "--query", "2", "--train-query", "2",
         "--eval-every", "0", "--select", "last", "--data-root", str(tmp_path / "root"),
         "--out", str(run_dir), "--device", device, "--quiet"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    support = folder / "train"
    outputs = {}
    for where in ("cpu", device):
        out = tmp_path / f"p-{where}.json"
        r = CliRunner().invoke(
            main,
            ["predict", str(run_dir), "--support", str(support), "--query", str(folder / "train"),
             "--out", str(out), "--device", where, "--quiet", "--overwrite"],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        outputs[where] = json.loads(Path(out).read_text())["predictions"]
    cpu, dev = outputs["cpu"], outputs[device]
    assert [p["predicted_class"] for p in cpu] == [p["predicted_class"] for p in dev]
    assert len(cpu) == 6 * 8
