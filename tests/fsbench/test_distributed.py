"""Data-parallel training (engine/distributed.py) on CPU with gloo and 2 processes.

Each test spawns 2 ranks (torch.multiprocessing, with the variables torchrun would set) that write
what they computed into tmp_path; the checks run here, in the pytest process.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from fsbench.data.store import Episode
from fsbench.engine import distributed, run_setting
from fsbench.engine import run as engine_run
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.resolve import resolve_settings
from fsbench.results import read_metrics
from fsbench.synthetic import synthetic_loader

WORLD = 2
TINY = {
    "maml": ("doublemnist", dict(way=3, shot=1, query=2, train_query=2, meta_batch=4, hidden=4)),
    "protonet": ("omniglot", dict(way=3, shot=1, query=2, train_way=4, hidden=4)),
}


def free_port() -> int:
    """A TCP port nobody listens on now, for MASTER_PORT."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_entry(rank: int, port: int, fn, args: tuple) -> None:
    """One spawned rank: torchrun's environment, one thread, then ``fn(rank, *args)``."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    try:
        fn(rank, *args)
    finally:
        distributed.shutdown()


def spawn(fn, *args) -> None:
    """Run ``fn(rank, *args)`` on WORLD ranks joined in a gloo process group."""
    torch.multiprocessing.spawn(_rank_entry, args=(free_port(), fn, args), nprocs=WORLD)


def tiny_settings(method_name: str, **extra) -> dict:
    dataset, small = TINY[method_name]
    return resolve_settings(method_name, dataset, {**small, **extra})


def tiny_method(method_name: str, settings: dict, store):
    torch.manual_seed(0)  # the same initial weights in every process
    method = build_method(settings, store.example_shape, store.num_classes)
    return method.to(torch.device("cpu"))


def tasks(ep: Episode, index: slice) -> Episode:
    """The tasks ``index`` of a meta-batch."""
    return Episode(
        ep.support_x[index], ep.support_y[index], ep.query_x[index], ep.query_y[index], ep.way,
        ep.shot, ep.query,
    )  # fmt: skip


def same_tasks(method_name: str, method, store) -> list[Episode]:
    """WORLD equal shares of one step's tasks, drawn from one generator (the same on every rank)."""
    gen = torch.Generator().manual_seed(5)
    if method_name == "maml":  # one meta-batch of 4 tasks, 2 per rank
        batch = method.sample_train(store, gen, 0)
        per = batch.support_x.shape[0] // WORLD
        return [tasks(batch, slice(r * per, (r + 1) * per)) for r in range(WORLD)]
    return [method.sample_train(store, gen, 0) for _ in range(WORLD)]  # one episode per rank


def gradients(method) -> list[torch.Tensor]:
    return [p.grad.clone() for p in method.model.parameters()]


def _gradient_rank(rank: int, method_name: str, out: Path) -> None:
    """Each rank back-propagates its share; the averaged gradient goes to out/rank{r}.pt. Rank 0
    also writes the gradient of one process over all the shares (the mean of their losses)."""
    distributed.init_from_env(torch.device("cpu"))
    store = synthetic_loader(size=16, classes=10, per_class=6)("x", "train")
    settings = tiny_settings(method_name)
    method = tiny_method(method_name, settings, store)
    shares = same_tasks(method_name, method, store)
    method.train_loss(shares[rank])[0].backward()
    distributed.all_reduce_mean_grads(method.model)
    torch.save(gradients(method), out / f"rank{rank}.pt")
    if rank == 0:
        single = tiny_method(method_name, settings, store)
        if method_name == "maml":
            whole = Episode(*(torch.cat([getattr(s, k) for s in shares]) for k in (
                "support_x", "support_y", "query_x", "query_y")), shares[0].way, shares[0].shot,
                shares[0].query)  # fmt: skip
            loss = single.train_loss(whole)[0]
        else:
            loss = torch.stack([single.train_loss(s)[0] for s in shares]).mean()
        loss.backward()
        torch.save(gradients(single), out / "single.pt")


@pytest.mark.parametrize("method_name", ["maml", "protonet"])
def test_two_rank_gradient_equals_one_process_gradient(tmp_path, method_name):
    spawn(_gradient_rank, method_name, tmp_path)
    single = torch.load(tmp_path / "single.pt")
    for r in range(WORLD):
        averaged = torch.load(tmp_path / f"rank{r}.pt")
        for a, b in zip(averaged, single, strict=True):
            assert (a - b).abs().max() <= 1e-6


