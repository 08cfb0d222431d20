"""fsbench reproduce: --jobs N gives the sequential results; --iterations; --quick seeds."""

from __future__ import annotations

import json
from pathlib import Path

from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.table_specs import TABLES


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


def test_mnist1d_quick_is_the_reference_seed_and_full_keeps_three_seeds():
    spec = TABLES["mnist1d"]
    assert spec.quick_seeds == (42,) and spec.seeds == (42, 43, 44)
    assert "seed 42 only" in spec.quick_note


def test_jobs_2_gives_the_sequential_results(tmp_path):
    sequential = reproduce(tmp_path / "seq", "--jobs", "1")
    parallel = reproduce(tmp_path / "par", "--jobs", "2")

    seq, par = accuracies(tmp_path / "seq"), accuracies(tmp_path / "par")
    assert len(seq) == len(TABLES["mnist1d"].cells) == 8
    assert all(key.endswith("seed42") for key in seq)  # --quick: seed 42 only
    assert {v[2] for v in seq.values()} == {20}  # --iterations reached every cell
    assert par == seq
    layout = "table_source_layout.csv"
    assert (tmp_path / "par" / layout).read_text() == (tmp_path / "seq" / layout).read_text()

    cell_lines = [ln for ln in parallel.output.splitlines() if ln.startswith("[")]
    assert len(cell_lines) == 8 and all(" % ± " in ln for ln in cell_lines)
    grid = lambda out: out[out.index("Greydanus 2020") :].split("\n\n")[0]  # noqa: E731
    assert "| MNIST-1D (shuffle) |" in grid(parallel.output)
    assert grid(parallel.output) == grid(sequential.output)

    kept = reproduce(tmp_path / "par", "--jobs", "2")  # nothing left to run: no workers
    assert kept.output.count("kept the earlier result") == 8
    assert "Ran: all cells: differ from the preset in iterations 20 (preset 6001)" in kept.output


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_a_cell_of_other_settings_is_refused_never_shown(tmp_path):
    out = tmp_path / "t"
    reproduce(out)  # a smoke run: --iterations 20
    before = snapshot(out)
    args = ["reproduce", "mnist1d", "--quick", "--quiet", "--out", str(out)]
    refused = CliRunner().invoke(main, args)  # the full preset asked into the same folder
    assert_one_line_error(refused, "iterations 6001 asked, 20 there", "--overwrite")
    assert snapshot(out) == before  # nothing touched
    rerun = reproduce(out, "--iterations", "30", "--overwrite")
    assert {v[2] for v in accuracies(out).values()} == {30}
    assert "kept" not in rerun.output


def test_an_interrupted_cell_is_resumed(tmp_path):
    out = tmp_path / "t"
    reproduce(out)
    cell = out / "mlp-mnist1d" / "seed42"
    finished = json.loads((cell / "result.json").read_text())
    (cell / "result.json").unlink()  # as if stopped after its last checkpoint
    again = reproduce(out)
    assert "[mlp-mnist1d seed 42]" in again.output and "(resumed)" in again.output
    assert again.output.count("kept the earlier result") == 7
    assert json.loads((cell / "result.json").read_text())["accuracy"] == finished["accuracy"]


def test_protonet_table_trains_each_training_setting_once(
    small_omniglot_dir, tmp_path, monkeypatch
):
    """5w1s/20w1s share one 1-shot training, 5w5s/20w5s one 5-shot training (Snell et al.)."""
    from fsbench.data import omniglot

    monkeypatch.setenv("FSBENCH_OMNIGLOT", str(small_omniglot_dir))
    monkeypatch.setattr(omniglot, "_WARNED", set())  # warned once per process: say it here
    out = tmp_path / "p"
    args = ["reproduce", "protonet-omniglot", "--quick", "--iterations", "3", "--quiet"]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.count("(trained)") == 2 and result.output.count("(evaluated from") == 2
    for way, shot in ((20, 1), (20, 5)):
        cell = out / f"protonet-omniglot-shot{shot}-way{way}" / "seed0"
        r = json.loads((cell / "result.json").read_text())
        trained_in = out / f"protonet-omniglot-shot{shot}-way5" / "seed0"
        assert r["evaluated_from"]["run"] == str(trained_in)
        assert (r["way"], r["shot"]) == (way, shot) and not (cell / "checkpoint.pt").exists()
    # offline data: labelled for what it is, no published number beside it
    grid = result.output[result.output.index("| dataset |") :].split("\n\n")[0]
    assert "Omniglot (small background sets, alphabet-disjoint)" in grid and "(98.8)" not in grid
    assert "Warning: the full Omniglot" in result.output  # the fallback is said, on stderr
    again = CliRunner().invoke(main, [*args, "--out", str(out), "--threads", "1"])
    assert again.exit_code == 0 and again.output.count("kept the earlier result") == 4


def test_mtl_ablation_plan_pretrains_once_per_dataset_and_waits_for_it(tmp_path):
    from fsbench.engine.reproduce import plan_table

    plan = plan_table(TABLES["mtl-ablation"], tmp_path, quick=True, overrides={"iterations": 3})
    assert len(plan) == 40
    for ds in ("doublemnist", "triplemnist"):
        pre = [p for p in plan if p.cell.method == "pretrain" and p.cell.dataset == ds]
        # one training (validation is 5-way 1-shot whatever the cell), three evaluations
        assert [p.action for p in pre] == ["train", "eval", "eval", "eval"]
        assert all(p.trained_in == pre[0].out for p in pre[1:])
        # --iterations is for the other cells: pre-training keeps its epochs
        assert pre[0].settings["epochs"] == 3 and pre[0].settings["iterations"] != 3
        mtl = [p for p in plan if p.cell.method == "mtl" and p.cell.dataset == ds]
        assert len(mtl) == 12 and all(p.needs == pre[0].out for p in mtl)
        assert all(p.settings["pretrained"] == str(pre[0].out) for p in mtl)
        assert {p.settings["mtl_mode"] for p in mtl} == {"ss", "ft"}
        assert sum(p.settings["hard_tasks"] for p in mtl) == 4
        # DoubleMNIST's 16 validation classes cannot validate 20-way: the cell says so and wins
        no_val = {p.settings["way"] for p in mtl if p.settings["eval_every"] == 0}
        assert no_val == ({20} if ds == "doublemnist" else set())
    assert len({p.out for p in plan}) == 40  # every cell has its own folder
