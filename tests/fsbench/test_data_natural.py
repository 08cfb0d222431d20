"""miniImageNet and FC100 from small files written in their exact public formats."""

from __future__ import annotations

import csv
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fsbench.data import describe_split, load_split
from fsbench.data import fc100 as fc
from fsbench.errors import FsbenchError
from PIL import Image

CLASSES = {
    "train": ["n01532829", "n01558993", "n01704323"],
    "val": ["n01855672", "n02091244"],
    "test": ["n01930112", "n01981276"],
}
PER_CLASS = 3


def _images(split: str) -> np.ndarray:
    rng = np.random.default_rng(len(split))
    return rng.integers(0, 256, (len(CLASSES[split]) * PER_CLASS, 84, 84, 3), dtype=np.uint8)


def write_pickles(folder: Path, val_name: str = "val") -> None:
    """renmengye's cache: {'image_data': uint8 [N, 84, 84, 3], 'class_dict': name -> rows}."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        names = CLASSES[split]
        # rows of a class are not contiguous here, and the dict is not sorted
        rows = {n: [i * len(names) + k for i in range(PER_CLASS)] for k, n in enumerate(names)}
        data = {"image_data": _images(split), "class_dict": dict(reversed(list(rows.items())))}
        name = val_name if split == "val" else split
        with open(folder / f"mini-imagenet-cache-{name}.pkl", "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


def write_folders(folder: Path) -> None:
    """{split}/<class>/<image>.png holding the pickles' pixels (PNG: lossless)."""
    for split in ("train", "val", "test"):
        names, images = CLASSES[split], _images(split)
        for k, name in enumerate(names):
            (folder / split / name).mkdir(parents=True)
            for i in range(PER_CLASS):
                Image.fromarray(images[i * len(names) + k]).save(folder / split / name / f"{i}.png")


def write_csv(folder: Path) -> None:
    """Ravi & Larochelle: full-size JPEGs in images/, train/val/test.csv 'filename,label'."""
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        with open(folder / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["filename", "label"])
            for name in CLASSES[split]:
                for i in range(PER_CLASS):
                    file = f"{name}{i:08d}.jpg"
                    pixels = rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / "images" / file)
                    w.writerow([file, name])


@pytest.mark.parametrize("val_name", ["val", "validation"])
def test_pickle_cache(tmp_path, val_name):
    write_pickles(tmp_path / "mini", val_name)
    store = load_split("miniimagenet", "val", path=tmp_path / "mini", data_root=tmp_path)
    assert store.example_shape == (3, 84, 84) and store.data.dtype == torch.uint8
    assert store.class_names == sorted(CLASSES["val"]) and store.class_counts.tolist() == [3, 3]
    images = _images("val")
    first = store.data[store.labels == 0][0].permute(1, 2, 0).numpy()
    assert np.array_equal(first, images[0])  # n01855672 is row 0, 2, 4
    assert describe_split("miniimagenet", "val", store)["form"] == "pickle"


def test_the_three_forms_agree(tmp_path):
    write_pickles(tmp_path / "p")
    write_folders(tmp_path / "f")
    for split in ("train", "test"):
        a = load_split("mini", split, path=tmp_path / "p", data_root=tmp_path)
        b = load_split("mini", split, path=tmp_path / "f", data_root=tmp_path)
        assert a.class_names == b.class_names
        for c in range(a.num_classes):  # same pixels per class (in its own order)
            ka = {x.numpy().tobytes() for x in a.data[a.labels == c]}
            kb = {x.numpy().tobytes() for x in b.data[b.labels == c]}
            assert ka == kb


def test_csv_and_images_are_resized_and_cached(tmp_path):
    write_csv(tmp_path / "c")
    store = load_split("miniimagenet", "train", path=tmp_path / "c", data_root=tmp_path)
    assert store.example_shape == (3, 84, 84) and store.num_classes == 3 and len(store) == 9
    assert (tmp_path / "miniimagenet" / "cache" / "csv-train.npz").is_file()
    again = load_split("miniimagenet", "train", path=tmp_path / "c", data_root=tmp_path)
    assert torch.equal(again.data, store.data)
    (tmp_path / "c" / "val.csv").write_text("file,class\n")
    with pytest.raises(FsbenchError, match="'filename,label'"):
        load_split("miniimagenet", "val", path=tmp_path / "c", data_root=tmp_path)


def test_missing_minimagenet_says_what_to_put_where(tmp_path):
    with pytest.raises(FsbenchError, match="mini-imagenet-cache-.*train.csv.*--dataset-dir"):
        load_split("miniimagenet", "train", data_root=tmp_path)


COARSE = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
]  # fmt: skip


def write_cifar100(folder: Path, train_per_class: int = 2, test_per_class: int = 1) -> Path:
    """The CIFAR-100 python archive: train/test/meta pickles with bytes keys, data [N, 3072]."""
    archive = folder / "cifar-100-python"
    archive.mkdir(parents=True)
    coarse_of = [(f * 7) % 20 for f in range(100)]  # 5 fine classes per superclass, interleaved
    for name, per in (("train", train_per_class), ("test", test_per_class)):
        fine = [f for f in range(100) for _ in range(per)]
        data = np.array([[f % 256, per % 256] * 1536 for f in fine], dtype=np.uint8)
        blob = {
            b"data": data,
            b"fine_labels": fine,
            b"coarse_labels": [coarse_of[f] for f in fine],
            b"filenames": [f"{name}_{i}.png".encode() for i in range(len(fine))],
        }
        (archive / name).write_bytes(pickle.dumps(blob))
    meta = {
        b"fine_label_names": [f"fine{f:02d}".encode() for f in range(100)],
        b"coarse_label_names": [c.encode() for c in COARSE],
    }
    (archive / "meta").write_bytes(pickle.dumps(meta))
    return folder


def test_fc100_superclass_split(tmp_path):
    folder = write_cifar100(tmp_path / "fc")
    stores = {
        s: load_split("fc100", s, path=folder, data_root=tmp_path) for s in ("train", "val", "test")
    }
    assert [stores[s].num_classes for s in ("train", "val", "test")] == [60, 20, 20]
    names = [set(stores[s].class_names) for s in ("train", "val", "test")]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    test = stores["test"]
    assert test.example_shape == (3, 32, 32) and test.class_counts.tolist() == [3] * 20
    facts = describe_split("fc100", "test", test)
    assert facts["superclasses"] == ["aquatic_mammals", "insects", "medium_mammals", "people"]
    # each class: CIFAR's training images first, then its test image (marked by byte 1 of data)
    first_class = test.data[test.labels == 0]
    assert first_class[:, 0, 0, 1].tolist() == [2, 2, 1]


def test_fc100_download_and_missing(tmp_path, monkeypatch):
    with pytest.raises(FsbenchError, match="CIFAR-100 python archive.*--download"):
        load_split("fc100", "train", data_root=tmp_path)
    source = write_cifar100(tmp_path / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(source / "cifar-100-python", arcname="cifar-100-python")
    payload = buf.getvalue()
    monkeypatch.setattr(fc, "MD5", hashlib.md5(payload).hexdigest())

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(fc.urllib.request, "urlopen", lambda url, timeout: Response(payload))
    store = load_split("fc100", "val", data_root=tmp_path / "home", download=True)
    assert store.num_classes == 20
    assert (tmp_path / "home" / "fc100" / "cifar-100-python" / "meta").is_file()
