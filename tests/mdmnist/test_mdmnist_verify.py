"""verify: passes on fresh output, catches a flipped byte in any file, CLI exits non-zero."""

from __future__ import annotations

import shutil

import mdmnist
import pytest
from click.testing import CliRunner
from mdmnist.cli import cli


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A small dataset in every format."""
    out = tmp_path_factory.mktemp("verify") / "ds"
    return mdmnist.generate(
        num_digit=1,
        num_image_per_class=6,
        output=out,
        formats=("png", "hdf5", "torchmeta"),
        progress=False,
    )


def _flip(path, offset):
    """Flip all bits of the byte at OFFSET (negative: from the end)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_fresh_output_verifies(pristine):
    assert mdmnist.verify(pristine) == []
    result = CliRunner().invoke(cli, ["verify", str(pristine)])
    assert result.exit_code == 0 and "OK" in result.output


@pytest.mark.parametrize(
    ("relative", "offset"),
    [
        ("png", 60),  # inside the IDAT stream of one PNG
        ("png", 20),  # inside the IHDR (width)
        ("train.h5", -100),  # in the compressed chunks near the end
        ("train.h5", 600),  # in the HDF5 metadata
        ("val_data.hdf5", -50),
        ("test_labels.json", 3),
        ("manifest.json", 40),
    ],
)
def test_flipped_byte_is_detected(tmp_path, pristine, relative, offset):
    """Every file is covered: a flipped byte makes verify fail with a clear line."""
    copy = tmp_path / "copy"
    shutil.copytree(pristine, copy)
    target = sorted((copy / "train").glob("*/*.png"))[3] if relative == "png" else copy / relative
    _flip(target, offset)
    result = CliRunner().invoke(cli, ["verify", str(copy)])
    assert result.exit_code != 0
    assert "Error:" in result.output
    assert "Traceback" not in result.output


def test_single_bit_edit_of_manifest_value_is_detected(tmp_path, pristine):
    """The manifest is sealed: changing any value (here the recorded version) is caught."""
    copy = tmp_path / "copy"
    shutil.copytree(pristine, copy)
    text = (copy / "manifest.json").read_text()
    version = f'"version": "{mdmnist.__version__}"'
    assert version in text
    (copy / "manifest.json").write_text(text.replace(version, version.replace("0.", "1.", 1)))
    problems = mdmnist.verify(copy)
    assert problems and "manifest_sha256" in problems[0]


def test_missing_png_is_reported(tmp_path, pristine):
    copy = tmp_path / "copy"
    shutil.copytree(pristine, copy)
    next((copy / "test").glob("*/*.png")).unlink()
    problems = mdmnist.verify(copy)
    assert len(problems) == 1 and "missing" in problems[0]


def test_preview_writes_a_png(tmp_path, pristine):
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(cli, ["preview", str(pristine), "--output", str(out)])
    assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[0] > 300 and im.size[1] > 200


def test_preview_keeps_an_existing_file_unless_overwrite(tmp_path, pristine):
    out = tmp_path / "preview.png"
    out.write_bytes(b"mine")
    result = CliRunner().invoke(cli, ["preview", str(pristine), "--output", str(out)])
    assert result.exit_code != 0 and "--overwrite" in result.output
    assert out.read_bytes() == b"mine"
    args = ["preview", str(pristine), "--output", str(out), "--overwrite"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("fmt", ["png", "torchmeta"])
def test_preview_from_a_single_format(tmp_path, fmt):
    """Preview reads samples from whichever format is present; verify passes on each alone."""
    out = mdmnist.generate(
        num_digit=2, num_image_per_class=3, output=tmp_path / fmt, formats=(fmt,), progress=False
    )
    assert mdmnist.verify(out) == []
    result = CliRunner().invoke(
        cli, ["preview", str(out), "--output", str(tmp_path / "p.png"), "--classes", "3"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert not list(tmp_path.glob(".*"))  # no temp file left


@pytest.mark.parametrize(
    ("stray", "folder"),
    [("notes.txt", False), ("extra", True), ("train/99", True), ("val/x.txt", False)],
)
def test_stray_files_and_folders_are_reported(tmp_path, pristine, stray, folder):
    """The issue: a stray top-level file and an extra class folder went unnoticed."""
    copy = tmp_path / "copy"
    shutil.copytree(pristine, copy)
    path = copy / stray
    path.mkdir() if folder else path.write_text("x")
    problems = mdmnist.verify(copy)
    assert len(problems) == 1 and problems[0].startswith(f"stray {stray}")
    result = CliRunner().invoke(cli, ["verify", "--quiet", str(copy)])
    assert result.exit_code == 1 and stray in result.output


def test_stray_png_in_a_class_folder_is_reported(tmp_path, pristine):
    copy = tmp_path / "copy"
    shutil.copytree(pristine, copy)
    folder = next((copy / "test").iterdir())
    (folder / f"99_{folder.name}.png").write_bytes(b"\x89PNG")
    problems = mdmnist.verify(copy)
    assert any(p.startswith(f"stray test/{folder.name}/99_") for p in problems), problems


def test_verify_reports_progress(pristine):
    """Long checks are not silent: progress goes through every step, shown as a bar in the CLI."""
    from mdmnist.manifest import read_manifest
    from mdmnist.verify import count_steps

    steps = []
    assert mdmnist.verify(pristine, progress=steps.append) == []
    assert sum(steps) == count_steps(read_manifest(pristine)) > 10
    result = CliRunner().invoke(cli, ["verify", str(pristine)])
    assert result.exit_code == 0 and "verify: 100%" in result.output
    quiet = CliRunner().invoke(cli, ["verify", "--quiet", str(pristine)])
    assert quiet.exit_code == 0 and "verify:" not in quiet.output
