"""fsbench reproduce repmet-detection on a tiny preset: both detectors, both shots, one table."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")


def test_reproduce_trains_each_detector_once_and_tests_both_shots(tmp_path, monkeypatch):
    from fsbench.detection import reproduce

    tiny = {
        "iterations": 2,
        "episodes": 1,
        "query": 1,
        "scene_size": 64,
        "train_scenes": 24,
        "val_scenes": 2,
        "test_scenes": 30,
        "batch_size": 2,
        "checkpoint_every": 0,
        "threads": 1,
    }
    monkeypatch.setattr(reproduce, "QUICK", tiny)
    lines = []
    cells = reproduce.reproduce_repmet_detection(  # the two detectors in two processes
        tmp_path, quick=True, quiet=True, echo=lines.append, jobs=2
    )
    assert [(c["method"], c["shot"]) for c in cells] == [
        ("repmet-det", 1),
        ("repmet-det", 5),
        ("finetune-det", 1),
        ("finetune-det", 5),
    ]
    assert all(c["iterations"] == 2 and c["way"] == 5 for c in cells)
    table = (tmp_path / "table.md").read_text()
    assert (
        "| repmet-det |" in table and "| finetune-det |" in table and "no published number" in table
    )
    assert json.loads((tmp_path / "table.json").read_text())["quick"] is True
    assert (tmp_path / "repmet-det" / "eval-5w5s" / "result.json").is_file()
    # a second call, in this process, resumes: nothing is retrained, the same numbers
    again = reproduce.reproduce_repmet_detection(
        tmp_path, quick=True, quiet=True, echo=lines.append
    )
    assert [c["map50"] for c in again] == [c["map50"] for c in cells]


def test_render_rows():
    from fsbench.detection.reproduce import render

    cells = [
        {"method": m, "shot": s, "map50": 0.5, "ci95": 0.01, "random_boxes_map50": 0.002}
        for m in ("repmet-det", "finetune-det")
        for s in (1, 5)
    ]
    text = render(cells, quick=True)
    assert "| repmet-det | 50.0 ± 1.0 | 50.0 ± 1.0 | 0.2 / 0.2 |" in text