def _run_rank(rank: int, method_name: str, out: Path) -> None:
    """10 iterations straight; 5 then resumed to 10; rank 1 is given another OUT for the first."""
    load = synthetic_loader(size=16, classes=10, per_class=6)
    common = dict(episodes=6, eval_every=5, eval_episodes=4, select="last", checkpoint_every=5)
    s10 = tiny_settings(method_name, iterations=10, **common)
    straight = out / ("straight" if rank == 0 else "rank1-straight")
    res = run_setting(s10, straight, loader=load, quiet=True)
    (out / f"result{rank}.json").write_text(json.dumps(res["accuracy"]))
    s5 = tiny_settings(method_name, iterations=5, **common)
    run_setting(s5, out / "resumed", loader=load, quiet=True)
    run_setting(s10, out / "resumed", loader=load, quiet=True, resume=True)


@pytest.mark.parametrize("method_name", ["maml", "protonet"])
def test_two_ranks_resume_equals_straight_and_only_rank0_writes(tmp_path, method_name):
    spawn(_run_rank, method_name, tmp_path)
    assert not (tmp_path / "rank1-straight").exists()  # rank 1 never created its OUT
    a, b = tmp_path / "straight", tmp_path / "resumed"
    wa = torch.load(a / "checkpoint.pt", weights_only=False)
    wb = torch.load(b / "checkpoint.pt", weights_only=False)
    assert wa["world_size"] == WORLD and len(wa["ranks"]) == WORLD
    for k, v in wa["model"].items():
        assert torch.equal(v, wb["model"][k]), k
    assert read_metrics(a / "metrics.jsonl") == read_metrics(b / "metrics.jsonl")
    ra, rb = (json.loads((p / "result.json").read_text()) for p in (a, b))
    assert ra["accuracy"] == rb["accuracy"] and rb["resumed_from"] == 5
    assert ra["world_size"] == WORLD and ra["settings"]["world_size"] == WORLD
    # every rank returned the gathered test accuracy
    assert json.loads((tmp_path / "result1.json").read_text()) == ra["accuracy"]
    # the test episodes split over 2 ranks and gathered equal one process testing them all
    settings = ra["settings"]
    load = synthetic_loader(size=16, classes=10, per_class=6)
    store = load("x", "test")
    method = tiny_method(method_name, settings, load("x", "train"))
    method.model.load_state_dict(wa["model"])
    res = engine_run.test_episodes(method, store, settings, torch.device("cpu"), "fp32", quiet=True)
    assert res.accuracy == ra["accuracy"] and res.ci95 == ra["ci95"]


def test_meta_batch_must_split_evenly():
    settings = tiny_settings("maml", meta_batch=3)
    store = synthetic_loader(size=16, classes=10, per_class=6)("x", "train")
    method = tiny_method("maml", settings, store)
    with pytest.raises(FsbenchError, match="meta_batch 3 cannot be split over 2 processes"):
        method.split_over_ranks(2)
    method.split_over_ranks(1)
    assert method.rank_tasks == 3


def test_one_process_is_not_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cpu = torch.device("cpu")
    assert distributed.init_from_env(cpu) == cpu and not distributed.active()
    assert distributed.rank_seed(7) == 7 and distributed.is_main()


def test_nproc_errors_are_one_line():
    from cli_errors import assert_one_line_error
    from click.testing import CliRunner
    from fsbench.cli import main

    r = CliRunner().invoke(main, ["run", "maml", "doubled", "--nproc", "0"])
    assert_one_line_error(r, "--nproc")
    r = CliRunner().invoke(main, ["run", "maml", "doubled", "--nproc", "3", "--meta-batch", "4"])
    assert_one_line_error(r, "--meta-batch 4", "3 processes")


def test_nproc_2_runs_torchrun_end_to_end(tiny_doublemnist, tmp_path):
    """``fsbench run --nproc 2`` starts torchrun; rank 0 alone prints the result line."""
    import subprocess
    import sys

    out = tmp_path / "run"
    args = ["run", "maml", "doubled", "--iterations", "2", "--episodes", "4", "--meta-batch", "2"]
    args += ["--way", "3", "--query", "2", "--train-query", "2", "--hidden", "4", "--quiet"]
    args += ["--images-per-class", "25", "--data-root", str(tiny_doublemnist.data_root)]
    args += ["--device", "cpu", "--threads", "1", "--nproc", "2", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    done = subprocess.run(
        [sys.executable, "-m", "fsbench", *args], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(str(out)) == 1, done.stdout  # one result line: rank 0's
    res = json.loads((out / "result.json").read_text())
    assert res["world_size"] == 2 and res["episodes"] == 4
