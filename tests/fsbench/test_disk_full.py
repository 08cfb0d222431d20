"""A full disk or quota at any write is one line naming the file and the free space; the
temporary file is removed and the last good checkpoint kept, so --resume finishes the run."""

from __future__ import annotations

import builtins
import errno
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench import results
from fsbench.cli import main
from fsbench.data import diskcache
from fsbench.engine import run_setting
from fsbench.engine.predict import write_predictions
from fsbench.resolve import resolve_settings
from fsbench.results import DiskFullError, read_metrics
from fsbench.synthetic import synthetic_loader
from fsbench.tables import write_tables
from robust_helpers import leftovers, tiny_args

SMALL = dict(
    way=3, shot=1, query=2, train_way=4, hidden=4, iterations=8, episodes=6, checkpoint_every=2,
    eval_every=2, eval_episodes=2, select="best-val",
)  # fmt: skip
LOAD = synthetic_loader(size=16, classes=10, per_class=6)


def settings():
    return resolve_settings("protonet", "omniglot", SMALL)


class FullDisk:
    """``open`` for a module under test: the ``at``-th write to a file whose name holds ``name``
    writes half its bytes, then fails with ENOSPC (or EDQUOT), as a full disk does."""

    def __init__(self, name: str, at: int = 1, code: int = errno.ENOSPC) -> None:
        self.name, self.at, self.code, self.writes = name, at, code, 0

    def __call__(self, file, mode="r", *args, **kwargs):
        fh = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115 (returned open)
        if self.name in Path(file).name and ("w" in mode or "a" in mode):
            return _Failing(fh, self)
        return fh


