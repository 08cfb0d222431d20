"""--format tfds: a TFDS folder that tensorflow-datasets reads without TensorFlow, image for
image the HDF5; deterministic bytes; verify covers it; the extra stays optional."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from mdmnist.cli import cli
from mdmnist.verify import verify
from mdmnist.writers.hdf5 import load_split


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def make(out, *formats, per_class=3):
    flags = [x for f in formats for x in ("--format", f)]
    result = run("--num-digit", 2, "--num-image-per-class", per_class, *flags, "--output", out)
    assert result.exit_code == 0, result.output
    return out


def test_tfds_folder_equals_the_hdf5_image_for_image(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    out = make(tmp_path / "d", "tfds", "hdf5")
    folder = out / "tfds" / "double_mnist" / "1.0.0"
    assert (folder / "dataset_info.json").is_file()
    builder = tfds.builder_from_directory(str(folder))
    names = builder.info.features["label"].names
    assert len(names) == 100 and names == sorted(names)  # every split's classes, one numbering
    for split in ("train", "val", "test"):
        images, classes = load_split(out / f"{split}.h5")  # [C, K, H, W]
        source = builder.as_data_source(split)
        assert len(source) == images.shape[0] * images.shape[1]
        for i in range(len(source)):
            c, k = divmod(i, images.shape[1])
            assert np.array_equal(source[i]["image"][..., 0], images[c, k])
            assert names[source[i]["label"]] == classes[c]
    assert verify(out) == []


def test_tfds_alone_is_deterministic_and_verified(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    a = make(tmp_path / "a", "tfds")
    b = make(tmp_path / "b", "tfds")
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert not any(p.suffix == ".h5" for p in files_a)  # the HDF5 was only its source
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    (a / "tfds" / "double_mnist" / "1.0.0" / "extra.txt").write_text("x")
    assert verify(a) == ["stray tfds/double_mnist/1.0.0/extra.txt: not written by mdmnist"]


def test_without_the_extra_one_line_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    result = run(
        "--num-digit", 2, "--num-image-per-class", 2, "--format", "tfds", "--output", tmp_path / "o"
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "pip install 'mdmnist[tfds]'" in lines[0]
    assert not (tmp_path / "o").exists()


def test_import_mdmnist_never_imports_tfds():
    code = "import sys, mdmnist, mdmnist.cli, mdmnist.pipeline; print('tensorflow_datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
