"""Fashion-MNIST from its four IDX files: splits of images (all ten classes in each), errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.data import describe_split, load_split
from fsbench.data.fashion import SYSTEM_DIR
from fsbench.errors import FsbenchError


def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion(folder: Path, train: int = 60, test: int = 20) -> dict[str, np.ndarray]:
    """The four files in the exact public layout (gzipped IDX, magic 2051 / 2049)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(test) * 3) % 10,
    }
    for name, array in arrays.items():
        _idx(folder / f"{name}.gz", array, 2051 if "images" in name else 2049)
    return arrays


def test_splits_divide_images_and_keep_the_ten_classes(tmp_path):
    arrays = write_fashion(tmp_path / "f")
    stores = {
        s: load_split("fashion", s, path=tmp_path / "f", data_root=tmp_path)
        for s in ("train", "val", "test", "trainval")
    }
    assert [len(stores[s].data) for s in ("train", "val", "test", "trainval")] == [50, 10, 20, 60]
    for store in stores.values():
        assert store.num_classes == 10 and store.class_names[0] == "T-shirt/top"
        assert store.data.shape[1:] == (1, 28, 28) and store.data.dtype == torch.uint8
    # the test split: grouped by class, file order within a class, the file's own pixels
    test = stores["test"]
    labels = arrays["t10k-labels-idx1-ubyte"]
    order = np.argsort(labels, kind="stable")
    assert np.array_equal(test.labels.numpy(), labels[order])
    assert np.array_equal(test.data[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"][order])
    # val = the last sixth of the training file; trainval keeps the labels (same classes)
    val_rows = arrays["train-images-idx3-ubyte"][50:][np.argsort(np.arange(50, 60) % 10)]
    assert np.array_equal(stores["val"].data[:, 0].numpy(), val_rows)
    assert int(stores["trainval"].labels.max()) == 9
    facts = describe_split("fashion", "test", test)
    assert (
        facts["same_classes"] is True and "val = the last 10 training images" in facts["split_rule"]
    )


@pytest.mark.skipif(not SYSTEM_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_the_real_files_of_the_debian_package(tmp_path):
    sizes = {s: load_split("fashion", s, data_root=tmp_path) for s in ("train", "val", "test")}
    assert {s: len(v.data) for s, v in sizes.items()} == {
        "train": 50_000,
        "val": 10_000,
        "test": 10_000,
    }
    assert sizes["test"].class_counts.tolist() == [1000] * 10


def test_missing_or_corrupt_files_are_one_line(tmp_path):
    write_fashion(tmp_path / "f")
    (tmp_path / "f" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FsbenchError, match="Fashion-MNIST: .*t10k-labels-idx1-ubyte") as err:
        load_split("fashion", "test", path=tmp_path / "f", data_root=tmp_path)
    assert "mnist-path" not in str(err.value)  # the user's words, not mdmnist's flag
    r = CliRunner().invoke(
        main,
        [
            "run",
            "protonet",
            "fashion",
            "--dataset-dir",
            str(tmp_path / "f"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert_one_line_error(r, "Error: Fashion-MNIST")
    assert not (tmp_path / "o").exists()
    with pytest.raises(FsbenchError, match="no preset for maml on fashionmnist"):
        from fsbench.resolve import resolve_settings

        resolve_settings("maml", "fashionmnist", {})


def test_protonet_trains_on_it(tmp_path):
    write_fashion(tmp_path / "f", train=120, test=60)
    out = tmp_path / "run"
    r = CliRunner().invoke(
        main,
        [
            "run", "protonet", "fashion", "--dataset-dir", str(tmp_path / "f"), "--out", str(out),
            "--iterations", "3", "--episodes", "4", "--hidden", "4", "--shot", "2", "--query", "2",
            "--train-query", "2", "--eval-every", "0", "--select", "last", "--quiet",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (out / "result.json").is_file()
