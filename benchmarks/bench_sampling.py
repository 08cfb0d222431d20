"""Episode sampling speed: fsbench's on-device ArrayStore against a DataLoader over a PNG tree.

    python benchmarks/bench_sampling.py [--per-class 100] [--seconds 3] [--device auto|cpu|cuda]

Builds a small DoubleMNIST (via mdmnist, ``--per-class`` images per class) both as the native
HDF5 store and as the PNG tree, then in the same run times 5-way 1-shot 15-query episodes in
meta-batches of 12 drawn (a) by ``ArrayStore.sample_episode`` on the device and (b) by a
straightforward episodic sampler feeding a ``torch.utils.data.DataLoader`` that opens and decodes
the PNG files of every episode (``num_workers`` 0 and 2), the way PyTorch few-shot code commonly
loads such data. Prints both rates and their ratio; writes benchmarks/results/sampling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

RESULTS = Path(__file__).resolve().parent / "results" / "sampling.json"
WAY, SHOT, QUERY, META_BATCH = 5, 1, 15, 12


class PngFiles(Dataset):
    """One PNG per item, opened and decoded on access: the baseline's per-episode file reads."""

    def __init__(self, tree: Path) -> None:
        self.files: list[Path] = []
        self.by_class: list[list[int]] = []
        for c, folder in enumerate(sorted(p for p in tree.iterdir() if p.is_dir())):
            start = len(self.files)
            self.files += sorted(folder.glob("*.png"))
            self.by_class.append(list(range(start, len(self.files))))
            del c

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.files[i]) as im:
            arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).unsqueeze(0)


class EpisodicBatches(Sampler):
    """Yields the file indices of one meta-batch at a time: per task, WAY classes x (SHOT+QUERY)."""

    def __init__(self, by_class: list[list[int]], batches: int, seed: int = 0) -> None:
        self.by_class, self.batches, self.rng = by_class, batches, random.Random(seed)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        for _ in range(self.batches):
            idx: list[int] = []
            for _task in range(META_BATCH):
                for c in self.rng.sample(range(len(self.by_class)), WAY):
                    idx += self.rng.sample(self.by_class[c], SHOT + QUERY)
            yield idx


def split_episode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B*WAY*(SHOT+QUERY), ...] -> support [B, WAY*SHOT, ...] and query [B, WAY*QUERY, ...]."""
    x = x.view(META_BATCH, WAY, SHOT + QUERY, *x.shape[1:])
    return (
        x[:, :, :SHOT].reshape(META_BATCH, WAY * SHOT, *x.shape[3:]),
        x[:, :, SHOT:].reshape(META_BATCH, WAY * QUERY, *x.shape[3:]),
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate_store(store, device: torch.device, seconds: float) -> dict:
    """Meta-batches per second drawn from the on-device ArrayStore."""
    g = store.generator(0)
    for _ in range(5):  # warm-up
        store.sample_episode(g, WAY, SHOT, QUERY, META_BATCH)
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ep = store.sample_episode(g, WAY, SHOT, QUERY, META_BATCH)
        n += 1
    sync(device)
    elapsed = time.perf_counter() - start
    assert ep.query_x.shape == (META_BATCH, WAY * QUERY, 1, 64, 64)
    return {"meta_batches": n, "seconds": elapsed, "meta_batches_per_s": n / elapsed}


def rate_loader(tree: Path, device: torch.device, workers: int, seconds: float) -> dict:
    """Meta-batches per second from a DataLoader reading the PNG tree, moved to ``device``."""
    data = PngFiles(tree)
    batches = 10_000
    loader = DataLoader(
        data,
        batch_sampler=EpisodicBatches(data.by_class, batches),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    it = iter(loader)
    for _ in range(2):  # warm-up: worker start, first files
        next(it)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        x = next(it).to(device, non_blocking=True)
        support, query = split_episode(x)
        n += 1
    sync(device)
    elapsed = time.perf_counter() - start
    assert query.shape == (META_BATCH, WAY * QUERY, 1, 64, 64) and support.shape[1] == WAY * SHOT
    del it
    return {"meta_batches": n, "seconds": elapsed, "meta_batches_per_s": n / elapsed}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the rates and ratios, write the JSON; return the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100, help="images per class to generate")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--data-root", type=Path, default=None, help="reuse a data root")
    opts, _ = parser.parse_known_args(argv)  # tolerate a runner's shared flags

    from fsbench.data import describe_split, load_split

    if opts.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(opts.device)

    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as tmp:
        root = opts.data_root or Path(tmp)
        kw = {"data_root": root, "num_image_per_class": opts.per_class, "progress": False}
        t0 = time.perf_counter()
        load_split("doublemnist", "train", source="png", **kw)  # generates the PNG tree
        t1 = time.perf_counter()
        store = load_split("doublemnist", "train", source="hdf5", device=device, **kw)
        t2 = time.perf_counter()
        facts = describe_split("doublemnist", "train", store)
        tree = Path(facts["source"]).with_suffix("")
        print(f"DoubleMNIST train: {store.num_classes} classes x {opts.per_class} images, {device}")
        print(f"  PNG tree ready in {t1 - t0:.1f}s, HDF5 store loaded in {t2 - t1:.1f}s")

        result = {"store": rate_store(store, device, opts.seconds)}
        for workers in (0, 2):
            result[f"png_dataloader_workers_{workers}"] = rate_loader(
                tree, device, workers, opts.seconds
            )

    tasks = META_BATCH
    store_rate = result["store"]["meta_batches_per_s"]
    print(f"episodes: {WAY}-way {SHOT}-shot {QUERY}-query, meta-batch {META_BATCH}")
    print(
        f"  ArrayStore ({device}):        {store_rate:10.1f} meta-batches/s  "
        f"({store_rate * tasks:.0f} episodes/s)"
    )
    ratios = {}
    for workers in (0, 2):
        r = result[f"png_dataloader_workers_{workers}"]["meta_batches_per_s"]
        ratios[f"vs_workers_{workers}"] = store_rate / r
        print(
            f"  DataLoader PNG, workers={workers}: {r:10.2f} meta-batches/s  "
            f"({r * tasks:.0f} episodes/s)  -> ArrayStore is {store_rate / r:.0f}x"
        )
    record = {
        "benchmark": "episode sampling, ArrayStore vs DataLoader over PNG tree",
        "episode": {"way": WAY, "shot": SHOT, "query": QUERY, "meta_batch": META_BATCH},
        "dataset": {
            "name": "doublemnist",
            "split": "train",
            "images_per_class": opts.per_class,
            "classes": store.num_classes,
            "image_shape": list(store.example_shape),
        },
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "results": result,
        "ratios": ratios,
        "target_ratio": 20,
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = opts.output.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp_out, opts.output)
    print(f"wrote {opts.output}")
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
