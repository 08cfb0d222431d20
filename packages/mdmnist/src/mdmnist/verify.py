"""Re-check a generated directory against its manifest: file digests and decoded pixels."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from .errors import MdmnistError
from .layout import stray_paths
from .manifest import file_sha256, read_manifest, seal_digest
from .render import png_filename
from .shards import check_shard, shard_classes
from .splits import SPLITS, split_classes
from .writers.hdf5 import hdf5_filename
from .writers.torchmeta import data_filename, labels_filename, torchmeta_order

READ_BYTES = 32 << 20  # raw pixels read from HDF5 at once when checking many small classes
Tick = Callable[[int], None]  # progress callback: called with the number of steps just done


def _decode(data: bytes) -> np.ndarray:
    """Pixels of one PNG file (raises on any corruption PIL detects)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def _check_pngs(label: str, pngs: list[bytes], expect: dict, name: str) -> list[str]:
    """Compare one class's PNG bytes and decoded pixels with the manifest digests."""
    problems = []
    want_png = expect.get("png_sha256", {}).get(name)
    if want_png is not None and hashlib.sha256(b"".join(pngs)).hexdigest() != want_png:
        problems.append(f"{label}: PNG bytes differ from the manifest")
    pixels = hashlib.sha256()
    try:
        for data in pngs:
            pixels.update(np.ascontiguousarray(_decode(data), dtype=np.uint8).data)
    except Exception as exc:  # PIL raises many types on corrupt data
        return problems + [f"{label}: cannot decode a PNG ({exc})"]
    if pixels.hexdigest() != expect["pixels_sha256"].get(name):
        problems.append(f"{label}: decoded pixels differ from the manifest")
    return problems


def _verify_png(root: Path, split: str, expect: dict, count: int, tick: Tick) -> list[str]:
    """PNG tree: exactly the expected files per class, bytes and pixels as recorded."""
    problems = []
    for name in expect["classes"]:
        tick(1)
        folder = root / split / name
        wanted = {png_filename(k, name) for k in range(count)}
        present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        if present != wanted:
            missing, extra = len(wanted - present), len(present - wanted)
            problems.append(f"png {split}/{name}: {missing} file(s) missing, {extra} unexpected")
            continue
        pngs = [(folder / png_filename(k, name)).read_bytes() for k in range(count)]
        problems += _check_pngs(f"png {split}/{name}", pngs, expect, name)
    return problems


