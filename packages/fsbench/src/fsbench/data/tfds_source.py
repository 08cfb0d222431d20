"""Any TensorFlow Datasets folder in the array_record format as a dataset (dataset name ``tfds``).

``--dataset-dir DIR`` names the folder holding ``dataset_info.json`` (e.g. the one ``mdmnist
--format tfds`` writes under OUT/tfds/NAME/1.0.0, or a user's own tfds-prepared data), or a folder
with exactly one such folder below it. The split's examples need an image feature (uint8, H x W
x C) and a class-label feature: the features named ``image`` and ``label`` when present, else the
only Image and the only ClassLabel feature. Labels are renumbered 0..C-1 within the split in the
order of their names' positions in the ClassLabel, so the classes of a split keep the order the
dataset gives them; images keep the stored order. Read with tensorflow-datasets' data source
(no TensorFlow), decoded once and cached under the data root like every other dataset.

tensorflow-datasets is the optional extra ``fsbench[tfds]``; it is imported only here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from fsbench.data.diskcache import fingerprint, load_arrays, save_arrays
from fsbench.data.store import ArrayStore
from fsbench.data.transform import array_transform
from fsbench.errors import FsbenchError

INSTALL = "pip install 'fsbench[tfds]' (tensorflow-datasets>=4.9, without TensorFlow)"
INFO = "dataset_info.json"


def _tfds():
    """The tensorflow_datasets module, or one FsbenchError line saying how to install it."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise FsbenchError(
            f"the tfds dataset needs tensorflow-datasets: {INSTALL} ({exc})"
        ) from None
    return tfds


def dataset_folder(path: str | Path | None) -> Path:
    """The folder holding dataset_info.json: ``path`` itself or its only such subfolder."""
    if path is None:
        raise FsbenchError("the tfds dataset needs --dataset-dir DIR (a TFDS dataset folder)")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FsbenchError(f"--dataset-dir {folder} is not a directory")
    if (folder / INFO).is_file():
        return folder
    found = sorted(p.parent for p in folder.rglob(INFO))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(map(str, found[:3]))})"
        raise FsbenchError(
            f"--dataset-dir {folder} holds {what} TFDS dataset folders ({INFO}); name one"
        )
    return found[0]


def has_validation(folder: Path) -> bool:
    """Whether the dataset in ``folder`` (from ``dataset_folder``) has a ``val`` split; read from
    its dataset_info.json, without importing tensorflow_datasets."""
    info = json.loads((folder / INFO).read_text())
    return any(split.get("name") == "val" for split in info.get("splits", []))


def _features(builder) -> tuple[str, str, list[str]]:
    """(image feature, label feature, class names) of a builder's FeaturesDict."""
    tfds = _tfds()
    feats = builder.info.features
    images = [k for k, f in feats.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in feats.items() if isinstance(f, tfds.features.ClassLabel)]
    image = "image" if "image" in images else (images[0] if len(images) == 1 else None)
    label = "label" if "label" in labels else (labels[0] if len(labels) == 1 else None)
    if image is None or label is None:
        raise FsbenchError(
            f"TFDS dataset {builder.info.name}: needs one Image and one ClassLabel feature "
            f"(named image and label when there are several); it has {', '.join(feats.keys())}"
        )
    return image, label, list(feats[label].names)


def _decode(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images [N, C, H, W] uint8, labels [N] in the ClassLabel's numbering, class names)."""
    tfds = _tfds()
    builder = tfds.builder_from_directory(str(folder))
    if split not in builder.info.splits:
        raise FsbenchError(
            f"TFDS dataset {builder.info.name} has no {split} split (it has "
            f"{', '.join(builder.info.splits.keys())})"
        )
    image, label, names = _features(builder)
    source = builder.as_data_source(split)
    n = len(source)
    if n == 0:
        raise FsbenchError(f"TFDS dataset {builder.info.name}: the {split} split is empty")
    first = np.asarray(source[0][image])
    images = np.empty((n, first.shape[2], first.shape[0], first.shape[1]), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        example = source[i]
        images[i] = np.moveaxis(np.asarray(example[image], dtype=np.uint8), -1, 0)
        labels[i] = int(example[label])
    return images, labels, names


def load_tfds(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    path: str | Path | None = None,
    progress: bool = True,
) -> ArrayStore:
    """One split of a TFDS folder as an ArrayStore (labels 0..C-1 over the split's classes)."""
    folder = dataset_folder(path)
    sources = sorted(p for p in folder.iterdir() if p.is_file())
    key = fingerprint(sources)
    cache = Path(data_root) / "tfds-cache" / f"{key[:16]}-{split}.npz"
    arrays = load_arrays(cache, key)
    if arrays is None:
        images, labels, names = _decode(folder, split)
        arrays = {"images": images, "labels": labels, "names": np.array(names)}
        save_arrays(cache, key, **arrays)
    names = [str(n) for n in arrays["names"]]
    present = np.unique(arrays["labels"])  # sorted ClassLabel ids of this split's classes
    local = np.searchsorted(present, arrays["labels"])
    meta = {
        "source": str(folder),
        "format": "tfds array_record",
        "comparable": False,
        "not_comparable": "a user's TFDS dataset: no published number",
        "label": f"TFDS {folder.parent.name}",
    }
    images = arrays["images"]
    if images.shape[1] in (1, 3) and images.shape[2] == images.shape[3]:
        meta["transform"] = array_transform(int(images.shape[3]), int(images.shape[1])).to_dict()
    return ArrayStore(
        torch.from_numpy(arrays["images"]),
        torch.from_numpy(local),
        [names[i] for i in present],
        device,
        meta=meta,
    )
