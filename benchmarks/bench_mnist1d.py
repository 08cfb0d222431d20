"""Speed of mnist1d's make_dataset against the reference mnist1d==0.0.2.post1, measured in the same run.

    python benchmarks/bench_mnist1d.py --reference-python /path/to/ref-venv/bin/python [--samples 50000] [--big 1000000]

Both packages are importable as ``mnist1d``, so the reference runs in a subprocess with its own
interpreter (timed inside that process, generation only) and ours runs here. Prints samples/s of both
and their ratio at ``--samples``, ours alone at ``--big``, and writes benchmarks/results/mnist1d.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "mnist1d.json"

# Runs under the reference interpreter: time make_dataset alone and print the seconds as JSON.
_REFERENCE_TIMER = """
import json, sys, time
from mnist1d.data import get_dataset_args, make_dataset
args = get_dataset_args()
args.num_samples = int(sys.argv[1])
start, cpu = time.perf_counter(), time.process_time()
data = make_dataset(args)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "samples": len(data["y"]) + len(data["y_test"])}))
"""


def time_reference(python: str, samples: int) -> dict[str, float]:
    """Seconds the reference needs for ``samples`` samples, measured in its own interpreter."""
    with (
        tempfile.TemporaryDirectory() as tmp
    ):  # run outside the repo so our mnist1d is not importable
        out = subprocess.run(
            [python, "-c", _REFERENCE_TIMER, str(samples)],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_ours(samples: int, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` wall and CPU seconds (both threads) for our make_dataset at ``samples`` samples."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = samples
    best, best_cpu = float("inf"), float("inf")
    count = 0
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        data = make_dataset(args)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        count = len(data["y"]) + len(data["y_test"])
        del data
    return {"seconds": best, "cpu_seconds": best_cpu, "samples": count}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a summary and write the JSON; returns the results dict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference-python", required=True, help="python of a venv holding mnist1d==0.0.2.post1"
    )
    parser.add_argument(
        "--samples", type=int, default=50_000, help="samples for the head-to-head run"
    )
    parser.add_argument(
        "--big", type=int, default=1_000_000, help="samples for our large run (0 skips it)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="where to write the JSON results"
    )
    opts = parser.parse_args(argv)

    ref = time_reference(opts.reference_python, opts.samples)
    ours = time_ours(opts.samples)
    ref_rate = ref["samples"] / ref["seconds"]
    our_rate = ours["samples"] / ours["seconds"]
    results = {
        "benchmark": "mnist1d.make_dataset, default args",
        "samples": opts.samples,
        "reference": {
            "seconds": ref["seconds"],
            "cpu_seconds": ref["cpu_seconds"],
            "samples_per_s": ref_rate,
        },
        "ours": {
            "seconds": ours["seconds"],
            "cpu_seconds": ours["cpu_seconds"],
            "samples_per_s": our_rate,
        },
        "speedup": our_rate / ref_rate,
        "cpu_time_ratio": ref["cpu_seconds"] / ours["cpu_seconds"],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    print(f"reference: {ref_rate:12,.0f} samples/s ({ref['seconds']:.2f} s for {opts.samples:,})")
    print(
        f"ours:      {our_rate:12,.0f} samples/s ({ours['seconds']:.3f} s for {opts.samples:,}, best of 3)"
    )
    print(
        f"speed-up:  {results['speedup']:.1f}x wall clock, {results['cpu_time_ratio']:.1f}x in CPU time"
    )
    if opts.big:
        big = time_ours(opts.big, repeats=1)
        results["big"] = {
            "samples": opts.big,
            "seconds": big["seconds"],
            "cpu_seconds": big["cpu_seconds"],
            "samples_per_s": big["samples"] / big["seconds"],
        }
        print(
            f"ours at {opts.big:,}: {results['big']['samples_per_s']:,.0f} samples/s ({big['seconds']:.2f} s)"
        )

    opts.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = opts.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, opts.output)
    print(f"wrote {opts.output}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
