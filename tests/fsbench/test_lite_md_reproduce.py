"""fsbench reproduce lite-md on fixture records: one training, one evaluation per test source.

The table's own cells (224x224, ResNet-12, 10,000 tasks) are shrunk for the test by replacing the
cells' settings (Conv-4 of 4 filters at 84x84, fixed 2-way episodes: the fixture's test sources
hold 2 or 3 classes); everything else (the plan, --dataset-dir, the per-source evaluations, the
printed table) is the command's own path.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.table_specs import LITE_MD_TEST, TABLES
from md_fixtures import write_all

TINY = {
    "md_episodes": True,
    "md_way": 2,
    "md_query": 1,
    "lite_h": 2,
    "backbone": "conv4",
    "hidden": 4,
    "iterations": 2,
    "eval_every": 0,
    "select": "last",
    "data_options": {"image_size": 84},
}


@pytest.fixture
def records(tmp_path) -> Path:
    return write_all(tmp_path / "records")


@pytest.fixture
def tiny_table(monkeypatch):
    spec = TABLES["lite-md"]
    cells = tuple(dataclasses.replace(c, overrides=TINY) for c in spec.cells)
    monkeypatch.setitem(TABLES, "lite-md", dataclasses.replace(spec, cells=cells))


def test_every_cell_runs_and_prints_one_row_per_test_source(records, tmp_path, tiny_table):
    out = tmp_path / "out"
    args = ["reproduce", "lite-md", "--dataset-dir", str(records), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--episodes", "3", "--quiet", "--threads", "1"])
    assert result.exit_code == 0, result.output

    cell_lines = [ln for ln in result.output.splitlines() if ln.startswith("[")]
    assert len(cell_lines) == 1 + len(LITE_MD_TEST) == 9
    assert sum("(trained)" in ln for ln in cell_lines) == 1  # one training, the rest evaluate it
    assert sum("evaluated from" in ln for ln in cell_lines) == 8
    grid = result.output[result.output.index("Bronskill et al. 2021") :].split("\n\n")[0]
    for _, label in LITE_MD_TEST:
        assert f"| {label} |" in grid

    trained = out / "simple_cnaps-metadataset" / "seed0"
    for source, _ in LITE_MD_TEST:
        r = json.loads((out / f"simple_cnaps-{source}-metadataset/seed0/result.json").read_text())
        assert r["settings"]["data_options"]["sources"] == source  # that source's test split
        assert r["settings"]["data_options"]["path"] == str(records)  # recorded as run's is
        assert r["evaluated_from"]["run"] == str(trained)
        assert r["episodes"] == 3 and 0 <= r["accuracy"] <= 1
        assert r["iterations"] == 2  # the shared model, not a new training
    assert not (out / "simple_cnaps-omniglot-metadataset" / "seed0" / "checkpoint.pt").exists()

    again = CliRunner().invoke(main, [*args, "--episodes", "3", "--quiet", "--threads", "1"])
    assert again.exit_code == 0, again.output
    assert again.output.count("kept the earlier result") == 9

    # fsbench eval --md-sources: one source's test split of the trained run
    run = trained
    result = CliRunner().invoke(main, ["eval", str(run), "--md-sources", "dtd", "--quiet"])
    assert result.exit_code == 0, result.output
    r = json.loads((run / "eval-md-dtd" / "result.json").read_text())
    assert r["settings"]["data_options"]["sources"] == "dtd"
    assert r["episodes"] == 3  # the run's own test episodes (the table's --episodes 3)
    # the same source, episodes and seed as the table's dtd cell: the same accuracy
    cell = json.loads((out / "simple_cnaps-dtd-metadataset/seed0/result.json").read_text())
    assert r["accuracy"] == cell["accuracy"]

    bad = CliRunner().invoke(main, ["eval", str(run), "--md-sources", "imagenet", "--quiet"])
    assert_one_line_error(bad, "--md-sources")
    # held in memory instead of streamed: the same evaluation
    held = ["eval", str(run), "--md-sources", "dtd", "--md-read", "memory", "--quiet"]
    result = CliRunner().invoke(main, [*held, "--out", str(tmp_path / "held")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "held" / "result.json").read_text())["accuracy"] == r["accuracy"]


def test_md_sources_restrict_the_table_and_md_read_changes_nothing(records, tmp_path, tiny_table):
    out = tmp_path / "out"
    args = ["reproduce", "lite-md", "--dataset-dir", str(records), "--out", str(out)]
    args += ["--episodes", "2", "--quiet", "--threads", "1", "--md-sources", "omniglot,dtd"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    cell_lines = [ln for ln in result.output.splitlines() if ln.startswith("[")]
    assert len(cell_lines) == 3  # the training (tested on both) and one row per chosen source
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "simple_cnaps-dtd-metadataset",
        "simple_cnaps-metadataset",
        "simple_cnaps-omniglot-metadataset",
    ]
    r = json.loads((out / "simple_cnaps-metadataset/seed0/result.json").read_text())
    assert r["settings"]["data_options"]["sources"] == "omniglot,dtd"
    assert r["data"]["train"]["md_sources"] == ["omniglot", "dtd"]
    assert "data_options.sources" in {d["setting"] for d in r["deviations"]}
    # an execution option: the same cells, kept as they are
    again = CliRunner().invoke(main, [*args, "--md-read", "memory"])
    assert again.exit_code == 0, again.output
    assert again.output.count("kept the earlier result") == 3

    bad = CliRunner().invoke(main, [*args[:-1], "omniglot,imagenet"])
    assert_one_line_error(bad, "--md-sources")
    quick = ["reproduce", "lite-md", "--quick", "--md-read", "memory", "--out", str(tmp_path / "q")]
    assert_one_line_error(CliRunner().invoke(main, quick), "--md-read")
    assert not (tmp_path / "q").exists()


def test_full_table_without_records_is_one_error_line(tmp_path):
    result = CliRunner().invoke(main, ["reproduce", "lite-md", "--out", str(tmp_path / "o")])
    assert_one_line_error(result, "--dataset-dir")
    assert not (tmp_path / "o").exists()
    quick = ["reproduce", "lite-md", "--quick", "--dataset-dir", str(tmp_path)]
    assert_one_line_error(CliRunner().invoke(main, quick), "--dataset-dir")


def test_table_settings_are_lites_md_v2_run():
    spec = TABLES["lite-md"]
    trainer = spec.cells[0]
    assert not trainer.test_data and trainer.dataset == "metadataset"
    o = trainer.overrides
    assert (o["lite_h"], o["iterations"], o["episodes"]) == (40, 10000, 600)
    assert o["data_options"]["image_size"] == 224 and o["md_episodes"]
    assert [c.test_data["sources"] for c in spec.cells[1:]] == [s for s, _ in LITE_MD_TEST]
    assert all(c.overrides == o for c in spec.cells)  # one training serves every source
    assert [c.dataset for c in spec.for_run(True).cells] == ["triplemnist"]


def test_quick_cell_resolves_to_md_episodes_on_triplemnist():
    from fsbench.engine.reproduce import cell_settings

    spec = TABLES["lite-md"].for_run(True)
    s = cell_settings(spec, spec.cells[0], 0, True, {}, jobs=1)
    assert s["md_episodes"] and s["lite_h"] == 8 and s["method"] == "simple_cnaps"
    assert s["data_options"]["resize"] == 28 and s["data_options"]["num_image_per_class"] == 40