class _Failing:
    def __init__(self, fh, disk: FullDisk) -> None:
        self.fh, self.disk = fh, disk

    def write(self, data):
        self.disk.writes += 1
        if self.disk.writes == self.disk.at:
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(self.disk.code, os.strerror(self.disk.code))
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The run that no full disk interrupted: its result and files."""
    out = tmp_path_factory.mktemp("straight")
    return run_setting(settings(), out, loader=LOAD, quiet=True), out


def assert_same_run(out: Path, result: dict, straight) -> None:
    ref, ref_out = straight
    assert result["accuracy"] == ref["accuracy"] and result["ci95"] == ref["ci95"]
    assert (out / "episodes.csv").read_bytes() == (ref_out / "episodes.csv").read_bytes()
    assert read_metrics(out / "metrics.jsonl") == read_metrics(ref_out / "metrics.jsonl")


@pytest.mark.parametrize(
    ("name", "at", "kept"),
    [
        ("checkpoint.pt", 3, 4),  # the checkpoint at iteration 6 fails: 4 (and 2) are kept
        ("best.pt", 1, None),  # the first validation's best.pt, before any checkpoint
        ("metrics.jsonl", 6, 2),  # the 6th record: the validation at 4, before its checkpoint
        ("result.json", 1, 8),
        ("episodes.csv", 1, 8),
    ],
)
def test_each_write_of_a_run(tmp_path, monkeypatch, straight, name, at, kept):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(results, "open", FullDisk(name, at), raising=False)
        with pytest.raises(DiskFullError) as err:
            run_setting(settings(), out, loader=LOAD, quiet=True)
    msg = str(err.value)
    size = "" if name == "metrics.jsonl" else r" \([\d.]+ (bytes|kB)\)"  # what it needed
    assert re.search(f"cannot write {re.escape(str(out / name))}{size}: no space left", msg), msg
    assert " free)" in msg and "\n" not in msg
    assert leftovers(out) == [] and not (out / "result.json").exists()
    if kept is None:
        assert not (out / "checkpoint.pt").exists() and "run the same command again" in msg
    else:
        state = torch.load(out / "checkpoint.pt", weights_only=False)
        assert state["iteration"] == kept and "--resume" in msg
        if name == "checkpoint.pt":  # the previous one moves only once a new one is complete
            prev = torch.load(out / "checkpoint.prev.pt", weights_only=False)
            assert prev["iteration"] == 2
    assert_same_run(out, run_setting(settings(), out, loader=LOAD, quiet=True, resume=True),
                    straight)  # fmt: skip


def test_the_curve(tmp_path, monkeypatch, straight):
    import matplotlib.figure

    def full(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"half a png")
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(matplotlib.figure.Figure, "savefig", full)
        with pytest.raises(DiskFullError, match=f"{out / 'curve.png'}: disk quota exceeded"):
            run_setting(settings(), out, loader=LOAD, quiet=True)
    assert leftovers(out) == []
    assert_same_run(out, run_setting(settings(), out, loader=LOAD, quiet=True, resume=True),
                    straight)  # fmt: skip


def test_tables_predictions_and_the_dataset_cache(tmp_path, monkeypatch, caplog):
    import pandas as pd

    monkeypatch.setattr(results, "open", FullDisk("table.md"), raising=False)
    with pytest.raises(DiskFullError, match=r"table.md \(\d+ bytes\): no space left"):
        write_tables(pd.DataFrame(), tmp_path)
    monkeypatch.setattr(results, "open", FullDisk("p.csv"), raising=False)
    with pytest.raises(DiskFullError, match=r"p.csv \(11 bytes\): no space left"):
        write_predictions(tmp_path / "p.csv", "path,class\n")
    assert leftovers(tmp_path) == []
    # the cache only costs time: a warning that names the file and the free space, no temporary
    monkeypatch.setattr(diskcache, "open", FullDisk("c.npz"), raising=False)
    with caplog.at_level(logging.WARNING, logger="fsbench.data"):
        diskcache.save_arrays(tmp_path / "cache" / "c.npz", "fp", x=torch.zeros(1000).numpy())
    assert "c.npz: no space left on the device" in caplog.text and " free)" in caplog.text
    assert list((tmp_path / "cache").iterdir()) == []


def test_cli_is_one_line(tiny_doublemnist, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(results, "open", FullDisk("checkpoint.pt", 2), raising=False)
    args = tiny_args(tiny_doublemnist.data_root, out, 6, "--checkpoint-every", "2")
    r = CliRunner().invoke(main, args)
    assert_one_line_error(r, f"{out / 'checkpoint.pt'}", "free", "--resume")
    assert leftovers(out) == []


def mount_tmpfs(folder: Path, size: str) -> bool:
    """A tmpfs of ``size`` at ``folder``, where mounting is allowed (root, not in a container
    without the capability); False elsewhere."""
    folder.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def test_a_real_full_filesystem(tmp_path, straight):
    """A small tmpfs fills up during a run: one error, nothing left half-written, and once
    space is freed --resume ends where the straight run ended."""
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "1m"):
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        size = (straight[1] / "checkpoint.pt").stat().st_size
        filler = disk / "filler"
        room = int(2.5 * size)  # a checkpoint, its previous one and half a third
        filler.write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - room))
        out = disk / "run"
        with pytest.raises(DiskFullError) as err:
            run_setting(settings(), out, loader=LOAD, quiet=True)
        assert f"cannot write {out}" in str(err.value) and " free)" in str(err.value)
        assert leftovers(out) == [] and not (out / "result.json").exists()
        filler.unlink()
        resumed = run_setting(settings(), out, loader=LOAD, quiet=True, resume=True)
        assert_same_run(out, resumed, straight)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_generating_a_dataset_into_a_full_data_root(tmp_path, monkeypatch):
    mdmnist = pytest.importorskip("mdmnist")
    from fsbench.data import load_split
    from fsbench.errors import FsbenchError

    def full(**kwargs):
        (Path(kwargs["output"]) / "train.h5").parent.mkdir(parents=True)
        (Path(kwargs["output"]) / "train.h5").write_bytes(b"half")
        raise ValueError(
            "cannot write output: errno = 28, error message = 'No space left on device'"
        )

    monkeypatch.setattr(mdmnist, "generate", full)
    root = tmp_path / "root"
    with pytest.raises(
        FsbenchError,
        match=r"cannot generate DoubleMNIST into .*: no space left "
        r"on the device \([\d.]+ \w+ free\); free some space, or pass --data-root",
    ):
        load_split("doublemnist", "train", data_root=root, num_image_per_class=7)
    assert [p.name for p in root.iterdir()] == []  # the half-written temporary is gone
