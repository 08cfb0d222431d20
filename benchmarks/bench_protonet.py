"""Prototypical Networks training and evaluation episodes per second (CPU; CUDA when present).

python benchmarks/bench_protonet.py [--size 28 --hidden 64 --train-way 20 --iters 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from fsbench.methods import build_method
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images

RESULTS = Path(__file__).parent / "results"


def measure(device: torch.device, args) -> dict:
    """Training episodes/s (forward, backward, Adam) and evaluation episodes/s (no grad)."""
    store = synthetic_images(classes=100, per_class=20, size=args.size, device=str(device))
    settings = resolve_settings(
        "protonet",
        "omniglot",
        dict(
            way=args.way,
            shot=args.shot,
            query=args.query,
            train_way=args.train_way,
            train_query=args.train_query,
            hidden=args.hidden,
        ),
    )
    torch.manual_seed(0)
    method = build_method(settings, store.example_shape, store.num_classes).to(device)
    opt, sched = method.make_optimizer()
    gen = torch.Generator(device=store.device).manual_seed(0)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        loss, _ = method.train_loss(method.sample_train(store, gen, 0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        train_step()
    sync()
    train_s = (time.perf_counter() - t0) / args.iters
    method.evaluate(store, gen, 2)
    t0 = time.perf_counter()
    method.evaluate(store, gen, args.eval_episodes)
    sync()
    eval_s = (time.perf_counter() - t0) / args.eval_episodes
    return {
        "device": str(device),
        "train_episodes_per_second": round(1 / train_s, 2),
        "eval_episodes_per_second": round(1 / eval_s, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run, print, and write benchmarks/results/bench_protonet.json."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--way", type=int, default=5)
    p.add_argument("--shot", type=int, default=1)
    p.add_argument("--query", type=int, default=15)
    p.add_argument("--train-way", type=int, default=60)
    p.add_argument("--train-query", type=int, default=5)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_protonet.json")
    p.add_argument("--devices", default="cpu,cuda", help="those present are measured")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {
        "benchmark": "protonet episodes/s",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "results": [],
    }
    devices = [
        d
        for d in args.devices.split(",")
        if d == "cpu" or (d == "cuda" and torch.cuda.is_available())
    ]
    for dev in devices:
        row = measure(torch.device(dev), args)
        report["results"].append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
