"""The three command-line tools chained as a researcher would: generate, train, tabulate."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def cli(tool: str, *args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    """Run one of the installed console scripts; assert its exit status."""
    proc = subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def doublemnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DoubleMNIST written by the mdmnist CLI in both formats, verified."""
    root = tmp_path_factory.mktemp("e2e")
    out = root / "double"
    cli(
        "mdmnist",
        "--num-digit",
        "2",
        "--num-image-per-class",
        "20",
        "--format",
        "hdf5",
        "--format",
        "png",
        "--workers",
        "2",
        "--output",
        str(out),
        cwd=root,
    )
    cli("mdmnist", "verify", str(out), cwd=root)
    return out


TINY = [
    "--iterations",
    "4",
    "--episodes",
    "6",
    "--train-way",
    "5",
    "--hidden",
    "8",
    "--seed",
    "3",
    "--quiet",
]


def test_protonet_on_generated_doublemnist_hdf5_and_png_agree(doublemnist: Path, tmp_path: Path):
    png_only = tmp_path / "png-only"
    png_only.mkdir()
    for split in ("train", "val", "test"):
        shutil.copytree(doublemnist / split, png_only / split)
    results = {}
    for name, folder in (("h5", doublemnist), ("png", png_only)):
        out = tmp_path / "runs" / name
        args = ["run", "protonet", "doubled", "--dataset-dir", str(folder), *TINY]
        cli("fsbench", *args, "--out", str(out), cwd=tmp_path)
        results[name] = json.loads((out / "result.json").read_text())
    h5, png = results["h5"], results["png"]
    assert h5["method"] == "protonet" and h5["dataset"] == "doublemnist"
    assert 0.0 <= h5["accuracy"] <= 1.0 and h5["episodes"] == 6
    # Same pixels, same class ids, same seed: the two on-disk formats give the same run.
    assert h5["accuracy"] == png["accuracy"] and h5["ci95"] == png["ci95"]

    table = cli(
        "fsbench", "table", str(tmp_path / "runs"), "--out", str(tmp_path / "t"), cwd=tmp_path
    )
    assert "protonet" in table.stdout and "doublemnist" in table.stdout
    rows = list(csv.DictReader((tmp_path / "t" / "table.csv").open()))
    # Runs of one setting are pooled into one row.
    assert len(rows) == 1 and rows[0]["runs"] == "2" and rows[0]["method"] == "protonet"


def test_dataset_dir_without_a_dataset_is_one_clear_error(tmp_path: Path):
    proc = cli(
        "fsbench",
        "run",
        "protonet",
        "doubled",
        "--dataset-dir",
        str(tmp_path),
        *TINY,
        "--out",
        str(tmp_path / "r"),
        cwd=tmp_path,
        ok=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "--dataset-dir" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_mnist1d_classifier_learns_from_the_generator(tmp_path: Path):
    cli(
        "fsbench",
        "run",
        "mlp",
        "mnist1d",
        "--iterations",
        "300",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "mlp"),
        cwd=tmp_path,
    )
    result = json.loads((tmp_path / "mlp" / "result.json").read_text())
    assert result["accuracy"] > 0.3  # chance is 0.1
    assert (tmp_path / "mlp" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
