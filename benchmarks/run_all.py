"""Run every benchmark in this folder in turn; each prints its own ratio against a baseline.

Usage: python benchmarks/run_all.py --reference-python PATH [--only NAME ...]
The reference mnist1d shares our package's import name, so it runs from its own interpreter.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parent
# Benchmarks in the order they run; mnist1d's also needs the reference interpreter.
BENCHMARKS = ["mnist1d", "mdmnist", "sampling", "maml", "protonet", "lite"]


def _load(name: str):
    """Import benchmarks/bench_NAME.py as a module."""
    path = HERE / f"bench_{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--reference-python", required=True, help="python with mnist1d==0.0.2.post1"
    )
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=BENCHMARKS)
    args = parser.parse_args(argv)
    for name in args.only:
        print(f"\n=== benchmarks/bench_{name}.py", flush=True)
        bench_args = ["--reference-python", args.reference_python] if name == "mnist1d" else []
        _load(name).main(bench_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
