"""Your own images as a few-shot dataset: ``DIR/<split>/<class>/<image>`` or ``DIR/<class>/<image>``.

Layouts (found in this order):

- ``DIR/train/``, ``DIR/test/`` and optionally ``DIR/val/``, each a folder of class folders.
  Without ``val/`` there is no validation (``trainval`` is then ``train``).
- ``DIR/<class>/<image>``: the classes are split, disjoint as few-shot learning needs, by
  ``split_ratios`` (train, val, test fractions of the classes; default 0.64, 0.16, 0.2) after a
  shuffle seeded by ``split_seed`` (default 0).

Files: names ending in an image suffix (``IMAGE_SUFFIXES``) are images; anything else (and any
name starting with ".", e.g. ``.DS_Store``; ``Thumbs.db``) is skipped with one warning line for
the whole folder. An image that cannot be decoded, an empty class folder or a folder without
class folders is one FsbenchError naming it.

Preprocessing (the same for ``fsbench predict``): channels — 1 (grayscale) when every image of
the dataset is grayscale, else 3 (RGB; alpha dropped, palette and CMYK converted); size — the
shorter side resized to ``image_size`` and the centre cropped (PIL bilinear, antialiased:
``transform.photo_transform``, recorded as ``meta["transform"]``). ``image_size`` defaults to the images' own size when every image is
square and of one size, else to 84. The whole dataset (all splits) is decoded once, so every
split has the same shape, and each split is cached under ``data_root/folder/cache``, keyed by the
folder, the options and the files' names, sizes and modification times.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fsbench.data.diskcache import fingerprint, load_arrays, save_arrays
from fsbench.data.images import check_image_size, decode_all
from fsbench.data.store import ArrayStore
from fsbench.data.transform import photo_transform
from fsbench.errors import FsbenchError

log = logging.getLogger("fsbench.data")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F")  # PIL modes kept as 1 channel
NOT_IMAGES = ("thumbs.db", "desktop.ini")  # skipped even if someone gave them an image suffix
DEFAULT_IMAGE_SIZE = 84
DEFAULT_RATIOS = (0.64, 0.16, 0.2)
SPLITS = ("train", "val", "test")
CACHE_VERSION = "folder-1"  # bump when decoding changes, so old caches are rebuilt
LAYOUT_HELP = "DIR/train/<class>/<image> + DIR/test/... (+ DIR/val/...), or DIR/<class>/<image>"


@dataclass(frozen=True)
class ClassFolder:
    """One class: its name (the folder's) and its image files, sorted by name."""

    name: str
    files: list[Path]


@dataclass(frozen=True)
class Layout:
    """A dataset folder's classes per split, and the split rule in words."""

    folder: Path
    splits: dict[str, list[ClassFolder]]
    rule: str


def is_image_name(path: Path) -> bool:
    """True for a visible file whose suffix is an image suffix (case-insensitive)."""
    name = path.name.lower()
    return (
        not name.startswith(".")
        and name not in NOT_IMAGES
        and path.suffix.lower() in IMAGE_SUFFIXES
    )


def warn_skipped(skipped: list[Path]) -> None:
    """One warning line for all the entries that are not images (or not where images belong)."""
    if skipped:
        log.warning(
            "skipped %d file(s) or folder(s) that are not images where images belong "
            "(image suffixes: %s), e.g. %s",
            len(skipped),
            " ".join(IMAGE_SUFFIXES),
            skipped[0],
        )


def image_files(folder: Path, skipped: list[Path]) -> list[Path]:
    """The image files directly in ``folder``, sorted; everything else is added to ``skipped``."""
    images = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and is_image_name(entry):
            images.append(entry)
        else:
            skipped.append(entry)
    return images


def scan_classes(root: Path, skipped: list[Path]) -> list[ClassFolder]:
    """The class folders of ``root`` (sorted by name) and their images; loose files are skipped.

    FsbenchError when ``root`` has no class folder or a class folder holds no image.
    """
    if not root.is_dir():
        raise FsbenchError(f"{root} is not a folder; expected {root}/<class>/<image>")
    classes = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            skipped.append(entry)
            continue
        files = image_files(entry, skipped)
        if not files:
            raise FsbenchError(
                f"class folder {entry} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                "remove it or add images"
            )
        classes.append(ClassFolder(entry.name, files))
    if not classes:
        raise FsbenchError(f"{root} holds no class folders; expected {root}/<class>/<image>")
    return classes


def parse_ratios(value: object) -> tuple[float, float, float]:
    """``"0.64,0.16,0.2"`` (or a sequence) as three fractions >= 0 summing to 1, train and test > 0."""
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)  # type: ignore[attr-defined]
    try:
        ratios = tuple(float(v) for v in text.split(","))
    except ValueError:
        ratios = ()
    if (
        len(ratios) != 3
        or min(ratios) < 0
        or ratios[0] <= 0
        or ratios[2] <= 0
        or abs(sum(ratios) - 1) > 1e-6
    ):
        raise FsbenchError(
            f"--split-ratios must be three fractions TRAIN,VAL,TEST of the classes, >= 0 with "
            f"TRAIN and TEST > 0, summing to 1 (e.g. 0.64,0.16,0.2), got {value!r}"
        )
    return ratios


