"""The detection commands end to end on a tiny run: run, eval, predict (JSON + PNGs), and bad
input as one `Error:` line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from PIL import Image

pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")

TINY = ["--scene-size", "64", "--train-scenes", "24", "--iterations", "2", "--episodes", "1",
        "--query", "1", "--batch-size", "2", "--threads", "1", "--checkpoint-every", "0"]  # fmt: skip


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, fsbench_data_root) -> Path:
    out = tmp_path_factory.mktemp("det") / "run"
    result = invoke(
        "run", "repmet-det", "mnist-detect", *TINY, "--out", out, "--data-root", fsbench_data_root,
        "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mAP@0.5" in result.output and "random boxes" in result.output
    return out


def _scenes(count: int, seed: int):
    from fsbench.detection.scenes import SceneSpec, generate_split

    return generate_split(SceneSpec(size=64, test_scenes=count, seed=seed), "test")


def test_run_result_and_eval(run_dir, fsbench_data_root, tmp_path):
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["method"] == "repmet-det" and saved["metric"] == "mAP@0.5"
    result = invoke(
        "eval", run_dir, "--shot", 2, "--episodes", 1, "--data-root", fsbench_data_root, "--quiet"
    )
    assert result.exit_code == 0, result.output
    again = json.loads((run_dir / "eval-5w2s" / "result.json").read_text())
    assert again["shot"] == 2 and again["evaluated_run"] == str(run_dir)


def test_eval_into_a_folder_in_use_is_one_line(run_dir, fsbench_data_root, tmp_path):
    from fsbench.engine import run_lock

    busy = tmp_path / "busy"
    busy.mkdir()
    lock = run_lock.acquire(busy)  # another writer holds OUT
    try:
        result = invoke("eval", run_dir, "--episodes", 1, "--out", busy, "--quiet",
                        "--data-root", fsbench_data_root)  # fmt: skip
    finally:
        lock.release()
    assert_one_line_error(result, str(busy))
    assert not (busy / "result.json").exists()


def test_predict_writes_boxes_and_pictures(run_dir, tmp_path):
    data = _scenes(5, seed=9)
    support, query = tmp_path / "support", tmp_path / "query"
    for i, rec in enumerate(data.records[:2]):  # one crop per class folder
        x1, y1, x2, y2 = rec.boxes[0].astype(int)
        folder = support / data.classes[int(rec.labels[0])]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.pixels[i][y1:y2, x1:x2]).save(folder / f"{i}.png")
    query.mkdir()
    for i in (2, 3, 4):
        Image.fromarray(data.pixels[i]).save(query / f"q{i}.png")
    out = tmp_path / "pred"
    result = invoke("predict", run_dir, "--support", support, "--query", query, "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "predictions.json").read_text())
    assert doc["classes"] == sorted(p.name for p in support.iterdir()) and doc["shot"] == 1
    assert [Path(im["file"]).name for im in doc["images"]] == ["q2.png", "q3.png", "q4.png"]
    for im in doc["images"]:
        assert len(im["boxes"]) == len(im["classes"]) == len(im["scores"])
        assert set(im["classes"]) <= set(doc["classes"])
        assert all(0 <= s <= 1 for s in im["scores"])
        assert all(0 <= v <= 64 for b in im["boxes"] for v in b)
    picture = Image.open(out / "q2.png")
    assert picture.size == (128, 128) and picture.mode == "RGB"
    again = invoke("predict", run_dir, "--support", support, "--query", query, "--out", out)
    assert_one_line_error(again, "--overwrite")


def test_predict_bad_support_is_one_line(run_dir, tmp_path):
    query = tmp_path / "query"
    query.mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(query / "q.png")
    support = tmp_path / "support"
    (support / "07").mkdir(parents=True)
    Image.fromarray(np.full((10, 20), 200, np.uint8)).save(support / "07" / "a.png")
    (support / "12").mkdir()  # a class with no box
    result = invoke(
        "predict", run_dir, "--support", support, "--query", query, "--out", tmp_path / "o"
    )
    assert_one_line_error(result, "support class '12' has no box")
    coco = tmp_path / "coco"
    coco.mkdir()
    (coco / "ann.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "gone.png", "width": 64, "height": 64}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9]}],
                "categories": [{"id": 1, "name": "07"}],
            }
        )
    )
    result = invoke(
        "predict", run_dir, "--support", coco, "--query", query, "--out", tmp_path / "o"
    )
    assert_one_line_error(result, "gone.png, which does not exist")


def test_run_bad_input_is_one_line(tmp_path):
    assert_one_line_error(
        invoke("run", "repmet-det", "doublemnist", "--out", tmp_path / "x"),
        "detection runs on mnist-detect",
    )
    assert_one_line_error(
        invoke("run", "protonet", "doublemnist", "--train-scenes", 5, "--out", tmp_path / "y"),
        "--train-scenes applies to repmet-det and finetune-det, not protonet",
    )
    assert_one_line_error(
        invoke("run", "repmet-det", "mnist-detect", "--inner-steps", 3, "--out", tmp_path / "z"),
        "--inner-steps does not apply to repmet-det",
    )


def test_table_report_and_rerun_of_a_detection_run(run_dir, fsbench_data_root, tmp_path):
    saved = json.loads((run_dir / "result.json").read_text())
    # the record every run has: settings that differ from the preset, the protocol's notes
    devs = {d["setting"]: (d["value"], d["preset"]) for d in saved["deviations"]}
    assert devs["scene_size"] == (64, 128) and devs["iterations"] == (2, 3000)
    assert "seed" not in devs and "train_query" not in devs
    assert any("deformable" in n for n in saved["protocol_notes"]) and saved["not_comparable"]
    table = invoke("table", run_dir)
    assert table.exit_code == 0, table.output
    assert (
        "| repmet-det | mnist-detect | 5 | 1 |" in table.output and "scene_size=64" in table.output
    )
    report = invoke("report", run_dir, "--out", tmp_path / "r.html")
    assert report.exit_code == 0, report.output
    assert "deformable" in (tmp_path / "r.html").read_text()
    again = invoke("rerun", run_dir, "--out", tmp_path / "again", "--data-root", fsbench_data_root)
    assert again.exit_code == 0, again.output
    assert "rerun: mAP@0.5" in again.output and "bit-equal to the recorded result" in again.output
    new = json.loads((tmp_path / "again" / "result.json").read_text())
    assert new["map50"] == saved["map50"] and new["rerun_of"]["equal"] is True
