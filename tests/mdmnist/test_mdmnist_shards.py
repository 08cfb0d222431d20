"""--shard K/N and `mdmnist merge`: N shards merged equal the single run, bad input is one line."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import mdmnist
import numpy as np
import pytest
from click.testing import CliRunner
from mdmnist.cli import cli
from mdmnist.shards import block, check_shard, shard_classes
from mdmnist.splits import SPLITS, split_classes

FORMATS = ["--format", "png", "--format", "hdf5", "--format", "torchmeta"]
TINY = ["--num-digit", "2", "--num-image-per-class", "2", "--workers", "1", "--quiet"]


def _run(*args):
    """Invoke the CLI in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def _tree(root):
    """Every path under ROOT with its bytes (None for folders)."""
    return {
        p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def _one_error(result, *words):
    """Non-zero exit, exactly one line starting with Error: that holds WORDS, no traceback."""
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The single run and its 3 shards, every format, 2 images per class."""
    root = tmp_path_factory.mktemp("shards")
    assert _run(*TINY, *FORMATS, "--output", root / "full").exit_code == 0
    for k in (1, 2, 3):
        result = _run(*TINY, *FORMATS, "--shard", f"{k}/3", "--output", root / f"s{k}")
        assert result.exit_code == 0, result.output
    return root


def _shards(runs, *ks):
    """The shard folders K (in the given order)."""
    return [runs / f"s{k}" for k in ks]


def test_shard_rule_is_contiguous_blocks():
    """Shard K of N takes [(K-1)C//N, KC//N) of each split; the blocks rejoin the split."""
    every = split_classes(2, (64, 16, 20), 123)
    parts = [shard_classes(every, (k, 3)) for k in (1, 2, 3)]
    for split in SPLITS:
        assert sum((p[split] for p in parts), []) == every[split]
    assert [len(p["val"]) for p in parts] == [5, 5, 6]
    assert block(16, (1, 3)) == (0, 5) and block(16, (3, 3)) == (10, 16)
    assert check_shard("2/3", 2, (64, 16, 20)) == (2, 3)
    assert check_shard((1, 1), 2, (64, 16, 20)) == (1, 1)


def test_shard_draws_do_not_depend_on_the_shard(runs):
    """A shard's classes have the single run's pixel digests: the randomness is per class."""
    full = json.loads((runs / "full" / "manifest.json").read_text())
    for shard in _shards(runs, 1, 2, 3):
        part = json.loads((shard / "manifest.json").read_text())
        assert part["args"] == full["args"] and part["shard"]["count"] == 3
        for split in SPLITS:
            digests = part["splits"][split]["pixels_sha256"]
            assert digests == {c: full["splits"][split]["pixels_sha256"][c] for c in digests}
        assert mdmnist.verify(shard) == []


def test_three_shards_merged_equal_the_single_run(runs, tmp_path):
    """The acceptance test: PNG, HDF5, torchmeta and manifest.json byte for byte, verify passes."""
    out = tmp_path / "merged"
    result = _run("merge", *_shards(runs, 3, 1, 2), "--output", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert _tree(out) == _tree(runs / "full")  # manifest.json included, byte for byte
    assert _run("verify", out, "--quiet").exit_code == 0


def test_linked_merge_reads_the_shards(runs, tmp_path, monkeypatch):
    """--link: virtual HDF5 datasets over the shard files, hard-linked PNGs, same pixels."""
    tree = tmp_path / "tree"
    shutil.copytree(runs, tree)
    out = tree / "linked"
    assert (
        _run("merge", *_shards(tree, 1, 2, 3), "--output", out, "--link", "--quiet").exit_code == 0
    )
    full = json.loads((tree / "full" / "manifest.json").read_text())
    merged = json.loads((out / "manifest.json").read_text())
    for key in ("args", "mnist", "splits", "generator"):
        assert merged[key] == full[key]
    assert {k: v for k, v in merged["files"].items() if not k.endswith(".h5")} == {
        k: v for k, v in full["files"].items() if not k.endswith(".h5")
    }
    assert sorted(merged["links"]["train.h5"]) == [f"../s{k}/train.h5" for k in (1, 2, 3)]
    with h5py.File(out / "train.h5") as f, h5py.File(tree / "full" / "train.h5") as g:
        assert f["images"].is_virtual
        assert np.array_equal(f["images"][...], g["images"][...])
    assert os.stat(next((out / "train").glob("*/0_*.png"))).st_nlink == 2
    moved = tmp_path / "elsewhere"
    shutil.move(tree, moved)  # the links are relative: the whole tree may move
    monkeypatch.chdir(tmp_path)  # HDF5 finds the shards from the file, not the working folder
    assert mdmnist.verify(moved / "linked") == []
    shutil.rmtree(moved / "s2")
    problems = mdmnist.verify(moved / "linked")
    assert "link train.h5 -> ../s2/train.h5: missing" in problems


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("0/3", "K must be from 1 to N = 3"),
        ("4/3", "K must be from 1 to N = 3"),
        ("1/0", "N (the number of shards) must be at least 1"),
        ("x", "K/N with whole numbers 1 <= K <= N"),
        ("1/17", "N can be at most 16"),
    ],
)
def test_bad_shard_values_get_one_line(tmp_path, value, allowed):
    _one_error(_run(*TINY, "--shard", value, "--output", tmp_path / "o"), "shard", allowed)
    assert list(tmp_path.iterdir()) == []


def test_shard_api_and_default_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = mdmnist.generate(num_digit=1, num_image_per_class=1, formats=("hdf5",), shard=(1, 1))
    assert out.name == "single_mnist_seed_123_image_size_28_28_shard_1_of_1"
    with h5py.File(out / "train.h5") as f:
        assert list(f.attrs["shard"]) == [1, 1]
    with pytest.raises(mdmnist.MdmnistError, match="shard"):
        mdmnist.generate(num_digit=1, shard=(True, 1))


def _refused(runs, tmp_path, *args, words=()):
    """A merge of ARGS into tmp_path/out fails with one Error line and writes nothing."""
    before = _tree(runs)
    result = _run("merge", *args, "--output", tmp_path / "out", "--quiet")
    _one_error(result, *words)
    assert list(tmp_path.iterdir()) == [] and _tree(runs) == before


def test_merge_refuses_overlapping_shards(runs, tmp_path):
    _refused(runs, tmp_path, *_shards(runs, 1, 2, 2, 3), words=("overlapping", "2/3"))


def test_merge_refuses_incomplete_shards(runs, tmp_path):
    _refused(runs, tmp_path, *_shards(runs, 1, 3), words=("incomplete", "2/3 missing"))


@pytest.mark.parametrize(
    ("option", "value", "name"),
    [
        ("--random-seed", "7", "random-seed"),
        ("--num-digit", "3", "num-digit"),
        ("--num-image-per-class", "1", "num-image-per-class"),
        ("--format", "hdf5", "format"),
    ],
)
def test_merge_refuses_shards_of_other_settings(runs, tmp_path_factory, option, value, name):
    other = tmp_path_factory.mktemp("other") / "s2"
    formats = [] if option == "--format" else FORMATS
    args = [*TINY, *formats, option, value, "--shard", "2/3", "--output", other]
    assert _run(*args).exit_code == 0
    target = tmp_path_factory.mktemp("target")
    _refused(runs, target, runs / "s1", other, runs / "s3", words=("different runs", name))


def test_merge_refuses_a_whole_run_and_a_changed_shard(runs, tmp_path):
    _refused(runs, tmp_path, runs / "full", *_shards(runs, 2, 3), words=("not a shard",))
    copy = tmp_path.parent / f"{tmp_path.name}-copy"
    shutil.copytree(runs / "s2", copy)
    data = bytearray((copy / "val.h5").read_bytes())
    data[-10] ^= 0xFF
    (copy / "val.h5").write_bytes(bytes(data))
    _refused(runs, tmp_path, runs / "s1", copy, runs / "s3", words=("val.h5", "differs"))


def test_merge_output_rules(runs, tmp_path):
    """No replacing without --overwrite, never a user's file, never inside a shard."""
    shards = _shards(runs, 1, 2, 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _one_error(_run("merge", *shards, "--output", out, "--quiet"), "--overwrite")
    result = _run("merge", *shards, "--output", out, "--overwrite", "--quiet")
    _one_error(result, "notes.txt")
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    assert _run("merge", *shards, "--output", out, "--overwrite", "--quiet").exit_code == 0
    assert _run("merge", *shards, "--output", out, "--overwrite", "--quiet").exit_code == 0
    assert mdmnist.verify(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    _one_error(_run("merge", *shards, "--output", runs / "s1" / "m", "--quiet"), "overlaps shard")
    assert not (runs / "s1" / "m").exists()
