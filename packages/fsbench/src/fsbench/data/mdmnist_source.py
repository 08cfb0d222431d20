"""DoubleMNIST / TripleMNIST splits from mdmnist's native HDF5 or a PNG tree, generated if missing.

Folder: ``data_root/<mdmnist.default_output_name(n, 123, image_size)>`` (the published datasets'
name), with ``-<k>per-class`` appended when ``num_image_per_class`` is not the published 1000,
so a small variant never collides with the published one. Classes are ordered by name in the
store whichever source they come from, so HDF5 and PNG give identical stores.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from fsbench.data.diskcache import fingerprint, load_arrays, save_arrays
from fsbench.data.h5_parallel import InflateError, read_dataset
from fsbench.data.png_decode import decode_pngs
from fsbench.data.store import ArrayStore
from fsbench.data.transform import array_transform
from fsbench.errors import FsbenchError
from fsbench.results import free_space

log = logging.getLogger("fsbench.data")

PUBLISHED_SEED = 123
PUBLISHED_PER_CLASS = 1000
SOURCES = ("hdf5", "png")
_PNG_NAME = re.compile(r"^(\d+)_")
LARGE_FILE = 50 * 2**20  # bytes: reading takes seconds, so say so


def _mdmnist() -> Any:
    """The mdmnist generator package, imported on first use."""
    try:
        import mdmnist
    except ImportError as e:  # a declared dependency, but keep the message to one line
        raise FsbenchError(f"the mdmnist package is needed to generate this dataset: {e}") from None
    return mdmnist


def image_hw(image_size: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """``image_size`` as mdmnist's (H, W): an int means a square; None keeps mdmnist's default."""
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        return (image_size, image_size)
    try:
        h, w = image_size  # type: ignore[misc]
        return (operator.index(h), operator.index(w))
    except (TypeError, ValueError):
        raise FsbenchError(
            f"image_size must be an integer or two integers (H, W), got {image_size!r}"
        ) from None


def folder_name(
    num_digit: int, image_size: int | tuple[int, int] | None, num_image_per_class: int
) -> str:
    """Folder of one generated dataset under the data root (published name, suffixed if smaller)."""
    mdmnist = _mdmnist()
    try:
        name = str(mdmnist.default_output_name(num_digit, PUBLISHED_SEED, image_hw(image_size)))
    except ValueError as e:  # mdmnist's MdmnistError: a one-line message about the argument
        raise FsbenchError(str(e)) from None
    if num_image_per_class != PUBLISHED_PER_CLASS:
        name += f"-{num_image_per_class}per-class"
    return name


def _generate(
    folder: Path,
    num_digit: int,
    image_size: int | tuple[int, int] | None,
    num_image_per_class: int,
    fmt: str,
    progress: bool,
) -> None:
    """Generate the dataset into a temporary folder, then move it (or its missing parts) into place."""
    mdmnist = _mdmnist()
    label = {2: "DoubleMNIST", 3: "TripleMNIST"}.get(num_digit, f"{num_digit}-digit MNIST")
    log.info(
        "generating %s (%d images per class, %s) into %s; this happens once",
        label,
        num_image_per_class,
        fmt,
        folder,
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        out = Path(
            mdmnist.generate(
                num_digit=num_digit,
                image_size=image_hw(image_size),
                num_image_per_class=num_image_per_class,
                seed=PUBLISHED_SEED,
                output=tmp,
                formats=(fmt,),
                workers=max(1, min(4, os.cpu_count() or 1)),
                overwrite=False,
                progress=progress,
            )
            or tmp
        )
    except ValueError as e:  # MdmnistError: bad argument or unwritable output, one line
        shutil.rmtree(tmp, ignore_errors=True)
        text = str(e)
        if "No space left" in text or "quota exceeded" in text.lower():  # say it plainly
            raise FsbenchError(
                f"cannot generate {label} into {folder}: no space left on the device "
                f"({free_space(folder.parent)}); free some space, or pass --data-root on a "
                "larger disk"
            ) from None
        raise FsbenchError(f"generating {label} failed: {e}") from None
    try:
        try:
            os.rename(out, folder)  # atomic when the folder does not exist yet (or is empty)
        except OSError:
            # The folder already holds another format: move in only what it lacks.
            for item in sorted(out.iterdir()):
                target = folder / item.name
                if not target.exists():
                    os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_hdf5(path: Path) -> tuple[np.ndarray, list[str]]:
    """Images [C, K, H, W] uint8 and class names from one mdmnist native HDF5 split file."""
    try:
        with h5py.File(path, "r") as f:
            if "images" not in f or "class_names" not in f:
                raise FsbenchError(
                    f"{path}: not an mdmnist HDF5 split (needs datasets 'images' and "
                    f"'class_names', found {sorted(f.keys())})"
                )
            dset = f["images"]
            if dset.dtype != np.uint8 or dset.ndim != 4:
                raise FsbenchError(
                    f"{path}: 'images' must be uint8 [classes, per_class, H, W]; "
                    f"found {dset.dtype} {list(dset.shape)}"
                )
            images = read_dataset(dset)
            raw_names = f["class_names"][()]
    except FsbenchError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, InflateError) as e:
        raise FsbenchError(
            f"{path}: corrupt or truncated HDF5 file ({e}); delete it to regenerate"
        ) from None
    names = [n.decode("ascii") if isinstance(n, bytes) else str(n) for n in np.ravel(raw_names)]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != len(names):
        raise FsbenchError(
            f"{path}: 'images' must be uint8 [classes, per_class, H, W] with one class name per "
            f"class; found {images.dtype} {list(images.shape)} and {len(names)} names"
        )
    if len(set(names)) != len(names):
        raise FsbenchError(f"{path}: 'class_names' has duplicates; the file is not a valid split")
    return images, names


def _png_files(tree: Path) -> tuple[list[str], list[list[Path]]]:
    """Class names (sorted) and each class's PNG files in image order (by the k of k_class.png)."""
    classes = sorted(p.name for p in tree.iterdir() if p.is_dir())
    files = []
    for c in classes:
        pngs = [p for p in (tree / c).iterdir() if p.suffix.lower() == ".png"]

        def key(p: Path) -> tuple[int, str]:
            m = _PNG_NAME.match(p.name)
            return (int(m.group(1)) if m else -1, p.name)

        files.append(sorted(pngs, key=key))
    return classes, files


