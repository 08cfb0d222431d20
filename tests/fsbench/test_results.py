"""Result files and tables: seeds averaged, published beside ours, markdown/CSV, source layout."""

from __future__ import annotations

import json

import pandas as pd
from fsbench.results import MetricsLog, read_metrics, write_json
from fsbench.table_specs import TABLES
from fsbench.tables import (
    load_results,
    match_cells,
    pivot_frame,
    results_frame,
    to_markdown,
    write_tables,
)


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
    # two seeds: the CI comes from their spread, 1.96 * sample std / sqrt(2)
    assert cnn["ci95_%"] == round(1.96 * (2**0.5) / 2**0.5, 2) and "seeds" in cnn["ci95_method"]
    md = to_markdown(df)
    assert md.splitlines()[0].startswith("| method | dataset |") and "| 94 |" in md
    results = load_results([tmp_path])
    grid = pivot_frame(TABLES["mnist1d"], match_cells(TABLES["mnist1d"], results))
    assert list(grid.columns) == ["dataset", "Logistic regression", "MLP", "CNN", "GRU"]
    assert grid.iloc[0]["CNN"] == "94.0 ± 2.0 (94)"
    assert grid.iloc[1]["GRU"] == "55.0 ± 1.0 (57)"
    assert grid.iloc[0]["GRU"] == "- (91)"
    md_path, csv_path = write_tables(df, tmp_path / "out")
    assert pd.read_csv(csv_path).shape[0] == 2 and md_path.read_text().startswith("|")


def test_seeds_group_across_settings_their_method_never_reads():
    from fsbench.resolve import resolve_settings

    runs = []
    for seed, episodes in ((0, 4), (1, 600)):  # a classifier reads no episodes: one row
        r = fake("mlp", "mnist1d", 0.6 + seed / 10, seed)
        r["settings"] = resolve_settings("mlp", "mnist1d", {"episodes": episodes, "seed": seed})
        runs.append(r)
    for seed, episodes in ((0, 4), (1, 600)):  # ProtoNets tests that many episodes: two rows
        r = fake("protonet", "omniglot", 0.9, seed, way=5, shot=1)
        r["settings"] = resolve_settings(
            "protonet", "omniglot", {"episodes": episodes, "seed": seed}
        )
        runs.append(r)
    df = results_frame(runs)
    assert df[df["method"] == "mlp"]["runs"].tolist() == [2]
    assert df[df["method"] == "protonet"]["runs"].tolist() == [1, 1]


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


def test_table_groups_only_identical_settings(tmp_path):
    """Runs that differ in anything but the seed are separate rows that name the difference."""
    runs = [
        ({"iterations": 6001, "lr": 0.01, "threads": 1}, 0, 0.60),
        ({"iterations": 6001, "lr": 0.01, "threads": 2}, 1, 0.62),  # threads: execution only
        ({"iterations": 5, "lr": 0.01, "threads": 1}, 0, 0.20),  # a smoke run: its own row
    ]
    for i, (settings, seed, acc) in enumerate(runs):
        r = fake("mlp", "mnist1d", acc, seed)
        r["settings"] = {**settings, "seed": seed}
        r["iterations"] = settings["iterations"]
        (tmp_path / f"r{i}").mkdir()
        write_json(tmp_path / f"r{i}" / "result.json", r)
    df = results_frame(load_results([tmp_path]))
    assert len(df) == 2
    full = df[df["settings"] == "iterations=6001"].iloc[0]
    smoke = df[df["settings"] == "iterations=5"].iloc[0]
    assert (full["runs"], full["ours_%"], full["seeds"]) == (2, 61.0, "0 1")
    assert (smoke["runs"], smoke["ours_%"]) == (1, 20.0)
    assert "iterations=5" in to_markdown(df)


def test_no_published_number_for_data_that_is_not_the_published_set():
    r = fake("protonet", "omniglot", 0.9, 0, way=5, shot=1)
    r.update(
        published_percent=None,
        dataset_label="Omniglot (small background sets, alphabet-disjoint)",
        not_comparable="not the full Omniglot",
    )
    df = results_frame([r])
    row = df.iloc[0]
    assert row["published_%"] is None or pd.isna(row["published_%"])
    assert row["dataset"] == "Omniglot (small background sets, alphabet-disjoint)"
    spec = TABLES["protonet-omniglot"]
    grid = pivot_frame(spec, match_cells(spec, [r]))
    assert grid.iloc[0]["dataset"] == "Omniglot (small background sets, alphabet-disjoint)"
    assert grid.iloc[0]["5-way 1-shot"] == "90.0 ± 1.0"  # nothing in brackets
