"""On-disk layouts: PNG tree, native HDF5, torchmeta export and the manifest."""

from __future__ import annotations

import io
import json

import h5py
import mdmnist
import numpy as np
import pytest
from conftest import decode_png
from mdmnist.splits import split_classes
from PIL import Image


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    """A small DoubleMNIST in all three formats."""
    out = tmp_path_factory.mktemp("fmt") / "ds"
    return mdmnist.generate(
        num_image_per_class=12,
        output=out,
        formats=("png", "hdf5", "torchmeta"),
        workers=2,
        progress=False,
    )


def test_png_tree_layout(everything):
    """OUT/{split}/{class}/{k}_{class}.png, grayscale 8-bit, classes as the split says."""
    splits = split_classes(2, (64, 16, 20), 123)
    for split, names in splits.items():
        assert sorted(p.name for p in (everything / split).iterdir()) == sorted(names)
        folder = everything / split / names[0]
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f"{k}_{names[0]}.png" for k in range(12)
        )
        with Image.open(folder / f"0_{names[0]}.png") as im:
            assert im.mode == "L" and im.size == (64, 64)
            assert im.info.get("interlace", 0) == 0


def test_native_hdf5_contents(everything):
    """images uint8 [classes, per_class, H, W], chunked by class and compressed; names S2; attrs."""
    splits = split_classes(2, (64, 16, 20), 123)
    for split, names in splits.items():
        with h5py.File(everything / f"{split}.h5", "r") as f:
            images, class_names = f["images"], f["class_names"]
            assert images.dtype == np.uint8 and images.shape == (len(names), 12, 64, 64)
            assert images.chunks == (1, 12, 64, 64) and images.compression == "gzip"
            assert class_names.dtype == np.dtype("S2")
            assert [b.decode() for b in class_names[...]] == names
            assert f.attrs["num_digit"] == 2 and f.attrs["seed"] == 123
            assert list(f.attrs["image_size"]) == [64, 64]
            # the same pixels as the PNG tree, class by class
            for i in (0, len(names) - 1):
                png = decode_png((everything / split / names[i] / f"5_{names[i]}.png").read_bytes())
                np.testing.assert_array_equal(images[i, 5], png)


def test_hdf5_partial_last_chunk(tmp_path):
    """A class larger than one chunk is split into chunks, the last one padded, and reads back."""
    from mdmnist.writers import hdf5 as hdf5_writer

    old = hdf5_writer.CHUNK_BYTES
    hdf5_writer.CHUNK_BYTES = 5 * 28 * 28
    try:
        out = mdmnist.generate(
            num_digit=1,
            num_image_per_class=12,
            output=tmp_path / "c",
            formats=("hdf5", "png"),
            progress=False,
        )
    finally:
        hdf5_writer.CHUNK_BYTES = old
    with h5py.File(out / "train.h5", "r") as f:
        assert f["images"].chunks == (1, 5, 28, 28)
        name = f["class_names"][0].decode()
        for k in (0, 4, 5, 11):
            png = decode_png((out / "train" / name / f"{k}_{name}.png").read_bytes())
            np.testing.assert_array_equal(f["images"][0, k], png)
    assert mdmnist.verify(out) == []


def test_torchmeta_export_reads_like_torchmeta(everything):
    """f['datasets'][label][i] -> PNG bytes -> PIL image; labels JSON sorted; torchmeta's file order."""
    splits = split_classes(2, (64, 16, 20), 123)
    for split, names in splits.items():
        labels = json.loads((everything / f"{split}_labels.json").read_text())
        assert labels == sorted(names)
        with h5py.File(everything / f"{split}_data.hdf5", "r") as f:
            data = f["datasets"]
            assert sorted(data.keys()) == labels
            label = labels[0]
            assert len(data[label]) == 12
            files = sorted((everything / split / label).glob("*.png"))  # torchmeta: glob + sort
            for i, path in enumerate(files):
                image = Image.open(io.BytesIO(data[label][i])).convert("RGB")
                assert image.size == (64, 64)
                assert bytes(data[label][i]) == path.read_bytes()