def split_by_ratios(
    classes: list[ClassFolder], ratios: tuple[float, float, float], seed: int
) -> dict[str, list[ClassFolder]]:
    """Disjoint train/val/test classes: shuffled with ``seed``, then cut by ``ratios``."""
    n = len(classes)
    n_train, n_val = round(ratios[0] * n), round(ratios[1] * n)
    n_test = n - n_train - n_val
    if n_train < 1 or n_test < 1:
        raise FsbenchError(
            f"{n} classes are too few for --split-ratios {','.join(map(str, ratios))}: "
            f"{n_train} train and {n_test} test classes; add classes or change the ratios"
        )
    order = np.random.default_rng(seed).permutation(n).tolist()
    cut = {"train": order[:n_train], "val": order[n_train : n_train + n_val]}
    cut["test"] = order[n_train + n_val :]
    return {split: [classes[i] for i in sorted(idx)] for split, idx in cut.items()}


def find_layout(
    folder: Path, split_ratios: object = None, split_seed: int = 0, skipped: list | None = None
) -> Layout:
    """The classes of each split of ``folder`` (see the module docstring), checked."""
    skipped = [] if skipped is None else skipped
    if not folder.is_dir():
        raise FsbenchError(f"--dataset-dir {folder} is not a folder; expected {LAYOUT_HELP}")
    present = [s for s in SPLITS if (folder / s).is_dir()]
    if present:
        if split_ratios is not None:
            raise FsbenchError(
                f"--split-ratios applies to a flat DIR/<class>/ folder; {folder} is already "
                f"split ({'/, '.join(present)}/)"
            )
        for needed in ("train", "test"):
            if needed not in present:
                raise FsbenchError(
                    f"{folder} has {'/, '.join(present)}/ but no {needed}/ folder; expected "
                    f"{LAYOUT_HELP}"
                )
        skipped += [e for e in sorted(folder.iterdir()) if e.name not in SPLITS]
        splits = {s: scan_classes(folder / s, skipped) if s in present else [] for s in SPLITS}
        rule = "the folder's train/" + (", val/" if "val" in present else "") + " and test/"
        if "val" not in present:
            rule += " (no val/: no validation)"
        return Layout(folder, splits, rule)
    if not isinstance(split_seed, int) or isinstance(split_seed, bool) or split_seed < 0:
        raise FsbenchError(f"--split-seed must be an integer >= 0, got {split_seed!r}")
    ratios = parse_ratios(DEFAULT_RATIOS if split_ratios is None else split_ratios)
    classes = scan_classes(folder, skipped)
    splits = split_by_ratios(classes, ratios, split_seed)
    rule = (
        f"the {len(classes)} class folders split {','.join(map(str, ratios))} "
        f"(train, val, test) after a shuffle with seed {split_seed}: "
        + " / ".join(str(len(splits[s])) for s in SPLITS)
        + " classes"
    )
    return Layout(folder, splits, rule)


# ---------------------------------------------------------------------------- preprocessing


def probe(path: Path) -> tuple[str, tuple[int, int]]:
    """(PIL mode, (width, height)) of an image from its header; FsbenchError naming it."""
    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise FsbenchError(f"cannot decode image {path}: {e}") from None


def choose_format(files: list[Path], image_size: int | None) -> tuple[str, int]:
    """(PIL mode "L" or "RGB", side) of the whole dataset by the module docstring's rules."""
    modes, sizes = set(), set()
    for f in files:
        mode, size = probe(f)
        modes.add(mode)
        sizes.add(size)
    mode = "L" if modes <= set(GRAY_MODES) else "RGB"
    if image_size is None:
        (w, h), *rest = sorted(sizes)
        image_size = w if not rest and w == h else DEFAULT_IMAGE_SIZE
    return mode, image_size


def _cache_paths(layout: Layout, image_size: int | None, data_root: Path) -> dict[str, Path]:
    """One cache file per split, named by the folder, the size option and the split rule."""
    key = f"{layout.folder.resolve()}\0{image_size}\0{layout.rule}".encode()
    tag = hashlib.sha1(key).hexdigest()[:12]
    return {s: data_root / "folder" / "cache" / f"{tag}-{s}.npz" for s in SPLITS}


def _fingerprint(layout: Layout, image_size: int | None) -> str:
    """What the cached arrays depend on: the decoding, the size option, the classes, the files."""
    h = hashlib.sha1(f"{CACHE_VERSION}\0{image_size}\0{layout.rule}\0".encode())
    files = []
    for split in SPLITS:
        for c in layout.splits[split]:
            h.update(f"{split}/{c.name}/{len(c.files)}\n".encode())
            files += c.files
    return f"{h.hexdigest()}-{fingerprint(files)}"


