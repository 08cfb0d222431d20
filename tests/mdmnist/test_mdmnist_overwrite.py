"""--overwrite replaces only an empty folder or an mdmnist output; a user's own files survive it."""

from __future__ import annotations

import json

import mdmnist
import pytest
from click.testing import CliRunner
from mdmnist.cli import cli

TINY = ["--num-digit", "1", "--num-image-per-class", "2", "--quiet"]


def _run(out, *extra):
    """Generate a tiny set into OUT with --overwrite (and EXTRA options)."""
    args = [*TINY, "--output", str(out), "--overwrite", *extra]
    return CliRunner().invoke(cli, args)


def _tree(root):
    """Every path under ROOT with its bytes (None for folders)."""
    return {
        p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def _assert_refused(result, *names):
    """Non-zero exit, one Error line naming NAMES and --overwrite, no traceback."""
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "--overwrite" in lines[0]
    for name in names:
        assert name in lines[0], lines[0]


def test_foreign_file_survives_overwrite(tmp_path):
    """The issue's reproduction: a folder holding sub/thesis.tex is not deleted."""
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "thesis.tex").write_text("\\documentclass{article}")
    before = _tree(out)
    _assert_refused(_run(out), "sub/")
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder either


def test_empty_folder_is_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert _run(out).exit_code == 0
    assert mdmnist.verify(out) == []


@pytest.mark.parametrize("fmt", ["png", "hdf5"])
def test_previous_output_is_replaced(tmp_path, fmt):
    out = tmp_path / "out"
    assert _run(out, "--format", fmt, "--format", "torchmeta").exit_code == 0
    result = _run(out, "--format", "hdf5", "--random-seed", "5")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["args"]["seed"] == 5
    assert not (out / "train").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    "stray", ["notes.txt", "train/extra.txt", "train/99/", "test/{c}/mine.png", "val/{c}/sub/"]
)
def test_stray_file_in_previous_output_blocks_overwrite(tmp_path, stray):
    """An mdmnist output with anything added by hand is not ours alone any more."""
    out = tmp_path / "out"
    assert _run(out, "--format", "png").exit_code == 0
    split = stray.split("/")[0]
    if "{c}" in stray:
        stray = stray.format(c=sorted(p.name for p in (out / split).iterdir())[0])
    path = out / stray.rstrip("/")
    if stray.endswith("/"):
        path.mkdir()
    else:
        path.write_text("mine")
    before = _tree(out)
    _assert_refused(_run(out, "--format", "hdf5"), stray)
    assert _tree(out) == before


def test_file_or_foreign_manifest_is_not_replaced(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("mine")
    _assert_refused(_run(plain), "not a folder")
    assert plain.read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text('{"manifest_version": 1, "generator": {"name": "x"}}')
    _assert_refused(_run(other), "manifest.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "plain"]


def test_api_refuses_too(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("mine")
    with pytest.raises(mdmnist.MdmnistError, match="keep"):
        mdmnist.generate(num_digit=1, num_image_per_class=1, output=out, overwrite=True)
    assert (out / "keep").read_text() == "mine"
