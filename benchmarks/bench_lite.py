"""LITE vs full back-propagation: peak memory and step time against the support-set size.

python benchmarks/bench_lite.py [--size 84 --hidden 64 --shots 10 25 50 100 --lite-h 8]

Each (mode, shot) point trains ProtoNets (Conv-4, group norm, 5-way, 5 queries per class) for a
few steps in a fresh process, so that its peak RSS (CPU) is its own; on CUDA the peak is
``torch.cuda.max_memory_allocated``. The ratio full / LITE is printed for every support size,
and the memory curve is drawn into results/bench_lite.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from fsbench.methods import build_method
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images

RESULTS = Path(__file__).parent / "results"
WAY, QUERY = 5, 5


def _rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_point(device: str, shot: int, lite_h: int, size: int, hidden: int, steps: int) -> dict:
    """Train ``steps`` ProtoNets episodes; seconds per step and peak memory above the data."""
    dev = torch.device(device)
    store = synthetic_images(classes=WAY * 2, per_class=shot + QUERY, size=size, device=device)
    settings = resolve_settings(
        "protonet",
        "omniglot",
        dict(way=WAY, train_way=WAY, shot=shot, query=QUERY, hidden=hidden, norm="group"),
    )
    settings["lite_h"] = lite_h
    torch.manual_seed(0)
    method = build_method(settings, store.example_shape, store.num_classes).to(dev)
    opt, _ = method.make_optimizer()
    gen = torch.Generator(device=store.device).manual_seed(0)

    def step() -> None:
        loss, _ = method.train_loss(method.sample_train(store, gen, 0))
        opt.zero_grad()
        loss.backward()
        opt.step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    before = _rss_mib()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    step()  # warm-up (allocator, Adam state)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - t0) / steps
    if dev.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _rss_mib() - before
    return {
        "device": device,
        "shot": shot,
        "support_images": WAY * shot,
        "mode": f"lite-h{lite_h}" if lite_h else "full",
        "seconds_per_step": round(seconds, 4),
        "peak_mib_above_data": round(peak, 1),
    }


def _child(args) -> dict:
    """One point in a fresh interpreter (its peak RSS is not the earlier points')."""
    cmd = [
        sys.executable,
        __file__,
        "--point",
        args.device_now,
        str(args.shot_now),
        str(args.h_now),
        "--size",
        str(args.size),
        "--hidden",
        str(args.hidden),
        "--steps",
        str(args.steps),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    """Peak memory against support images, one line per mode and device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in sorted({(r["device"], r["mode"]) for r in rows}):
        pts = [r for r in rows if (r["device"], r["mode"]) == key]
        ax.plot(
            [r["support_images"] for r in pts],
            [r["peak_mib_above_data"] for r in pts],
            marker="o",
            label=f"{key[1]} ({key[0]})",
        )
    ax.set_xlabel("support images per task (5-way)")
    ax.set_ylabel("peak memory above the data (MiB)")
    ax.set_title("ProtoNets training step: LITE vs full back-propagation", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Run every point, print the full / LITE ratios, write results/bench_lite.{json,png}."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=84, help="image side (224 needs a GPU for full)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--shots", type=int, nargs="+", default=[10, 25, 50, 100])
    p.add_argument("--lite-h", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_lite.json")
    p.add_argument("--devices", default="cpu,cuda", help="those present are measured")
    p.add_argument("--point", nargs=3, metavar=("DEVICE", "SHOT", "H"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.point:
        device, shot, h = args.point[0], int(args.point[1]), int(args.point[2])
        row = measure_point(device, shot, h, args.size, args.hidden, args.steps)
        print(json.dumps(row), flush=True)
        return row
    report = {
        "benchmark": "LITE vs full back-propagation, ProtoNets training step",
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "point", "devices")},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": [],
        "full_over_lite": [],
    }
    devices = [
        d
        for d in args.devices.split(",")
        if d == "cpu" or (d == "cuda" and torch.cuda.is_available())
    ]
    for device in devices:
        for shot in args.shots:
            pair = {}
            for h in (0, args.lite_h):
                if h > WAY * shot:
                    continue
                args.device_now, args.shot_now, args.h_now = device, shot, h
                row = _child(args)
                report["results"].append(row)
                print(json.dumps(row), flush=True)
                pair[h] = row
            if len(pair) == 2:
                full, lite = pair[0], pair[args.lite_h]
                ratio = {
                    "device": device,
                    "support_images": WAY * shot,
                    "memory": round(full["peak_mib_above_data"] / lite["peak_mib_above_data"], 2),
                    "time": round(full["seconds_per_step"] / lite["seconds_per_step"], 2),
                }
                report["full_over_lite"].append(ratio)
                print(
                    f"{device} {WAY * shot} support images: full / LITE memory "
                    f"{ratio['memory']}x, step time {ratio['time']}x",
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report["results"], args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
