"""LITE's whole-run memory: peak RSS of a complete `fsbench run protonet` against the shot.

python benchmarks/bench_lite_run.py [--size 128 --shots 10 25 50 100 --baseline-src DIR]

Each point is one whole process (data load, training with LITE H = 8 and group norm, one
validation, the test episodes), DoubleMNIST generated at --size, 5-way, 5 queries per class; its
peak RSS comes from os.wait4. ``--baseline-src`` points PYTHONPATH at another fsbench source tree
(e.g. the main branch before evaluation was chunked), measured in the same run. Target: peak(100
shots) / peak(10 shots) <= 1.3. Results: results/bench_lite_run.json.
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


def run_point(src: Path, shot: int, size: int, data_root: Path, out: Path) -> dict:
    """One whole `fsbench run` in a fresh process; its peak RSS (MiB) and wall seconds."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(src / "fsbench" / "src"), str(SRC / "mdmnist" / "src"), str(SRC / "mnist1d" / "src")]
    )
    cmd = [sys.executable, "-m", "fsbench", "run", "protonet", "doubled"]
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
    return {
        "shot": shot,
        "peak_mib": round(usage.ru_maxrss / 1024),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
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
        run_point(SRC, args.shots[0], args.size, root, Path(tmp) / "warm")  # generate the data
        for name, (src, shots) in trees.items():
            rows[name] = []
            for s in shots:
                rows[name].append(run_point(src, s, args.size, root, Path(tmp) / f"{name}{s}"))
                print(name, rows[name][-1], flush=True)
            first, last = rows[name][0]["peak_mib"], rows[name][-1]["peak_mib"]
            print(f"{name}: {shots[-1]} / {shots[0]} shots: {last / first:.2f}x", flush=True)
    result = {"size": args.size, "lite_h": 8, "way": 5, "query": 5, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"bench_lite_run_{args.size}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