def decode_files(files: list[Path], size: int, mode: str, progress: str | None) -> np.ndarray:
    """uint8 [N, C, size, size] of image files (shorter side to size, centre crop; C by mode)."""
    items = ((i, str(p), p) for i, p in enumerate(files))
    return decode_all(items, len(files), size, progress=progress, mode=mode)


def _decode_layout(
    layout: Layout, image_size: int | None, progress: bool
) -> dict[str, dict[str, np.ndarray]]:
    """Every split's images and labels, decoded together so that they share one shape."""
    every = [f for s in SPLITS for c in layout.splits[s] for f in c.files]
    mode, size = choose_format(every, image_size)
    desc = f"decoding {layout.folder.name}" if progress and len(every) >= 1000 else None
    images = decode_files(every, size, mode, desc)
    out, start = {}, 0
    for split in SPLITS:
        classes = layout.splits[split]
        counts = [len(c.files) for c in classes]
        stop = start + sum(counts)
        out[split] = {
            "images": images[start:stop],
            "labels": np.repeat(np.arange(len(classes), dtype=np.int64), counts),
            "names": np.array([c.name for c in classes], dtype=str),
        }
        start = stop
    return out


def split_arrays(
    layout: Layout, split: str, image_size: int | None, data_root: Path, progress: bool
) -> dict[str, np.ndarray]:
    """One split's images, labels and class names: from the cache, else all splits decoded."""
    paths = _cache_paths(layout, image_size, data_root)
    key = _fingerprint(layout, image_size)
    hit = load_arrays(paths[split], key)
    if hit is not None and {"images", "labels", "names"} <= set(hit):
        return hit
    decoded = _decode_layout(layout, image_size, progress)
    for s in SPLITS:
        save_arrays(paths[s], key, **decoded[s])
    return decoded[split]


# ---------------------------------------------------------------------------- the loader


def _merge_trainval(train: dict, val: dict) -> dict[str, np.ndarray]:
    """train then val; a val class of the same name as a train class keeps that label."""
    names = [str(n) for n in train["names"]]
    index = {n: i for i, n in enumerate(names)}
    for n in (str(n) for n in val["names"]):
        index.setdefault(n, len(index))
        if n not in names:
            names.append(n)
    val_labels = np.array([index[str(val["names"][i])] for i in val["labels"]], dtype=np.int64)
    return {
        "images": np.concatenate([train["images"], val["images"]]),
        "labels": np.concatenate([train["labels"], val_labels]),
        "names": np.array(names, dtype=str),
    }


def load_folder(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    path: str | Path | None = None,
    image_size: int | None = None,
    split_ratios: object = None,
    split_seed: int = 0,
    progress: bool = True,
) -> ArrayStore:
    """One split (train, val, test or trainval) of the user's image folder as uint8 [N, C, S, S]."""
    if path is None:
        raise FsbenchError(f"the folder dataset needs --dataset-dir DIR ({LAYOUT_HELP})")
    size = None if image_size is None else check_image_size(image_size)
    skipped: list[Path] = []
    layout = find_layout(Path(path).expanduser(), split_ratios, split_seed, skipped)
    if split in ("train", "trainval"):
        warn_skipped(skipped)  # once per run: the first split a run loads
    has_val = bool(layout.splits["val"])
    if split == "val" and not has_val:
        raise FsbenchError(
            f"{layout.folder} has no val split ({layout.rule}); train without validation: "
            "--eval-every 0 --select last"
        )
    if split == "trainval":
        arrays = split_arrays(layout, "train", size, data_root, progress)
        if has_val:
            val = split_arrays(layout, "val", size, data_root, progress)
            arrays = _merge_trainval(arrays, val)
    else:
        arrays = split_arrays(layout, split, size, data_root, progress)
    images = arrays["images"]
    side, channels = images.shape[-1], images.shape[1]
    train_names = {c.name for c in layout.splits["train"]}
    meta = {
        "label": f"image folder {layout.folder.name}",
        "source": str(layout.folder),
        "split_rule": layout.rule,
        "preprocessing": f"{side}x{side} {'grayscale' if channels == 1 else 'RGB'}: shorter side "
        f"to {side}, centre crop (PIL bilinear, antialiased); "
        + ("every image is grayscale" if channels == 1 else "RGB since not every image is gray")
        + (f"; image_size {size} asked" if size else "; image_size by the rule (own size or 84)"),
        "transform": photo_transform(side, channels).to_dict(),
        "same_classes": train_names == {c.name for c in layout.splits["test"]},
        "comparable": False,
        "not_comparable": "your own images: no published number",
    }
    return ArrayStore(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(arrays["labels"].astype(np.int64)),
        [str(n) for n in arrays["names"]],
        device,
        meta=meta,
    )


def has_validation(path: Path, split_ratios: object = None, split_seed: int = 0) -> bool:
    """Whether the folder yields a val split (a val/ folder, or val classes by the ratios)."""
    return bool(find_layout(Path(path).expanduser(), split_ratios, split_seed).splits["val"])
