"""--num-digit up to 6, the size estimate printed before work, and --yes for very large runs."""

from __future__ import annotations

import mdmnist
import pytest
from click.testing import CliRunner
from mdmnist.cli import cli
from mdmnist.estimate import estimate


def _run(*args):
    """Invoke the CLI in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_bare_four_digits_is_refused_without_yes(tmp_path):
    """The issue: bare --num-digit 4 silently meant 10 million images."""
    result = _run("--num-digit", "4", "--output", tmp_path / "q", "--quiet")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "--yes" in lines[0]
    assert "10,000,000 images" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_estimate_is_printed_before_work(tmp_path):
    out = tmp_path / "d"
    result = _run(
        "--num-image-per-class", "3", "--format", "hdf5", "--format", "png", "--output", out
    )
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "100 classes, 300 images of 64x64" in first
    assert "hdf5" in first and "png" in first and "worker" in first


def test_yes_lets_a_large_run_start(tmp_path, monkeypatch):
    from mdmnist import estimate as estimate_module

    monkeypatch.setattr(estimate_module, "MAX_IMAGES", 50)
    args = ["--num-digit", "1", "--num-image-per-class", "6", "--format", "hdf5", "--quiet"]
    refused = _run(*args, "--output", tmp_path / "a")
    assert refused.exit_code == 1 and "--yes" in refused.output
    assert _run(*args, "--output", tmp_path / "a", "--yes").exit_code == 0


def test_estimate_figures():
    """Bytes grow with digits and images; PNG files take at least one 4 KiB block each."""
    plan = estimate(4, (112, 112), 1000, (64, 16, 20), ("png", "hdf5"), 2)
    assert plan.images == 10_000_000 and plan.classes == 10_000
    assert plan.bytes_on_disk["png"] >= 4096 * plan.images
    assert 5e9 < plan.bytes_on_disk["hdf5"] < 1e10
    assert plan.refusal(None) and "10,000,000" in plan.refusal(None)
    small = estimate(2, (64, 64), 10, (64, 16, 20), ("hdf5",), 2)
    assert small.refusal(10**12) is None and small.refusal(1000) is not None  # free space


@pytest.mark.parametrize("bad", ["0", "7", "five"])
def test_num_digit_range(tmp_path, bad):
    result = _run("--num-digit", bad, "--output", tmp_path / "x", "--quiet")
    assert result.exit_code != 0 and "num-digit" in result.output
    assert bad == "five" or "from 1 to 6" in result.output
    assert list(tmp_path.iterdir()) == []


def test_five_digits_hdf5_generates_and_verifies(tmp_path):
    """The issue's 5-digit set (100,000 classes) with a modest per-class count works end to end.

    Smaller images than the default 140x140 keep the test quick; the full-size command is measured
    in the README (about 25 s to generate and 13 s to verify on 2 cores).
    """
    out = tmp_path / "q5"
    args = ["--num-digit", "5", "--num-image-per-class", "2", "--format", "hdf5"]
    result = _run(*args, "--image-size", "28", "140", "--workers", "2", "--output", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert mdmnist.default_output_name(5).startswith("quintuple_mnist_seed_123_image_size_140_140")
    verified = _run("verify", "--quiet", out)
    assert verified.exit_code == 0, verified.output