def read_png_tree(
    tree: Path, cache_dir: Path | None, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images [N, H, W], labels [N] and class names of a PNG tree ``tree/<class>/<k>_<class>.png``."""
    if not tree.is_dir():
        raise FsbenchError(f"{tree}: PNG tree folder not found")
    classes, files = _png_files(tree)
    flat = [p for fs in files for p in fs]
    if not flat:
        raise FsbenchError(f"{tree}: no PNG images found (expected <class>/<k>_<class>.png)")
    fp = fingerprint(flat)
    cache = None
    if cache_dir is not None:
        key = hashlib.sha1(str(tree.resolve()).encode()).hexdigest()[:16]
        cache = cache_dir / f"png-{key}.npz"
        hit = load_arrays(cache, fp)
        if hit is not None:
            return hit["images"], hit["labels"], [str(c) for c in hit["class_names"]]
    images = decode_pngs(flat, progress=f"decoding {tree}" if progress else None)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(fs) for fs in files])
    if cache is not None:
        save_arrays(cache, fp, images=images, labels=labels, class_names=np.array(classes))
    return images, labels, classes


def load_mdmnist(
    num_digit: int,
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    num_image_per_class: int = PUBLISHED_PER_CLASS,
    image_size: int | tuple[int, int] | None = None,
    source: str = "hdf5",
    path: str | Path | None = None,
    progress: bool = True,
) -> ArrayStore:
    """One split of DoubleMNIST (n=2) / TripleMNIST (n=3) as uint8 [N, 1, H, W] on ``device``."""
    if source not in SOURCES:
        raise FsbenchError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
    if not isinstance(num_image_per_class, int) or num_image_per_class < 1:
        raise FsbenchError(
            f"num_image_per_class must be an integer >= 1, got {num_image_per_class!r}"
        )
    generated = False
    if path is not None:
        folder = Path(path).expanduser()
    else:
        folder = data_root / folder_name(num_digit, image_size, num_image_per_class)
    target = folder / (f"{split}.h5" if source == "hdf5" else split)
    if not target.exists():
        if path is not None:
            raise FsbenchError(
                f"path {folder} has no {target.name} ({'HDF5 file' if source == 'hdf5' else 'PNG folder'})"
            )
        _generate(folder, num_digit, image_size, num_image_per_class, source, progress)
        generated = True
        if not target.exists():
            raise FsbenchError(f"mdmnist did not write {target}; check the mdmnist installation")
    if source == "hdf5":
        if target.stat().st_size > LARGE_FILE:
            log.info("reading %s (%.0f MB)", target, target.stat().st_size / 2**20)
        grid, file_names = read_hdf5(target)
        c, k, h, w = grid.shape
        images = grid.reshape(c * k, h, w)
        # Class ids follow the sorted class names (as for a PNG tree); the images stay in file
        # order, which saves a copy: a store never needs its examples grouped by class.
        names = sorted(file_names)
        rank = {name: i for i, name in enumerate(names)}
        per_class = np.array([rank[n] for n in file_names], dtype=np.int64)
        labels = np.repeat(per_class, k)
    else:
        images, labels, names = read_png_tree(target, data_root / "cache", progress)
    meta = {
        "source": str(target),
        "format": source,
        "generated_now": generated,
        "generator": f"mdmnist, seed {PUBLISHED_SEED}, {num_digit} digits",
        "num_image_per_class": num_image_per_class if path is None else None,
    }
    data = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    if data.shape[-1] == data.shape[-2]:  # predict takes square images only
        meta["transform"] = array_transform(int(data.shape[-1]), 1).to_dict()
    return ArrayStore(data, torch.from_numpy(labels), list(names), device, meta=meta)
