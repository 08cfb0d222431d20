"""fsbench reproduce: --jobs N gives the sequential results; --iterations; --quick seeds."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from fsbench.cli import main
from fsbench.presets import TABLES


def reproduce(out: Path, *extra: str):
    """``fsbench reproduce mnist1d --quick --iterations 20`` into ``out``, asserting success."""
    args = ["reproduce", "mnist1d", "--quick", "--iterations", "20", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, *extra])
    assert result.exit_code == 0, result.output
    return result


def accuracies(out: Path) -> dict[str, tuple[float, float, int, int]]:
    """Cell directory -> (accuracy, ci95, iterations, torch threads) of every result.json."""
    found = {}
    for path in sorted(out.glob("*/seed*/result.json")):
        r = json.loads(path.read_text())
        key = str(path.parent.relative_to(out))
        found[key] = (r["accuracy"], r["ci95"], r["iterations"], r["torch_threads"])
    return found


def test_mnist1d_quick_is_seed_0_and_full_keeps_three_seeds():
    spec = TABLES["mnist1d"]
    assert spec.quick_seeds == (0,) and spec.seeds == (0, 1, 2)
    assert "seed 0 only" in spec.quick_note


def test_jobs_2_gives_the_sequential_results(tmp_path):
    sequential = reproduce(tmp_path / "seq", "--jobs", "1")
    parallel = reproduce(tmp_path / "par", "--jobs", "2")

    seq, par = accuracies(tmp_path / "seq"), accuracies(tmp_path / "par")
    assert len(seq) == len(TABLES["mnist1d"].cells) == 8
    assert all(key.endswith("seed0") for key in seq)  # --quick: seed 0 only
    assert {v[2] for v in seq.values()} == {20}  # --iterations reached every cell
    assert par == seq
    layout = "table_source_layout.csv"
    assert (tmp_path / "par" / layout).read_text() == (tmp_path / "seq" / layout).read_text()

    cell_lines = [ln for ln in parallel.output.splitlines() if ln.startswith("[")]
    assert len(cell_lines) == 8 and all(" % ± " in ln for ln in cell_lines)
    grid = lambda out: out[out.index("source 002") :].split("\n\n")[0]  # noqa: E731
    assert "| MNIST-1D (shuffle) |" in grid(parallel.output)
    assert grid(parallel.output) == grid(sequential.output)

    kept = reproduce(tmp_path / "par", "--jobs", "2")  # nothing left to run: no workers
    assert kept.output.count("kept earlier result") == 8
