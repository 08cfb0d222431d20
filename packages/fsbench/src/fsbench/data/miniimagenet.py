"""miniImageNet (Vinyals et al. 2016; the split of Ravi & Larochelle 2017) from the files users have.

There is no official download; fsbench reads the three forms in common use, from ``path`` (or
``data_root/miniimagenet``), first found wins:

- ``pickle``: ``mini-imagenet-cache-{train,val,test}.pkl`` (val also ``-validation.pkl``), the cache
  of renmengye/few-shot-ssl-public used by learn2learn and torchmeta: a dict with ``image_data``
  (uint8 [N, 84, 84, 3]) and ``class_dict`` (class -> list of row indices);
- ``csv``: Ravi & Larochelle's ``train.csv``/``val.csv``/``test.csv`` (header ``filename,label``)
  beside an ``images/`` folder of full-size JPEGs, resized here to 84x84 with PIL LANCZOS (as
  cbfinn/maml's script) and cached decoded;
- ``folders``: ``{train,val,test}/<class>/<image>`` (mini-imagenet-tools, the MTL download),
  resized to 84x84 when they are not already.

Classes are ordered by name in every form, so the three give the same labels. 64 / 16 / 20
classes of 600 images. Pickles are only read from the folder the user names.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from fsbench.data.diskcache import fingerprint, load_arrays, save_arrays
from fsbench.data.pickles import read_pickle
from fsbench.data.png_decode import decode_pngs
from fsbench.data.store import ArrayStore
from fsbench.data.transform import InputTransform
from fsbench.errors import FsbenchError

SIZE = 84
# the images/ and csv forms: whole image to 84x84 RGB with PIL LANCZOS (the pickle holds it done)
TRANSFORM = InputTransform(3, SIZE, fit="stretch", filter="lanczos")
FILES = {
    "train": ("mini-imagenet-cache-train.pkl",),
    "val": ("mini-imagenet-cache-val.pkl", "mini-imagenet-cache-validation.pkl"),
    "test": ("mini-imagenet-cache-test.pkl",),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def find_form(folder: Path) -> str:
    """Which of the three forms ``folder`` holds; FsbenchError saying what to put where."""
    if (folder / FILES["train"][0]).is_file():
        return "pickle"
    if (folder / "train.csv").is_file() and (folder / "images").is_dir():
        return "csv"
    if (folder / "train").is_dir():
        return "folders"
    raise FsbenchError(
        f"miniImageNet not found in {folder}: put there mini-imagenet-cache-{{train,val,test}}.pkl, "
        "or train.csv/val.csv/test.csv with an images/ folder (Ravi & Larochelle), or "
        "train/ val/ test/ folders of class folders; or pass --dataset-dir DIR"
    )


def _from_pickle(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    path = next((folder / n for n in FILES[split] if (folder / n).is_file()), None)
    if path is None:
        raise FsbenchError(f"{folder} has no {' or '.join(FILES[split])}")
    data = read_pickle(path)
    if "image_data" not in data or "class_dict" not in data:
        raise FsbenchError(f"{path}: needs the keys image_data and class_dict, has {sorted(data)}")
    images = np.asarray(data["image_data"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise FsbenchError(
            f"{path}: image_data must be uint8 [N, H, W, 3], is {images.dtype} {list(images.shape)}"
        )
    class_dict = {
        (k.decode() if isinstance(k, bytes) else str(k)): v for k, v in data["class_dict"].items()
    }
    names = sorted(class_dict)
    labels = np.full(len(images), -1, dtype=np.int64)
    for label, name in enumerate(names):
        labels[np.asarray(class_dict[name], dtype=np.int64)] = label
    if (labels < 0).any():
        raise FsbenchError(f"{path}: class_dict does not cover every image")
    return images, labels, names


def _decoded(files: list[Path], labels: np.ndarray, names: list[str], cache: Path, progress: bool):
    """Decode (once; cached) the images of a csv or folders split at 84x84 RGB."""
    fp = fingerprint(files) + f"-{SIZE}-lanczos-rgb"
    hit = load_arrays(cache, fp)
    if hit is not None:
        return hit["images"], hit["labels"], [str(n) for n in hit["names"]]
    images = decode_pngs(
        files,
        transform=TRANSFORM,
        progress=f"decoding miniImageNet {cache.stem}" if progress else None,
    )
    save_arrays(cache, fp, images=images, labels=labels, names=np.array(names))
    return images, labels, names


def _from_csv(folder: Path, split: str, cache_dir: Path, progress: bool):
    table = folder / f"{split}.csv"
    if not table.is_file():
        raise FsbenchError(f"{folder} has no {split}.csv")
    with open(table, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["filename", "label"]:
        raise FsbenchError(f"{table}: the first line must be 'filename,label'")
    rows = [r for r in rows[1:] if r]
    names = sorted({label for _, label in rows})
    index = {n: i for i, n in enumerate(names)}
    files = [folder / "images" / name for name, _ in rows]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise FsbenchError(
            f"{table} lists {len(missing)} images missing from images/, e.g. {missing[0].name}"
        )
    labels = np.array([index[label] for _, label in rows], dtype=np.int64)
    return _decoded(files, labels, names, cache_dir / f"csv-{split}.npz", progress)


def _from_folders(folder: Path, split: str, cache_dir: Path, progress: bool):
    root = folder / split
    if not root.is_dir():
        raise FsbenchError(f"{folder} has no {split}/ folder of class folders")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    files, labels = [], []
    for label, name in enumerate(names):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise FsbenchError(f"{root}: no images in its class folders")
    return _decoded(
        files, np.array(labels, dtype=np.int64), names, cache_dir / f"folders-{split}.npz", progress
    )


def load_miniimagenet(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    path: str | Path | None = None,
    progress: bool = True,
) -> ArrayStore:
    """One split of miniImageNet: uint8 [N, 3, 84, 84], classes ordered by name."""
    folder = Path(path).expanduser() if path is not None else data_root / "miniimagenet"
    if not folder.is_dir():
        find_form(folder)  # raises with what to put where
    form = find_form(folder)
    cache_dir = data_root / "miniimagenet" / "cache"
    if form == "pickle":
        images, labels, names = _from_pickle(folder, split)
    elif form == "csv":
        images, labels, names = _from_csv(folder, split, cache_dir, progress)
    else:
        images, labels, names = _from_folders(folder, split, cache_dir, progress)
    data = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    meta = {
        "source": str(folder),
        "form": form,
        "split_rule": "Ravi & Larochelle's split: 64 / 16 / 20 classes",
        "preprocessing": f"{SIZE}x{SIZE} RGB"
        + ("" if form == "pickle" else ", resized with PIL LANCZOS where needed"),
        "transform": TRANSFORM.to_dict(),
    }
    return ArrayStore(data, torch.from_numpy(labels), names, device, meta=meta)
