"""mdmnist native HDF5: random single-image reads and whole-process writing, old layout vs new.

    python benchmarks/bench_hdf5_random.py [--per-class 1000] [--reads 2000] [--workers 2]

Both layouts are made in the same run on the same machine: the old one (one chunk per class,
``CHUNK_IMAGES`` unlimited, up to 8 MiB) and the new one (at most 32 images / 256 KiB per chunk).

1. Random access: TripleMNIST (84x84, seed 123) ``train.h5`` in each layout; the mean time of
   ``images[c, k]`` for random (c, k) with h5py's default chunk cache (1 MiB), a fresh file handle,
   and, for comparison, with a 1 GiB cache.
2. Writing: the whole DoubleMNIST (100,000 images, 64x64) written by the ``mdmnist`` CLI in a fresh
   process (``--format hdf5 --quiet``, start-up and MNIST loading included; the median of
   ``--repeats`` runs), against the reference's per-image loop (bench_mdmnist.reference_loop) timed
   on its first 2,000 images in this process.

Results go to benchmarks/results/hdf5_random.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "hdf5_random.json"
OLD_LAYOUT = {"CHUNK_IMAGES": 10**9, "CHUNK_BYTES": 8 << 20}  # one class per chunk, as before
CLI = (
    "import sys; import mdmnist.writers.hdf5 as h; h.CHUNK_IMAGES, h.CHUNK_BYTES = "
    "int(sys.argv[1]), int(sys.argv[2]); from mdmnist.cli import main; sys.argv[1:3] = []; main()"
)


def _layouts() -> dict[str, dict[str, int]]:
    """Chunk settings of the old and the new layout."""
    from mdmnist.writers import hdf5

    return {
        "old_one_chunk_per_class": OLD_LAYOUT,
        "new": {"CHUNK_IMAGES": hdf5.CHUNK_IMAGES, "CHUNK_BYTES": hdf5.CHUNK_BYTES},
    }


def _cli_seconds(layout: dict[str, int], out: Path, args: list[str], repeats: int = 1) -> float:
    """Median wall time of REPEATS whole ``mdmnist`` processes writing with LAYOUT's chunks."""
    chunk = [str(layout["CHUNK_IMAGES"]), str(layout["CHUNK_BYTES"])]
    command = [sys.executable, "-c", CLI, *chunk, *args, "--output", str(out), "--quiet"]
    times = []
    for _ in range(repeats):
        if out.exists():
            shutil.rmtree(out)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _random_reads(path: Path, reads: int, cache_bytes: int | None) -> dict:
    """Mean milliseconds per random single image (fresh handle; default cache when None)."""
    import h5py

    options = {} if cache_bytes is None else {"rdcc_nbytes": cache_bytes, "rdcc_nslots": 100_003}
    rng = np.random.default_rng(0)
    with h5py.File(path, "r", **options) as f:
        images = f["images"]
        classes = rng.integers(0, images.shape[0], reads).tolist()
        ks = rng.integers(0, images.shape[1], reads).tolist()
        start = time.perf_counter()
        for c, k in zip(classes, ks, strict=True):
            images[c, k]
        seconds = time.perf_counter() - start
        chunks = list(images.chunks)
    return {"ms_per_image": round(seconds / reads * 1e3, 3), "chunks": chunks}


def _reference_rate(scratch: Path, images: int) -> float:
    """Images per second of the reference's per-image loop (DoubleMNIST, imageio)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_mdmnist import reference_loop

    start = time.perf_counter()
    done = reference_loop(scratch / "reference", 2, (64, 64), 1000, images)
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    """Run both measurements for both layouts; print them and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=1000, help="TripleMNIST images per class")
    parser.add_argument("--reads", type=int, default=2000, help="random single-image reads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reference-images", type=int, default=2000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="DoubleMNIST CLI runs per layout (median)"
    )
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args, _unknown = parser.parse_known_args(argv)
    report: dict = {
        "benchmark": "mdmnist HDF5 layout: random reads (TripleMNIST) and CLI writing (DoubleMNIST)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "layouts": {},
    }
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix="bench_hdf5_") as tmp:
        scratch = Path(tmp)
        rate = _reference_rate(scratch, args.reference_images)
        report["reference_images_per_s"] = round(rate, 1)
        print(f"reference loop: {rate:.0f} images/s")
        triple = ["--num-digit", "3", "--num-image-per-class", str(args.per_class)]
        common = ["--format", "hdf5", "--workers", str(args.workers)]
        for name, layout in _layouts().items():
            double_s = _cli_seconds(layout, scratch / f"double_{name}", common, args.repeats)
            triple_s = _cli_seconds(layout, scratch / f"triple_{name}", [*triple, *common])
            train = scratch / f"triple_{name}" / "train.h5"
            result = {
                "double_100k_cli_s": round(double_s, 2),
                "double_100k_images_per_s": round(100_000 / double_s, 1),
                "ratio_vs_reference": round(100_000 / double_s / rate, 1),
                "triple_cli_s": round(triple_s, 2),
                "triple_train_h5_mib": round(train.stat().st_size / 2**20, 1),
                "default_cache": _random_reads(train, args.reads, None),
                "cache_1gib": _random_reads(train, args.reads, 1 << 30),
            }
            report["layouts"][name] = result
            print(
                f"{name}: chunks {result['default_cache']['chunks']}, random image "
                f"{result['default_cache']['ms_per_image']} ms (default cache), "
                f"{result['cache_1gib']['ms_per_image']} ms (1 GiB cache); DoubleMNIST 100k by the "
                f"CLI {double_s:.2f} s = {result['ratio_vs_reference']}x reference"
            )
    old, new = (report["layouts"][k]["default_cache"]["ms_per_image"] for k in _layouts())
    report["random_read_speedup"] = round(old / new, 1)
    print(f"random single image, default cache: {report['random_read_speedup']}x faster")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