def _verify_hdf5(root: Path, split: str, expect: dict, args: dict, tick: Tick) -> list[str]:
    """Native HDF5: class names, shape and per-class pixel digests."""
    path = root / hdf5_filename(split)
    height, width = args["image_size"]
    shape = (len(expect["classes"]), args["num_image_per_class"], height, width)
    try:
        with h5py.File(path, "r") as f:
            names = [b.decode("ascii") for b in f["class_names"][...]]
            if names != expect["classes"]:
                return [f"hdf5 {path.name}: class_names differ from the manifest"]
            images = f["images"]
            if images.shape != shape or images.dtype != np.uint8:
                return [
                    f"hdf5 {path.name}: images is {images.shape} {images.dtype}, expected {shape} uint8"
                ]
            problems = []
            step = max(1, READ_BYTES // max(1, int(np.prod(shape[1:]))))
            for start in range(0, len(names), step):
                block = images[start : start + step]  # one read for many small classes
                for i, pixels in enumerate(block, start):
                    tick(1)
                    digest = hashlib.sha256(np.ascontiguousarray(pixels).data).hexdigest()
                    if digest != expect["pixels_sha256"].get(names[i]):
                        problems.append(
                            f"hdf5 {path.name} class {names[i]}: pixels differ from the manifest"
                        )
            return problems
    except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError on damaged files
        return [f"hdf5 {path.name}: unreadable ({exc})"]


def _verify_torchmeta(root: Path, split: str, expect: dict, count: int, tick: Tick) -> list[str]:
    """torchmeta export: sorted labels, one PNG-bytes dataset per class."""
    try:
        with open(root / labels_filename(split)) as fh:
            labels = json.load(fh)
    except (OSError, ValueError) as exc:
        return [f"torchmeta {labels_filename(split)}: unreadable ({exc})"]
    if labels != sorted(expect["classes"]):
        return [f"torchmeta {labels_filename(split)}: labels differ from the manifest"]
    path = root / data_filename(split)
    problems = []
    try:
        with h5py.File(path, "r") as f:
            group = f["datasets"]
            for name in labels:
                tick(1)
                stored = group[name]
                if len(stored) != count:
                    problems.append(
                        f"torchmeta {path.name} class {name}: {len(stored)} images, expected {count}"
                    )
                    continue
                by_k: list[bytes] = [b""] * count
                for i, k in enumerate(torchmeta_order(count, name)):
                    by_k[k] = bytes(stored[i])
                problems += _check_pngs(f"torchmeta {path.name} class {name}", by_k, expect, name)
    except Exception as exc:
        return problems + [f"torchmeta {path.name}: unreadable ({exc})"]
    return problems


def _no_progress(steps: int) -> None:
    """Progress callback that shows nothing."""


def count_steps(manifest: dict) -> int:
    """Progress steps of a full check: one per recorded file and one per class and format."""
    formats = manifest["args"]["formats"]
    per_format = sum(f in formats for f in ("png", "hdf5", "torchmeta"))
    classes = sum(len(manifest["splits"][s]["classes"]) for s in SPLITS)
    linked = sum(len(sources) for sources in manifest.get("links", {}).values())
    return len(manifest.get("files", {})) + linked + classes * per_format


def manifest_shard(manifest: dict) -> tuple[int, int] | None:
    """The (K, N) a shard's manifest records, None for a whole run (MdmnistError if malformed)."""
    shard = manifest.get("shard")
    if shard is None:
        return None
    args = manifest["args"]
    return check_shard((shard["index"], shard["count"]), args["num_digit"], args["ratios"])


def expected_classes(manifest: dict) -> dict[str, list[str]]:
    """The classes per split that the manifest's arguments (and shard) give."""
    args = manifest["args"]
    every = split_classes(args["num_digit"], args["ratios"], args["seed"])
    return shard_classes(every, manifest_shard(manifest))


def _verify_links(root: Path, links: dict, tick: Tick) -> list[str]:
    """Shard files that a linked merge's HDF5 files read from: present and unchanged."""
    problems = []
    for name, sources in sorted(links.items()):
        for source, digest in sorted(sources.items()):
            tick(1)
            path = root / source
            if not path.is_file():
                problems.append(f"link {name} -> {source}: missing")
            elif file_sha256(path) != digest:
                problems.append(f"link {name} -> {source}: sha256 differs from the manifest")
    return problems


def verify(directory: str | Path, progress: Tick | None = None) -> list[str]:
    """Every mismatch between DIRECTORY and its manifest, one line each (empty: all good).

    Stray files and folders (anything the manifest does not account for) are mismatches too.
    ``progress(n)`` is called as work is done, count_steps(manifest) steps in all.
    """
    tick = progress or _no_progress
    root = Path(directory)
    if not root.is_dir():
        raise MdmnistError(f"{root} is not a directory")
    manifest = read_manifest(root)
    problems: list[str] = []
    if manifest.get("manifest_sha256") != seal_digest(manifest):
        problems.append(
            "manifest.json: content does not match its own manifest_sha256 (edited or corrupt)"
        )
    try:
        args = manifest["args"]
        splits = manifest["splits"]
        expected = expected_classes(manifest)
        formats = args["formats"]
        count = args["num_image_per_class"]
        if any(splits[s]["classes"] != expected[s] for s in SPLITS):
            problems.append(
                "manifest: class splits do not follow from its num_digit/ratios/seed/shard"
            )
        links = manifest.get("links", {})
        problems += _verify_links(root, links, tick)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"manifest: malformed ({exc})"]
    problems += [f"stray {p}: not written by mdmnist" for p in stray_paths(root, manifest)]
    for name, digest in sorted(manifest.get("files", {}).items()):
        tick(1)
        path = root / name
        if not path.is_file():
            problems.append(f"file {name}: missing")
        elif file_sha256(path) != digest:
            problems.append(f"file {name}: sha256 differs from the manifest")
    for split in SPLITS:
        expect = splits[split]
        if "png" in formats:
            problems += _verify_png(root, split, expect, count, tick)
        if "hdf5" in formats:
            problems += _verify_hdf5(root, split, expect, args, tick)
        if "torchmeta" in formats:
            problems += _verify_torchmeta(root, split, expect, count, tick)
    return problems
