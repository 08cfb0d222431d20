"""``mnist-detect``: detection scenes built from DoubleMNIST classes with mdmnist's machinery.

A scene is a square zero canvas holding 1..max_objects objects and 0..clutter clutter digits.
An object is an image of a DoubleMNIST class (two MNIST digits side by side, drawn from mdmnist's
per-digit source lists as DoubleMNIST draws them), resized to a random height (its width twice
that) and cropped to its ink; its box is exactly the pasted crop. A clutter digit is one MNIST
digit (no class: no box). Nothing overlaps (positions are redrawn up to ``PLACEMENT_TRIES`` times,
then the object is left out), so every pixel inside a box comes from that box's object.

Classes per split are DoubleMNIST's published ones (mdmnist's split with seed 123, ratios
64/16/20): the test classes are never seen in training. Each split draws from its own generator,
``numpy.random.default_rng([seed, split_number])``, so the same arguments give the same bytes.
Generated splits are written under the data root as PNGs + COCO JSON (so other tools read them),
beside an ``.npz`` of the pixels that fsbench loads, and a preview with the boxes drawn.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fsbench.data.diskcache import atomic_path
from fsbench.detection.coco import read_coco, write_coco
from fsbench.detection.dataset import DetectionSet, ImageRecord
from fsbench.errors import FsbenchError

SPLITS = ("train", "val", "test")
CLASS_SPLIT_SEED = 123  # DoubleMNIST's published class split
CLASS_RATIOS = (64, 16, 20)
PLACEMENT_TRIES = 30
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SceneSpec:
    """What a generated scene set depends on (its cache folder is named by a digest of this)."""

    size: int = 128
    min_objects: int = 1
    max_objects: int = 4
    clutter: int = 1
    min_height: int = 0  # 0: 16 % of size
    max_height: int = 0  # 0: 32 % of size
    train_scenes: int = 2000
    val_scenes: int = 200
    test_scenes: int = 500
    seed: int = 0

    def heights(self) -> tuple[int, int]:
        """The object height range in pixels."""
        lo = self.min_height or max(6, round(0.16 * self.size))
        hi = self.max_height or max(lo, round(0.32 * self.size))
        return lo, hi

    def check(self) -> None:
        """One-line errors for settings that cannot make a scene."""
        lo, hi = self.heights()
        if self.size < 16:
            raise FsbenchError(f"--scene-size {self.size} is too small; use 16 or more")
        if not 1 <= self.min_objects <= self.max_objects:
            raise FsbenchError("--objects must satisfy 1 <= min <= max")
        if not 1 <= lo <= hi or 2 * hi > self.size:
            raise FsbenchError(
                f"object heights {lo}..{hi} do not fit a {self.size}x{self.size} scene "
                "(objects are twice as wide as high); lower the heights"
            )
        if min(self.train_scenes, self.val_scenes, self.test_scenes) < 1 or self.clutter < 0:
            raise FsbenchError("scene counts must be >= 1 and --clutter >= 0")

    def digest(self) -> str:
        text = json.dumps({**asdict(self), "version": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def split_class_names(split: str) -> list[str]:
    """DoubleMNIST's classes of ``split`` ('train', 'val', 'test') in mdmnist's order."""
    from mdmnist.splits import split_classes

    return split_classes(2, CLASS_RATIOS, CLASS_SPLIT_SEED)[split]


def _resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def _ink_crop(patch: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(patch.any(1))
    cols = np.flatnonzero(patch.any(0))
    return patch[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _place(
    rng: np.random.Generator, crop: np.ndarray, size: int, taken: list[tuple[int, int, int, int]]
) -> tuple[int, int, int, int] | None:
    """A free [x1, y1, x2, y2] for ``crop`` (1 pixel apart from the taken ones), or None."""
    h, w = crop.shape
    for _ in range(PLACEMENT_TRIES):
        x = int(rng.integers(0, size - w + 1))
        y = int(rng.integers(0, size - h + 1))
        box = (x, y, x + w, y + h)
        if all(
            box[2] + 1 <= t[0] or t[2] + 1 <= box[0] or box[3] + 1 <= t[1] or t[3] + 1 <= box[1]
            for t in taken
        ):
            return box
    return None


def generate_split(spec: SceneSpec, split: str) -> DetectionSet:
    """The scenes of one split, in memory (``pixels`` [N, size, size] uint8, boxes, labels)."""
    from mdmnist.idx import load_mnist
    from mdmnist.splits import digit_index_lists

    spec.check()
    pool = load_mnist()
    sources = digit_index_lists(pool, split, disjoint_sources=False)
    classes = split_class_names(split)
    count = {"train": spec.train_scenes, "val": spec.val_scenes, "test": spec.test_scenes}[split]
    rng = np.random.default_rng([spec.seed, SPLITS.index(split)])
    lo, hi = spec.heights()
    pixels = np.zeros((count, spec.size, spec.size), dtype=np.uint8)
    records = []
    for i in range(count):
        taken: list[tuple[int, int, int, int]] = []
        labels: list[int] = []
        for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
            label = int(rng.integers(len(classes)))
            digits = [pool.images[rng.choice(sources[int(d)])] for d in classes[label]]
            h = int(rng.integers(lo, hi + 1))
            crop = _ink_crop(_resized(np.hstack(digits), h, 2 * h))
            box = _place(rng, crop, spec.size, taken)
            if box is not None:
                pixels[i, box[1] : box[3], box[0] : box[2]] = crop
                taken.append(box)
                labels.append(label)
        boxes = np.asarray(taken, dtype=np.float32).reshape(-1, 4)
        for _ in range(int(rng.integers(0, spec.clutter + 1))):
            digit = pool.images[int(rng.integers(len(pool.images)))]
            h = int(rng.integers(lo, hi + 1))
            crop = _ink_crop(_resized(digit, h, h))
            box = _place(rng, crop, spec.size, taken)
            if box is not None:
                pixels[i, box[1] : box[3], box[0] : box[2]] = crop
                taken.append(box)
        file = f"images/{i:06d}.png"
        records.append(
            ImageRecord(file, spec.size, spec.size, boxes, np.asarray(labels, dtype=np.int64))
        )
    return DetectionSet(classes, records, None, pixels)


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    names: list[str],
    scale: int = 2,
    scores: np.ndarray | None = None,
) -> Image.Image:
    """An RGB picture of ``image`` (upscaled ``scale`` times) with each box and its name drawn."""
    rgb = Image.fromarray(image).convert("RGB")
    rgb = rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(rgb)
    colours = ((255, 64, 64), (64, 200, 64), (80, 140, 255), (255, 200, 0), (255, 0, 255))
    for j, (box, name) in enumerate(zip(boxes.tolist(), names, strict=True)):
        colour = colours[j % len(colours)]
        draw.rectangle([v * scale for v in box], outline=colour, width=2)
        text = name if scores is None else f"{name} {float(scores[j]):.2f}"
        draw.text((box[0] * scale + 2, box[1] * scale + 1), text, fill=colour)
    return rgb


def write_preview(dataset: DetectionSet, path: Path, count: int = 8) -> None:
    """A grid of the first ``count`` scenes with their boxes and class names, atomically."""
    tiles = [
        draw_boxes(
            dataset.image(i),
            dataset.records[i].boxes,
            [dataset.classes[c] for c in dataset.records[i].labels],
        )
        for i in range(min(count, len(dataset)))
    ]
    w, h = tiles[0].size
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * (w + 4), rows * (h + 4)), (40, 40, 40))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % cols) * (w + 4) + 2, (k // cols) * (h + 4) + 2))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def scene_folder(spec: SceneSpec, data_root: Path) -> Path:
    """Where the scenes of ``spec`` are cached."""
    return Path(data_root) / "mnist-detect" / f"{spec.size}px-{spec.digest()}"


def _write(spec: SceneSpec, folder: Path) -> None:
    """Generate every split into a temporary sibling, then rename it to ``folder``."""
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        for split in SPLITS:
            data = generate_split(spec, split)
            pixels = np.asarray(data.pixels)  # generated scenes are held in memory, one size
            (tmp / split / "images").mkdir(parents=True)
            for i, rec in enumerate(data.records):
                Image.fromarray(pixels[i]).save(tmp / split / rec.file, format="PNG")
            write_coco(data, tmp / split / "annotations.json")
            np.savez(tmp / split / "pixels.npz", pixels=pixels)
            if split == "train":
                write_preview(data, tmp / "preview.png")
        (tmp / "spec.json").write_text(json.dumps(asdict(spec), indent=1, sort_keys=True) + "\n")
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / "spec.json").is_file():  # else another process wrote it first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_scenes(spec: SceneSpec, split: str, data_root: Path) -> DetectionSet:
    """The ``split`` of the scenes of ``spec``: generated and cached on first use."""
    spec.check()
    if split not in SPLITS:
        raise FsbenchError(f"split '{split}' unknown; choose train, val or test")
    folder = scene_folder(spec, data_root)
    if not (folder / "spec.json").is_file():
        _write(spec, folder)
    data = read_coco(folder / split / "annotations.json")
    with np.load(folder / split / "pixels.npz") as z:
        data.pixels = z["pixels"]
    if len(data.pixels) != len(data):
        raise FsbenchError(f"{folder} is damaged (pixels and annotations disagree); delete it")
    return data