def test_manifest_contents(everything):
    """Arguments, version, MNIST checksums, per-class pixel digests and file digests."""
    manifest = json.loads((everything / "manifest.json").read_text())
    assert manifest["args"]["num_digit"] == 2 and manifest["args"]["seed"] == 123
    assert manifest["args"]["formats"] == ["png", "hdf5", "torchmeta"]
    assert manifest["generator"]["version"] == mdmnist.__version__
    assert manifest["mnist"]["sha256"]["train-images-idx3-ubyte"].startswith("ba891046e650")
    test = manifest["splits"]["test"]
    assert len(test["pixels_sha256"]) == 20 and len(test["png_sha256"]) == 20
    assert set(manifest["files"]) == {
        f"{s}{suffix}"
        for s in ("train", "val", "test")
        for suffix in (".h5", "_data.hdf5", "_labels.json")
    }
    import hashlib

    with h5py.File(everything / "test.h5", "r") as f:
        name = f["class_names"][3].decode()
        assert hashlib.sha256(f["images"][3].tobytes()).hexdigest() == test["pixels_sha256"][name]


def test_default_output_names():
    """Named like the published sets."""
    assert mdmnist.default_output_name(2, 123, (64, 64)) == "double_mnist_seed_123_image_size_64_64"
    assert mdmnist.default_output_name(3, 123, None) == "triple_mnist_seed_123_image_size_84_84"
    assert mdmnist.default_output_name(1, 5, None) == "single_mnist_seed_5_image_size_28_28"
    assert mdmnist.default_output_name(4, 0, None) == "quadruple_mnist_seed_0_image_size_112_112"


def test_default_output_in_current_directory(tmp_path, monkeypatch):
    """Without output=, the directory is created under the working directory with the default name."""
    monkeypatch.chdir(tmp_path)
    out = mdmnist.generate(num_digit=1, num_image_per_class=2, formats=("hdf5",), progress=False)
    assert out.name == "single_mnist_seed_123_image_size_28_28"
    assert (tmp_path / out.name / "train.h5").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp dir left beside it


def test_hdf5_chunks_are_sized_for_random_access():
    """A few images per chunk (<= 32, <= 256 KiB raw), so one random image inflates little."""
    from mdmnist.writers.hdf5 import images_per_chunk

    assert images_per_chunk(1000, 64, 64) == 32
    assert images_per_chunk(1000, 84, 84) == 32
    assert images_per_chunk(1000, 140, 140) == 13
    assert images_per_chunk(2, 140, 140) == 2
    assert images_per_chunk(10, 1000, 1000) == 1


def test_hdf5_layout_changes_the_chunks_not_the_data(tmp_path, monkeypatch):
    """The old one-chunk-per-class layout and the new one hold the same pixels, class for class."""
    from mdmnist.writers import hdf5 as hdf5_writer

    new = mdmnist.generate(
        num_digit=1,
        num_image_per_class=70,
        output=tmp_path / "new",
        formats=("hdf5",),
        progress=False,
    )
    monkeypatch.setattr(hdf5_writer, "CHUNK_IMAGES", 10**9)
    monkeypatch.setattr(hdf5_writer, "CHUNK_BYTES", 8 << 20)
    old = mdmnist.generate(
        num_digit=1,
        num_image_per_class=70,
        output=tmp_path / "old",
        formats=("hdf5",),
        progress=False,
    )
    for split in ("train", "val", "test"):
        with h5py.File(new / f"{split}.h5", "r") as a, h5py.File(old / f"{split}.h5", "r") as b:
            assert a["images"].chunks == (1, 32, 28, 28) and b["images"].chunks == (1, 70, 28, 28)
            np.testing.assert_array_equal(a["images"][...], b["images"][...])
    manifests = [json.loads((d / "manifest.json").read_text())["splits"] for d in (new, old)]
    assert manifests[0] == manifests[1]
