"""MAML meta-iterations per second of each execution path (loop, vmap, torch.compile), same run.

Ratios are against the plain per-task loop measured in the same process. CPU always; CUDA too
when a GPU is present. Synthetic uint8 images (the data path is not what is measured).

    python benchmarks/bench_maml.py [--hidden 32 --size 64 --meta-batch 12 --iters 3]
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
from fsbench.presets import resolve_settings
from fsbench.synthetic import synthetic_images

RESULTS = Path(__file__).parent / "results"


def time_path(device: torch.device, execution: str, args, store) -> dict:
    """Mean seconds per meta-iteration (sample + forward + meta-backward + Adam step)."""
    settings = resolve_settings(
        args.method,
        "doublemnist",
        dict(
            way=args.way,
            shot=args.shot,
            query=args.query,
            meta_batch=args.meta_batch,
            hidden=args.hidden,
            maml_exec=execution,
        ),
    )
    torch.manual_seed(0)
    method = build_method(settings, store.example_shape, store.num_classes).to(device)
    opt, _ = method.make_optimizer()
    gen = torch.Generator(device=store.device).manual_seed(0)

    def step() -> None:
        loss, _ = method.train_loss(method.sample_train(store, gen, 0))
        opt.zero_grad()
        loss.backward()
        opt.step()

    try:
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.iters):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        sec = (time.perf_counter() - t0) / args.iters
    except Exception as exc:  # a path that does not run here is reported, not fatal
        return {
            "execution": execution,
            "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300],
        }
    return {
        "execution": execution,
        "seconds_per_iteration": round(sec, 4),
        "iterations_per_second": round(1 / sec, 3),
        "warmup_seconds": round(warm, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a table, write benchmarks/results/bench_maml.json."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="maml", choices=["maml", "fomaml"])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--way", type=int, default=5)
    p.add_argument("--shot", type=int, default=1)
    p.add_argument("--query", type=int, default=15)
    p.add_argument("--meta-batch", type=int, default=12)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--paths", default="loop,vmap,compile")
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_maml.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {
        "benchmark": "maml meta-iterations/s per execution path",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "results": [],
    }
    for dev_name in args.devices.split(","):
        if dev_name == "cuda" and not torch.cuda.is_available():
            continue
        device = torch.device(dev_name)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        store = synthetic_images(
            classes=64, per_class=args.shot + args.query + 2, size=args.size, device=dev_name
        )
        base = None
        for execution in args.paths.split(","):
            row = {"device": dev_name, **time_path(device, execution, args, store)}
            if execution == "loop" and "seconds_per_iteration" in row:
                base = row["seconds_per_iteration"]
            if base and "seconds_per_iteration" in row:
                row["speedup_vs_loop"] = round(base / row["seconds_per_iteration"], 3)
            report["results"].append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
