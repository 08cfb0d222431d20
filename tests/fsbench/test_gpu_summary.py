"""benchmarks/gpu_summary.py: dmon samples matched to each speed row's window, the short table."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_summary():
    spec = importlib.util.spec_from_file_location("gpu_summary", ROOT / "benchmarks/gpu_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_busy_percent_of_the_dmon_samples_inside_each_window(tmp_path):
    gs = load_summary()
    t0 = time.mktime(time.strptime("20261204 17:00:00", "%Y%m%d %H:%M:%S"))
    speed = tmp_path / "speed"
    speed.mkdir()
    (speed / "dmon.txt").write_text(
        "#Date Time gpu sm mem enc dec jpg ofa\n#YYYYMMDD HH:MM:SS Idx % % % % % %\n"
        "20261204 17:00:00 0 10 1 0 0 0 0\n20261204 17:00:01 0 90 5 0 0 0 0\n"
        "20261204 17:00:02 0 80 5 0 0 0 0\n20261204 17:00:03 0 - - - - - -\n"
    )
    row = {"device": "cuda", "execution": "graph", "precision": "tf32", "chosen": "graph",
           "iterations_per_second": 150.0, "speedup_vs_loop": 6.0,
           "window_unix": [t0 + 1, t0 + 3]}  # fmt: skip
    report = {
        "settings": {"way": 5, "shot": 1, "size": 64, "hidden": 64, "meta_batch": 12},
        "results": [
            row,
            {
                "device": "cuda",
                "execution": "compile",
                "precision": "tf32",
                "error": "RuntimeError: no",
            },
        ],  # fmt: skip
        "costs": [{"device": "cuda", "precision": "tf32", "floor_iterations_per_second": 602.0}],
    }
    (speed / "bench_maml_preset.json").write_text(json.dumps(report))
    (tmp_path / "tests.txt").write_text("57 passed in 60s\nexit 0, code key abc\n")
    cell = tmp_path / "doublemnist-5w1s"
    cell.mkdir()
    (cell / "metrics.jsonl").write_text('{"iteration": 1000}\n{"iteration": 2000}\n')
    text = gs.summarize(tmp_path, tmp_path)
    assert "| 5w1s 64px h64 mb12 | graph | tf32 | 150.0 | 6.0x | 602.0 | 85.0 |" in text
    assert "| compile | tf32 | error |" in text
    assert "CUDA tests: 57 passed in 60s; exit 0, code key abc" in text
    assert "cell doublemnist-5w1s: iteration 2,000 (no checkpoint)" in text
    saved = json.loads((speed / "bench_maml_preset.json").read_text())
    assert saved["results"][0]["gpu_busy_percent"] == 85.0  # the two samples inside, not 10
    assert (tmp_path / "summary.md").read_text() == text
