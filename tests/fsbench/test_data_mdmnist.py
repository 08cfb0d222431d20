"""DoubleMNIST / TripleMNIST stores from mdmnist's HDF5 and PNG outputs, generation and bad files."""

from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np
import pytest
import torch
from fsbench.data import describe_split, load_split
from fsbench.errors import FsbenchError

mdmnist = pytest.importorskip("mdmnist")
if not hasattr(mdmnist, "generate"):
    pytest.skip("mdmnist.generate is not available yet", allow_module_level=True)

from fsbench.data.mdmnist_source import folder_name  # noqa: E402


def per_class(store) -> dict[str, torch.Tensor]:
    """Each class's examples in order, by class name: the content of a store, whatever its layout."""
    return {name: store.data[store.labels == c] for c, name in enumerate(store.class_names)}


def test_folder_names_follow_the_published_ones():
    assert folder_name(2, None, 1000) == "double_mnist_seed_123_image_size_64_64"
    assert folder_name(3, None, 1000) == "triple_mnist_seed_123_image_size_84_84"
    assert folder_name(2, None, 25) == "double_mnist_seed_123_image_size_64_64-25per-class"
    assert folder_name(2, (64, 96), 1000) == "double_mnist_seed_123_image_size_64_96"
    assert folder_name(2, 72, 1000) == "double_mnist_seed_123_image_size_72_72"
    with pytest.raises(FsbenchError, match="image"):
        folder_name(2, (20, 20), 1000)


def test_tiny_doublemnist_splits(tiny_doublemnist):
    stores = {s: tiny_doublemnist.load(s) for s in ("train", "val", "test")}
    assert [stores[s].num_classes for s in ("train", "val", "test")] == [64, 16, 20]
    names = [n for s in stores.values() for n in s.class_names]
    assert sorted(names) == [f"{i:02d}" for i in range(100)], "splits must partition the classes"
    for store in stores.values():
        assert store.data.dtype == torch.uint8 and store.example_shape == (1, 64, 64)
        assert store.labels.dtype == torch.int64
        assert store.class_counts.tolist() == [25] * store.num_classes
        assert store.class_names == sorted(store.class_names)
    facts = describe_split("doubled", "val", stores["val"])
    assert facts["format"] == "hdf5" and facts["source"].endswith("val.h5")
    assert facts["classes"] == 16 and facts["examples"] == 400


def test_images_show_the_digits_of_their_class(tiny_doublemnist):
    store = tiny_doublemnist.load("train")
    mean = store.data.float().mean()
    assert 10 < mean < 80, "images should be mostly dark with bright digits"


def test_png_tree_and_hdf5_give_identical_stores(tiny_doublemnist):
    for split in ("train", "test"):
        h5 = tiny_doublemnist.load(split, source="hdf5")
        png = tiny_doublemnist.load(split, source="png")
        assert h5.class_names == png.class_names
        a, b = per_class(h5), per_class(png)
        assert all(torch.equal(a[n], b[n]) for n in a)
        ea = h5.sample_episode(h5.generator(9), 5, 1, 15, 3)
        eb = png.sample_episode(png.generator(9), 5, 1, 15, 3)
        assert torch.equal(ea.support_x, eb.support_x) and torch.equal(ea.query_x, eb.query_x)
    assert describe_split("doublemnist", "test", png)["format"] == "png"


def test_path_option_reads_an_existing_folder(tiny_doublemnist):
    store = load_split("doubled", "val", path=tiny_doublemnist.path, source="png")
    assert store.num_classes == 16
    with pytest.raises(FsbenchError, match="has no train.h5"):
        load_split("doubled", "train", path=tiny_doublemnist.path / "nowhere")


def test_missing_dataset_is_generated_once(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="fsbench.data"):
        store = load_split("doublemnist", "test", data_root=tmp_path, num_image_per_class=3)
    assert any("generating DoubleMNIST" in r.getMessage() for r in caplog.records)
    folder = tmp_path / "double_mnist_seed_123_image_size_64_64-3per-class"
    assert (folder / "test.h5").is_file() and store.class_counts.tolist() == [3] * 20
    assert describe_split("doublemnist", "test", store)["generated_now"] is True
    again = load_split("doublemnist", "test", data_root=tmp_path, num_image_per_class=3)
    assert describe_split("doublemnist", "test", again)["generated_now"] is False
    # asking for the PNG tree adds it beside the HDF5 files, leaving them untouched
    png = load_split("doublemnist", "test", data_root=tmp_path, num_image_per_class=3, source="png")
    assert (folder / "test").is_dir() and (folder / "test.h5").is_file()
    assert png.class_names == store.class_names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary left behind"


