"""Data-parallel training steps per second on CPU: 1 process vs 2 ranks (torch.distributed, gloo).

MAML keeps its meta-batch (each of W ranks adapts meta_batch / W tasks), so a step is the same
work split W ways. ProtoNets samples one episode per rank, so a 2-rank step trains on 2 episodes.
Configurations: 1 process with 1 thread, 1 process with 2 threads, 2 ranks with 1 thread each.
Synthetic uint8 images (the data path is not what is measured); the fsbench training loop itself
(``engine.trainer.train``: sampling, forward, backward, gradient all-reduce, Adam, checkpoint).

    python benchmarks/bench_distributed.py [--iters 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
from pathlib import Path

import torch
from fsbench.engine import distributed
from fsbench.engine.trainer import train
from fsbench.methods import build_method
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images

RESULTS = Path(__file__).parent / "results"
SETTINGS = {
    "maml": ("doublemnist", dict(way=5, shot=1, train_query=5, meta_batch=4, hidden=32)),
    "protonet": ("omniglot", dict(train_way=20, train_shot=1, train_query=5, hidden=64)),
}


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_main(rank: int, world: int, port: int, threads: int, method_name: str, args) -> None:
    """One rank: train ``args.iters`` steps (after a warm-up run) and report steps/s from rank 0."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    cpu = distributed.init_from_env(torch.device("cpu"))
    dataset, small = SETTINGS[method_name]
    store = synthetic_images(classes=40, per_class=20, size=28)
    rates = []
    for iters in (3, args.iters):  # the first run is a warm-up
        settings = resolve_settings(method_name, dataset, {**small, "iterations": iters})
        torch.manual_seed(0)
        method = build_method(settings, store.example_shape, store.num_classes).to(cpu)
        if world > 1:
            method.split_over_ranks(world)
        with tempfile.TemporaryDirectory() as out:
            done = train(method, store, settings, Path(out), device=cpu, quiet=True)
        rates.append(iters / done.seconds)
    if rank == 0:
        Path(args.report).write_text(json.dumps(rates[-1]))
    distributed.shutdown()


def measure(method_name: str, world: int, threads: int, args) -> float:
    """Steps per second of one configuration (each in fresh processes)."""
    with tempfile.TemporaryDirectory() as tmp:
        args.report = str(Path(tmp) / "rate.json")
        torch.multiprocessing.spawn(
            rank_main, args=(world, free_port(), threads, method_name, args), nprocs=world
        )
        return json.loads(Path(args.report).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--load", default="", help="what else ran on the machine (recorded)")
    args = parser.parse_args()
    rows = []
    for method_name in SETTINGS:
        for world, threads in ((1, 1), (1, 2), (2, 1)):
            rate = measure(method_name, world, threads, args)
            per_step = 1 if method_name == "maml" else world  # ProtoNets: episodes per step
            rows.append(
                {
                    "method": method_name,
                    "processes": world,
                    "threads_per_process": threads,
                    "steps_per_s": round(rate, 3),
                    "episodes_per_step": per_step,
                    "settings": SETTINGS[method_name][1],
                }
            )
            print(json.dumps(rows[-1]))
    report = {
        "benchmark": "bench_distributed",
        "iterations": args.iters,
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "load": args.load,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed_cpu.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
