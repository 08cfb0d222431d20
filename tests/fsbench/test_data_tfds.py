"""The tfds dataset: mdmnist -> TFDS -> fsbench equals mdmnist -> HDF5 -> fsbench, pixel for
pixel; the folder is found below --dataset-dir; the extra stays optional."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from fsbench.data import load_split
from fsbench.errors import FsbenchError
from mdmnist.pipeline import generate


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    pytest.importorskip("tensorflow_datasets")
    out = tmp_path_factory.mktemp("d") / "double"
    generate(
        num_digit=2,
        num_image_per_class=4,
        output=out,
        formats=("hdf5", "tfds"),
        workers=1,
        progress=False,
    )
    return out


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_tfds_round_trip_equals_hdf5(both, tmp_path, split):
    via_h5 = load_split(
        "doublemnist", split, data_root=tmp_path, path=both, source="hdf5", progress=False
    )
    via_tfds = load_split("tfds", split, data_root=tmp_path, path=both, progress=False)
    assert torch.equal(via_tfds.data, via_h5.data)
    assert torch.equal(via_tfds.labels, via_h5.labels)
    assert via_tfds.class_names == via_h5.class_names
    again = load_split("tfds", split, data_root=tmp_path, path=both, progress=False)  # cached
    assert torch.equal(again.data, via_h5.data)


def test_a_folder_without_one_tfds_dataset_is_one_error(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FsbenchError, match="holds no TFDS dataset folders"):
        load_split("tfds", "train", data_root=tmp_path, path=tmp_path)


def test_without_the_extra_one_error_says_how_to_install(both, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(FsbenchError, match=r"pip install 'fsbench\[tfds\]'"):
        load_split("tfds", "train", data_root=tmp_path / "fresh", path=both)


def test_import_fsbench_never_imports_tfds():
    code = (
        "import sys, fsbench, fsbench.cli, fsbench.data, fsbench.engine; "
        "print('tensorflow_datasets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_protonet_on_a_tfds_folder(both, tmp_path):
    import json

    from click.testing import CliRunner
    from fsbench.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "protonet",
            "tfds",
            "--dataset-dir",
            str(both),
            "--iterations",
            "3",
            "--hidden",
            "4",
            "--shot",
            "1",
            "--query",
            "2",
            "--train-query",
            "2",
            "--episodes",
            "3",
            "--eval-every",
            "0",
            "--select",
            "last",
            "--data-root",
            str(tmp_path / "root"),
            "--out",
            str(out),
            "--quiet",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    r = json.loads((out / "result.json").read_text())
    assert r["data"]["train"]["classes"] == 64 and r["published_percent"] is None
    assert "no published number" in result.output


def test_run_on_tfds_without_dataset_dir_is_one_error_line(tmp_path):
    from cli_errors import assert_one_line_error
    from click.testing import CliRunner
    from fsbench.cli import main

    result = CliRunner().invoke(main, ["run", "protonet", "tfds", "--out", str(tmp_path / "o")])
    assert_one_line_error(result, "--dataset-dir")