def test_triplemnist_generates_with_three_digit_classes(tmp_path):
    store = load_split("tripled", "val", data_root=tmp_path, num_image_per_class=2)
    assert store.num_classes == 160 and store.example_shape == (1, 84, 84)
    assert all(len(n) == 3 and n.isdigit() for n in store.class_names)


def test_bad_source_and_counts_are_clear_errors(tmp_path):
    with pytest.raises(FsbenchError, match="source must be one of hdf5, png"):
        load_split("doubled", "train", data_root=tmp_path, source="jpeg")
    with pytest.raises(FsbenchError, match="num_image_per_class"):
        load_split("doubled", "train", data_root=tmp_path, num_image_per_class=0)


@pytest.fixture
def broken_copy(tiny_doublemnist, tmp_path):
    """A writable copy of the tiny dataset's HDF5 files, to damage."""
    folder = tmp_path / "broken"
    folder.mkdir()
    for split in ("train", "val", "test"):
        shutil.copy(tiny_doublemnist.path / f"{split}.h5", folder / f"{split}.h5")
    return folder


def test_truncated_hdf5_names_the_file(broken_copy):
    f = broken_copy / "train.h5"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(FsbenchError, match=r"train\.h5: corrupt or truncated HDF5"):
        load_split("doubled", "train", path=broken_copy)


def test_garbage_hdf5_names_the_file(broken_copy):
    (broken_copy / "val.h5").write_bytes(b"\x00not hdf5 at all" * 100)
    with pytest.raises(FsbenchError, match=r"val\.h5"):
        load_split("doubled", "val", path=broken_copy)


def test_damaged_chunk_names_the_file(broken_copy):
    f = broken_copy / "test.h5"
    with h5py.File(f, "r") as h:
        offset = h["images"].id.get_chunk_info(0).byte_offset
    data = bytearray(f.read_bytes())
    data[offset + 10 : offset + 200] = b"\xff" * 190
    f.write_bytes(bytes(data))
    with pytest.raises(FsbenchError, match=r"test\.h5"):
        load_split("doubled", "test", path=broken_copy)


@pytest.mark.parametrize(
    "images, names, message",
    [
        (np.zeros((2, 3, 8, 8), np.float32), [b"00", b"01"], "uint8"),
        (np.zeros((2, 3, 8), np.uint8), [b"00", b"01"], "uint8"),
        (np.zeros((2, 3, 8, 8), np.uint8), [b"00"], "one class name per class"),
        (np.zeros((2, 3, 8, 8), np.uint8), [b"00", b"00"], "duplicates"),
        (None, [b"00"], "needs datasets 'images' and 'class_names'"),
    ],
)
def test_wrong_shapes_name_the_file(tmp_path, images, names, message):
    with h5py.File(tmp_path / "train.h5", "w") as h:
        if images is not None:
            h["images"] = images
        h["class_names"] = np.array(names, dtype="S2")
    with pytest.raises(FsbenchError, match=message) as info:
        load_split("doubled", "train", path=tmp_path)
    assert "train.h5" in str(info.value)


def test_resize_at_load_is_recorded(tiny_doublemnist):
    store = tiny_doublemnist.load("test", resize=32)
    full = tiny_doublemnist.load("test")
    assert store.example_shape == (1, 32, 32) and store.data.dtype == torch.uint8
    assert torch.equal(store.labels, full.labels) and store.class_names == full.class_names
    facts = describe_split("doublemnist", "test", store)
    assert facts["resized"] == "32x32 from 64x64 (bilinear, antialias)"
    # antialiased: the digits' ink is kept (mean brightness within 1%), not aliased away
    assert abs(store.data.float().mean() / full.data.float().mean() - 1) < 0.01
    expect = torch.nn.functional.interpolate(
        full.data.float(), size=(32, 32), mode="bilinear", antialias=True
    )
    assert torch.equal(store.data, expect.round().clamp(0, 255).to(torch.uint8))
    with pytest.raises(FsbenchError, match="resize"):
        tiny_doublemnist.load("test", resize=0)
