"""Meta-Dataset episodes: read from the TFRecords per episode vs drawn from decoded arrays.

python benchmarks/bench_metadataset.py [--classes 40 --images 120 --episodes 30 --size 84]

Writes a synthetic source in the official on-disk layout (per-class TFRecords of tf.train.Example
with JPEG images of 160x120, or --photo WxH, as the conversion stores photographs, and
dataset_spec.json), then draws the same MD episodes (variable way 5..40, support budget 500)
two ways:

- records: ``--md-read stream`` (the default) - each class file indexed once, each episode reads,
  CRC-checks, parses and decodes only the records it draws (what a TF pipeline does, without
  TF), on one decoding thread and on ``decode_threads()`` threads;
- arrays: ``--md-read memory`` decodes every class once (timed separately: the cold load), then
  ``md_episode`` gathers from the decoded uint8 store.

All give identical episodes (tests/fsbench/test_md_sampling.py); the ratio arrays / records is
the episodes/s gained by holding the split decoded. Results: results/bench_metadataset.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fsbench"))
import md_fixtures as fx  # noqa: E402  (the test suite's record writer)
from fsbench.data.md_records import RecordImages, decode_threads  # noqa: E402
from fsbench.data.md_sampling import EpisodeConfig, md_episode  # noqa: E402
from fsbench.data.registry import load_split  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def write_source(
    root: Path, classes: int, images: int, width: int = 160, height: int = 120
) -> Path:
    """A flat source 'aircraft' (all classes in train) of smooth random JPEGs."""
    folder = root / "aircraft"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for c in range(classes):
        recs = []
        for _ in range(images):
            small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            im = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=90)
            recs.append(fx.example_bytes(buf.getvalue(), c))
        fx.write_tfrecord(folder / f"{c}.tfrecords", recs)
    spec = {
        "name": "aircraft",
        "classes_per_split": {"TRAIN": classes, "VALID": 0, "TEST": 0},
        "images_per_class": {str(c): images for c in range(classes)},
        "class_names": {str(c): f"c{c}" for c in range(classes)},
        "path": str(folder),
        "file_pattern": "{}.tfrecords",
        "__class__": "DatasetSpecification",
    }
    (folder / "dataset_spec.json").write_text(json.dumps(spec))
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--size", type=int, default=84, choices=(84, 224))
    ap.add_argument("--photo", default="160x120", help="the stored JPEGs' WIDTHxHEIGHT")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = EpisodeConfig(max_ways_upper_bound=min(50, args.classes))
    with tempfile.TemporaryDirectory() as tmp:
        width, height = (int(v) for v in args.photo.split("x"))
        root = write_source(Path(tmp) / "records", args.classes, args.images, width, height)
        kw = {"path": root, "sources": "aircraft", "image_size": args.size}
        t0 = time.perf_counter()
        stream = load_split("metadataset", "train", data_root=Path(tmp) / "c1", **kw)
        index_s = time.perf_counter() - t0
        assert isinstance(stream.data, RecordImages)
        threads = decode_threads()
        records_s: dict[int, float] = {}
        for n in sorted({1, threads}):
            stream.data.threads = n
            gen = torch.Generator().manual_seed(0)
            images = 0
            t0 = time.perf_counter()
            for _ in range(args.episodes):
                ep = md_episode(stream, gen, cfg)
                images += ep.support_x.shape[1] + ep.query_x.shape[1]
            records_s[n] = time.perf_counter() - t0
        t0 = time.perf_counter()
        store = load_split(
            "metadataset", "train", data_root=Path(tmp) / "c2", md_read="memory", **kw
        )
        cold_s = time.perf_counter() - t0
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for _ in range(args.episodes):
            md_episode(store, gen, cfg)
        arrays_s = time.perf_counter() - t0
    row = {
        "classes": args.classes,
        "images_per_class": args.images,
        "image_size": args.size,
        "stored_jpeg": args.photo,
        "episodes": args.episodes,
        "images_per_episode": images / args.episodes,
        "records_index_s": round(index_s, 3),
        "records_episodes_per_s": round(args.episodes / records_s[1], 2),
        f"records_episodes_per_s_{threads}_threads": round(args.episodes / records_s[threads], 2),
        "arrays_cold_load_s": round(cold_s, 2),
        "arrays_episodes_per_s": round(args.episodes / arrays_s, 1),
        "ratio_arrays_over_records": round(records_s[1] / arrays_s, 1),
        "ratio_threads": round(records_s[1] / records_s[threads], 2),
        "torch_threads": 1,
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(row, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_metadataset.json").write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
