"""LITE's whole-run memory: the peak of a complete `fsbench run protonet` against the shot.

python benchmarks/bench_lite_run.py [--size 128 --shots 10 25 50 100 --baseline-src DIR]
python benchmarks/bench_lite_run.py --device cuda --size 224 --shots 10 100

Each point is one whole process (data load, training with LITE H = 8 and group norm, one
validation, the test episodes), DoubleMNIST generated at --size, 5-way, 5 queries per class. On
the CPU its peak RSS comes from os.wait4; with ``--device cuda`` the process runs the command
in-process and reports ``torch.cuda.max_memory_allocated`` over the whole run as well (the RSS
then is the host side). ``--baseline-src`` points PYTHONPATH at another fsbench source tree (e.g.
the main branch before evaluation was chunked), measured in the same run. Target: peak(100
shots) / peak(10 shots) <= 1.3. Results: results/bench_lite_run_SIZE[_cuda].json or --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SRC = Path(__file__).resolve().parents[1] / "packages"


CUDA_MARK = "bench_lite_run cuda peak bytes:"


def child(argv: list[str]) -> None:
    """Run ``fsbench ARGV`` in this process, then print the CUDA peak of the whole run."""
    import torch
    from fsbench.cli import main as fsbench_main

    fsbench_main(argv, standalone_mode=False)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        print(CUDA_MARK, torch.cuda.max_memory_allocated(), flush=True)


def run_point(
    src: Path, shot: int, size: int, data_root: Path, out: Path, device: str = "cpu"
) -> dict:
    """One whole `fsbench run` in a fresh process: its peak RSS (MiB), its CUDA peak (MiB, on
    --device cuda) and wall seconds."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(src / "fsbench" / "src"), str(SRC / "mdmnist" / "src"), str(SRC / "mnist1d" / "src")]
    )
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "run", "protonet", "doubled"]
    cmd += ["--device", device]
    cmd += ["--image-size", str(size), "--images-per-class", "110", "--way", "5"]
    cmd += ["--shot", str(shot), "--train-shot", str(shot), "--train-way", "5"]
    cmd += ["--query", "5", "--train-query", "5", "--lite-h", "8", "--norm", "group"]
    cmd += ["--iterations", "2", "--eval-every", "2", "--eval-episodes", "1", "--episodes", "2"]
    cmd += ["--select", "last", "--threads", "1", "--quiet", "--overwrite"]
    cmd += ["--data-root", str(data_root), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    output = proc.stdout.read().decode() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"run failed ({status}): {output[-2000:]}")
    row = {
        "shot": shot,
        "peak_mib": round(usage.ru_maxrss / 1024),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if device == "cuda":
        peaks = [ln.split(":")[1] for ln in output.splitlines() if ln.startswith(CUDA_MARK)]
        if not peaks:
            raise SystemExit(f"the run reported no CUDA peak: {output[-2000:]}")
        row["cuda_peak_mib"] = round(int(peaks[-1]) / 2**20)
    return row


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--out", type=Path, help="result JSON (default results/bench_lite_run_...)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--shots", type=int, nargs="+", default=[10, 25, 50, 100])
    ap.add_argument("--baseline-src", type=Path, help="another packages/ tree to compare")
    ap.add_argument("--baseline-shots", type=int, nargs="+", help="default: --shots")
    args = ap.parse_args()
    trees = {"ours": (SRC, args.shots)}
    if args.baseline_src:
        trees["baseline"] = (args.baseline_src, args.baseline_shots or args.shots)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        # generate the data (on the CPU: the data, not the device, is what this run is for)
        run_point(SRC, args.shots[0], args.size, root, Path(tmp) / "warm")
        measure = "cuda_peak_mib" if args.device == "cuda" else "peak_mib"
        for name, (src, shots) in trees.items():
            rows[name] = []
            for s in shots:
                out = Path(tmp) / f"{name}{s}"
                rows[name].append(run_point(src, s, args.size, root, out, args.device))
                print(name, rows[name][-1], flush=True)
            first, last = rows[name][0][measure], rows[name][-1][measure]
            print(f"{name}: {measure} {shots[-1]} / {shots[0]} shots: {last / first:.2f}x")
    result = {
        "size": args.size,
        "device": args.device,
        "measure": measure,
        "lite_h": 8,
        "way": 5,
        "query": 5,
        "rows": rows,
    }
    default = f"bench_lite_run_{args.size}{'_cuda' if args.device == 'cuda' else ''}.json"
    path = args.out or RESULTS / default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
