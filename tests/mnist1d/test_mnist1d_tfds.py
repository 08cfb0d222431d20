"""mnist1d make --format tfds: a TFDS folder equal to the dataset value for value, deterministic,
never overwriting a user's folder, and an optional extra."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from mnist1d.cli import main
from mnist1d.data import get_dataset_args, make_dataset


def make(out, *extra):
    return CliRunner().invoke(
        main, ["make", "--format", "tfds", "--output", str(out), "--num-samples", "200", *extra]
    )


def test_tfds_export_equals_the_dataset_value_for_value(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    result = make(tmp_path / "t", "-q")
    assert result.exit_code == 0, result.output
    args = get_dataset_args()
    args.num_samples = 200
    data = make_dataset(args)
    builder = tfds.builder_from_directory(str(tmp_path / "t" / "mnist1d" / "1.0.0"))
    for split, (x, y) in {"train": ("x", "y"), "test": ("x_test", "y_test")}.items():
        source = builder.as_data_source(split)
        assert len(source) == len(data[y])
        got = np.stack([source[i]["x"] for i in range(len(source))])
        assert got.dtype == np.float64 and np.array_equal(got, data[x])  # exact, not float32
        assert [source[i]["label"] for i in range(len(source))] == list(data[y])


def test_tfds_export_is_deterministic_and_guards_the_output(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    assert make(tmp_path / "a", "-q").exit_code == 0
    assert make(tmp_path / "b", "-q").exit_code == 0
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert files and all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )
    again = make(tmp_path / "a", "-q")
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert make(tmp_path / "a", "-q", "--overwrite").exit_code == 0
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("keep")
    refused = make(user, "-q", "--overwrite")
    assert refused.exit_code != 0 and "not an MNIST-1D TFDS export" in refused.output
    assert (user / "thesis.tex").read_text() == "keep"


def test_without_the_extra_one_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    result = make(tmp_path / "t")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "pip install 'mnist1d-fast[tfds]'" in result.output
    assert not (tmp_path / "t").exists()


def test_import_mnist1d_never_imports_tfds():
    code = "import sys, mnist1d, mnist1d.cli; print('tensorflow_datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
