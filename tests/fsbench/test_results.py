"""Result files and tables: seeds averaged, published beside ours, markdown/CSV, source layout."""

from __future__ import annotations

import json

import pandas as pd
from fsbench.presets import TABLES
from fsbench.results import MetricsLog, read_metrics, write_json
from fsbench.tables import load_results, pivot_frame, results_frame, to_markdown, write_tables


def fake(method, dataset, acc, seed, way=None, shot=None):
    return {
        "method": method,
        "dataset": dataset,
        "way": way,
        "shot": shot,
        "accuracy": acc,
        "ci95": 0.01,
        "seed": seed,
        "iterations": 6000,
        "episodes": 1000,
        "ci95_method": "binomial",
    }


def test_tables_from_result_dirs(tmp_path):
    for i, (m, ds, acc) in enumerate(
        [("cnn", "mnist1d", 0.93), ("cnn", "mnist1d", 0.95), ("gru", "mnist1d-shuffled", 0.55)]
    ):
        d = tmp_path / f"r{i}"
        d.mkdir()
        write_json(d / "result.json", fake(m, ds, acc, seed=i))
    (tmp_path / "r0" / "junk.json").write_text("{")  # ignored: not result.json
    df = results_frame(load_results([tmp_path]))
    cnn = df[df["method"] == "cnn"].iloc[0]
    assert (
        cnn["ours_%"] == 94.0
        and cnn["runs"] == 2
        and cnn["published_%"] == 94.0
        and cnn["diff"] == 0.0
    )
    assert cnn["seed_std_%"] > 0
    md = to_markdown(df)
    assert md.splitlines()[0].startswith("| method | dataset |") and "| 94 |" in md
    grid = pivot_frame(TABLES["mnist1d"], df)
    assert list(grid.columns) == ["dataset", "Logistic regression", "MLP", "CNN", "GRU"]
    assert grid.iloc[0]["CNN"] == "94.0 ± 1.0 (94)"
    assert grid.iloc[1]["GRU"] == "55.0 ± 1.0 (57)"
    assert grid.iloc[0]["GRU"] == "- (91)"
    md_path, csv_path = write_tables(df, tmp_path / "out")
    assert pd.read_csv(csv_path).shape[0] == 2 and md_path.read_text().startswith("|")


def test_metrics_log_truncates_to_checkpoint_position(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    log.write({"iteration": 1})
    pos = log.position()
    log.write({"iteration": 2})
    log.close()
    log = MetricsLog(tmp_path / "m.jsonl", resume_position=pos)
    log.write({"iteration": 2, "again": True})
    log.close()
    assert read_metrics(tmp_path / "m.jsonl") == [{"iteration": 1}, {"iteration": 2, "again": True}]


def test_write_json_is_atomic_and_readable(tmp_path):
    write_json(tmp_path / "result.json", {"a": 1})
    assert json.loads((tmp_path / "result.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
