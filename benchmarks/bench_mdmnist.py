"""mdmnist speed: the reference's per-image loop vs ours (native HDF5, PNG tree), same run, same machine.

    python benchmarks/bench_mdmnist.py [--reference-images 2000] [--workers 2] [--full]

The reference is re-implemented faithfully (numpy legacy global RNG, ``np.random.choice`` on
Python lists, one paste per digit, ``imageio.imwrite`` per file) and timed on the first classes
of the train split; ours generates the whole DoubleMNIST. ``--full`` also generates the whole
TripleMNIST (1M images, HDF5) in a child process and reports wall time and peak memory.
Results go to benchmarks/results/mdmnist.json.
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

import numpy as np

RESULTS = Path(__file__).parent / "results" / "mdmnist.json"


def reference_loop(
    out_dir: Path,
    num_digit: int,
    image_size: tuple[int, int],
    per_class: int,
    max_images: int,
    seed: int = 123,
) -> int:
    """The reference generator's loop (train split first), stopped after MAX_IMAGES images."""
    from imageio import imwrite
    from mdmnist.idx import load_mnist

    pool = load_mnist()
    images, labels = pool.images[:, :, :, None], pool.labels  # the reference keeps a channel axis
    rs = np.random.RandomState(seed)
    num_class = 10**num_digit
    classes = list(np.array(range(num_class)))
    rs.shuffle(classes)
    indexes = [list(np.where(labels == c)[0]) for c in range(10)]
    height, width = image_size
    np.random.seed(seed)
    written = 0
    for current_class in classes:
        class_str = str(current_class).zfill(num_digit)
        class_path = out_dir / "train" / class_str
        class_path.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            digits = [int(class_str[p]) for p in range(num_digit)]
            imgs = [np.squeeze(images[np.random.choice(indexes[d])]) for d in digits]
            background = np.zeros(image_size).astype(np.uint8)
            ys = (
                np.random.randint(height - 28, size=num_digit)
                if height > 28
                else np.zeros(num_digit, int)
            )
            hx = width // num_digit - 28
            xs = np.random.randint(hx, size=num_digit) if hx > 0 else np.zeros(num_digit, int)
            xs = [p * width // num_digit + xs[p] for p in range(num_digit)]
            for q in range(num_digit):
                background[ys[q] : ys[q] + 28, xs[q] : xs[q] + 28] = imgs[q]
            imwrite(class_path / f"{k}_{class_str}.png", background)
            written += 1
            if written >= max_images:
                return written
    return written


def _ours(fmt: str, workers: int, scratch: Path, num_digit: int, per_class: int) -> dict:
    """Time mdmnist.generate for one format."""
    import mdmnist

    out = scratch / f"ours_{fmt}"
    start = time.perf_counter()
    mdmnist.generate(
        num_digit=num_digit,
        num_image_per_class=per_class,
        output=out,
        formats=(fmt,),
        workers=workers,
        progress=False,
    )
    seconds = time.perf_counter() - start
    images = 10**num_digit * per_class
    return {
        "format": fmt,
        "workers": workers,
        "images": images,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 1),
    }


FULL_SCRIPT = """
import json, resource, sys, time
import mdmnist
start = time.perf_counter()
mdmnist.generate(num_digit=3, output=sys.argv[1], formats=("hdf5",), workers=int(sys.argv[2]), progress=False)
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall,
    "maxrss_main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "maxrss_largest_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _full(workers: int, scratch: Path) -> dict:
    """Whole TripleMNIST (1,000,000 images, HDF5) in a fresh process: wall time, peak memory, load time."""
    out = scratch / "triple_full"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_SCRIPT, str(out), str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    from mdmnist.writers.hdf5 import load_split

    start = time.perf_counter()
    images, names = load_split(out / "train.h5")
    load_s = time.perf_counter() - start
    return {
        "images": 1_000_000,
        "workers": workers,
        "wall_s": round(report["wall_s"], 2),
        "images_per_s": round(1_000_000 / report["wall_s"], 1),
        "peak_rss_main_mib": round(report["maxrss_main_mib"], 1),
        "peak_rss_largest_worker_mib": round(report["maxrss_largest_worker_mib"], 1),
        "hdf5_mib": {k: round(v / 2**20, 1) for k, v in sorted(sizes.items()) if k.endswith(".h5")},
        "load_train_h5_s": round(load_s, 2),
        "train_images_shape": list(images.shape),
        "train_raw_gib": round(images.nbytes / 2**30, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the figures and ratios, write benchmarks/results/mdmnist.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--per-class", type=int, default=1000, help="images per class for ours (DoubleMNIST)"
    )
    parser.add_argument(
        "--full", action="store_true", help="also generate the full TripleMNIST (1M images, hdf5)"
    )
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args, _unknown = parser.parse_known_args(argv)  # tolerate harness-wide options

    from mdmnist.idx import load_mnist

    load_mnist()  # decompress and verify the embedded MNIST once, outside the timings
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix="bench_mdmnist_") as tmp:
        scratch = Path(tmp)
        start = time.perf_counter()
        done = reference_loop(scratch / "reference", 2, (64, 64), 1000, args.reference_images)
        ref_s = time.perf_counter() - start
        reference = {
            "images": done,
            "seconds": round(ref_s, 3),
            "images_per_s": round(done / ref_s, 1),
        }
        print(
            f"reference loop (imageio, 1 process): {reference['images_per_s']:.0f} images/s ({done} images)"
        )
        results = {}
        for fmt in ("hdf5", "png"):
            res = _ours(fmt, args.workers, scratch, 2, args.per_class)
            res["ratio_vs_reference"] = round(res["images_per_s"] / reference["images_per_s"], 1)
            results[fmt] = res
            print(
                f"mdmnist {fmt:4s} workers={args.workers}: {res['images_per_s']:.0f} images/s ({res['images']} images, {res['seconds']} s) = {res['ratio_vs_reference']}x reference"
            )
        report = {
            "benchmark": "mdmnist DoubleMNIST (64x64, seed 123) generation speed",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "numpy": np.__version__,
            },
            "reference": reference,
            "ours": results,
            "targets": {"hdf5_ratio": 100, "png_ratio": 5},
        }
        if args.full:
            full = _full(args.workers, scratch)
            report["full_triple_mnist_hdf5"] = full
            print(
                f"full TripleMNIST hdf5: {full['wall_s']} s ({full['images_per_s']:.0f} images/s), peak RSS main {full['peak_rss_main_mib']} MiB, largest worker {full['peak_rss_largest_worker_mib']} MiB; train.h5 loads in {full['load_train_h5_s']} s"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
