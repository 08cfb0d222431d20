"""MAML meta-iterations per second of each execution path, each beside its floor, same run.

Paths: the per-task loop (the baseline every ratio is against), vmap, torch.compile, and on CUDA
the loop or vmap captured as CUDA graphs (graph, graph-vmap). Precisions: fp32 (TF32 off), tf32
(fsbench's CUDA default) and bf16 autocast (CUDA only). One meta-iteration is what the trainer
does: sample the meta-batch, forward, meta-backward, Adam step.

Every configuration also gets what it must cost at least: its FLOPs (matmuls and convolutions,
the second-order terms included) and the bytes its operations read and write unfused, counted by
running one step (fsbench.methods.step_cost), and on CUDA the device's measured ceilings (a large
matrix product in each precision, a device-to-device copy), so every figure has a floor beside it.
Rows carry their wall-clock window (unix seconds) so that `nvidia-smi dmon` samples can be matched.

    python benchmarks/bench_maml.py [--hidden 64 --size 64 --way 5 --meta-batch 12 --iters 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from fsbench.engine.device import autocast
from fsbench.methods import build_method
from fsbench.methods.step_cost import count_step
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images

RESULTS = Path(__file__).parent / "results"
PRECISIONS = ("fp32", "tf32", "bf16")


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def cuda_ceilings() -> dict:
    """Measured rates of this GPU: matrix products per precision (TFLOP/s), copy (GB/s)."""
    n = 4096
    out: dict = {"device_name": torch.cuda.get_device_name()}
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    for name, dtype, tf32 in (
        ("fp32", torch.float32, False),
        ("tf32", torch.float32, True),
        ("bf16", torch.bfloat16, True),
    ):
        set_tf32(tf32)
        x, y = a.to(dtype), b.to(dtype)
        for _ in range(3):
            x @ y
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        reps = 20
        for _ in range(reps):
            x @ y
        torch.cuda.synchronize()
        out[f"{name}_tflops"] = round(2 * n**3 * reps / (time.perf_counter() - t0) / 1e12, 1)
    src = torch.empty(2**28, dtype=torch.float32, device="cuda").uniform_()  # 1 GiB
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    out["copy_gbps"] = round(2 * src.nbytes * 10 / (time.perf_counter() - t0) / 1e9, 1)
    set_tf32(True)
    return out


def make_method(device: torch.device, execution: str, args, store):
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
    if args.channels_last:
        method.model.to(memory_format=torch.channels_last)
    return method


def step_fn(method, store, precision: str, device: torch.device):
    """One training meta-iteration as the trainer runs it (fused Adam on CUDA)."""
    opt, _ = method.make_optimizer()
    gen = torch.Generator(device=store.device).manual_seed(0)
    amp = "bf16" if precision == "bf16" else "fp32"

    def step() -> None:
        batch = method.sample_train(store, gen, 0)
        with autocast(device, amp):
            loss, _ = method.train_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_path(device: torch.device, execution: str, precision: str, args, store) -> dict:
    """Seconds per meta-iteration after warm-up, at least --iters and --min-seconds of them."""
    row: dict = {"device": device.type, "execution": execution, "precision": precision}
    if device.type == "cuda":
        set_tf32(precision != "fp32")
        torch.cuda.reset_peak_memory_stats()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    try:
        method = make_method(device, execution, args, store)
        step = step_fn(method, store, precision, device)
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            step()
        sync()
        warm = time.perf_counter() - t0
        start_unix = time.time()
        t0 = time.perf_counter()
        done = 0
        while done < args.iters or time.perf_counter() - t0 < args.min_seconds:
            for _ in range(args.iters):
                step()
            done += args.iters
            sync()
        sec = (time.perf_counter() - t0) / done
        row.update(
            seconds_per_iteration=round(sec, 6),
            iterations_per_second=round(1 / sec, 2),
            timed_iterations=done,
            warmup_seconds=round(warm, 2),
            window_unix=[round(start_unix, 2), round(time.time(), 2)],
        )
        if method.execution_timings:
            row["measured"] = method.execution_timings
        row["chosen"] = method.execution
        if device.type == "cuda":
            row["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception as exc:  # a path that does not run here is reported, not fatal
        row["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    finally:
        if device.type == "cuda":
            set_tf32(True)
    return row


def count_cost(device: torch.device, precision: str, args, store) -> dict:
    """FLOPs, unfused bytes and operations of one meta-step by the loop (the same math as all)."""
    if device.type == "cuda":
        set_tf32(precision != "fp32")
    method = make_method(device, "loop", args, store)
    cost = count_step(step_fn(method, store, precision, device))
    if device.type == "cuda":
        set_tf32(True)
    return cost.as_dict()


def floor(cost: dict, precision: str, ceilings: dict) -> dict:
    """The arithmetic and memory times of a step at the measured ceilings, and the larger."""
    if not ceilings:
        return {}
    flop_s = cost["flops"] / (ceilings[f"{precision}_tflops"] * 1e12)
    byte_s = cost["op_bytes"] / (ceilings["copy_gbps"] * 1e9)
    return {
        "floor_flops_ms": round(flop_s * 1e3, 3),
        "floor_bytes_ms": round(byte_s * 1e3, 3),
        "floor_iterations_per_second": round(1 / max(flop_s, byte_s), 1),
    }


def write(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


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
    p.add_argument("--min-seconds", type=float, default=0.0, help="time at least this long")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--paths", default="loop,vmap,compile")
    p.add_argument("--precisions", default="tf32", help=f"of {PRECISIONS}; CPU runs fp32 only")
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--channels-last", action="store_true", help="channels-last weights")
    p.add_argument("--no-cost", action="store_true", help="skip counting FLOPs and bytes")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_maml.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {
        "benchmark": "maml meta-iterations/s per execution path and precision, beside the floor",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "results": [],
        "costs": [],
    }
    for dev_name in args.devices.split(","):
        if dev_name == "cuda" and not torch.cuda.is_available():
            continue
        device = torch.device(dev_name)
        ceilings: dict = {}
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            ceilings = cuda_ceilings()
            report["cuda"] = ceilings
            print(json.dumps(ceilings), flush=True)
        store = synthetic_images(
            classes=64, per_class=args.shot + args.query + 2, size=args.size, device=dev_name
        )
        precisions = [q for q in args.precisions.split(",") if dev_name == "cuda" or q == "fp32"]
        for precision in precisions or ["fp32"]:
            cost = {} if args.no_cost else count_cost(device, precision, args, store)
            if cost:
                cost = {"device": dev_name, "precision": precision, **cost}
                cost.update(floor(cost, precision, ceilings))
                report["costs"].append(cost)
                print(json.dumps(cost), flush=True)
            base = None
            for execution in args.paths.split(","):
                if execution.startswith("graph") and device.type != "cuda":
                    continue
                row = time_path(device, execution, precision, args, store)
                if execution == "loop" and "seconds_per_iteration" in row:
                    base = row["seconds_per_iteration"]
                if base and "seconds_per_iteration" in row:
                    row["speedup_vs_loop"] = round(base / row["seconds_per_iteration"], 3)
                if cost.get("floor_iterations_per_second") and "iterations_per_second" in row:
                    row["fraction_of_floor"] = round(
                        row["iterations_per_second"] / cost["floor_iterations_per_second"], 3
                    )
                report["results"].append(row)
                print(json.dumps(row), flush=True)
                write(args.out, report)  # after every row: a run stopped by a timeout keeps them
    write(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
