"""fsbench rerun: a result.json read back into its settings and run again, equal on CPU.

Runs on your own image folder (recorded path and file list) and on a generated dataset
(generated again); bad records are one Error: line each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine.rerun import Comparison, default_out, plan_rerun, version_differences
from fsbench.errors import FsbenchError
from fsbench.results import read_json
from PIL import Image


def write_folder(root: Path) -> Path:
    """DIR/train|test/<class>/<k>.png, flat grey images whose level encodes class and number."""
    for split, names in (("train", "abcdef"), ("test", "ghijk")):
        for c, name in enumerate(names):
            for k in range(5):
                path = root / split / name / f"{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("L", (16, 16), 20 * c + 3 * k).save(path)
    return root


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def run_folder(folder: Path, out: Path, data_root: Path):
    small = [
        "--iterations",
        "3",
        "--hidden",
        "4",
        "--episodes",
        "4",
        "--query",
        "2",
        "--train-query",
        "2",
    ]
    r = invoke(
        "run", "protonet", "folder", "--dataset-dir", str(folder), *small, "--out", str(out),
        "--data-root", str(data_root), "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return read_json(out / "result.json")


@pytest.fixture
def folder_run(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(the image folder, a finished run on it, a data root)."""
    folder = write_folder(tmp_path / "mydata")
    run = tmp_path / "run"
    run_folder(folder, run, tmp_path / "root")
    return folder, run, tmp_path / "root"


def test_rerun_of_a_user_folder_run_is_bit_equal_on_cpu(folder_run, tmp_path):
    folder, run, root = folder_run
    recorded = read_json(run / "result.json")
    listed = recorded["data"]["folders"]["path"]
    assert listed["path"] == str(folder.resolve()) and listed["files"] == 55
    out = tmp_path / "again"
    r = invoke("rerun", str(run), "--out", str(out), "--data-root", str(root), "--quiet")
    assert r.exit_code == 0, r.output
    assert "bit-equal to the recorded result" in r.output.splitlines()[-1]
    new = read_json(out / "result.json")
    assert new["accuracy"] == recorded["accuracy"] and new["ci95"] == recorded["ci95"]
    assert new["rerun_of"]["equal"] is True
    assert new["settings"]["data_options"]["path"] == str(folder.resolve())
    # the record is also read given as the file itself; an existing --out is not overwritten
    r = invoke("rerun", str(run / "result.json"), "--out", str(out), "--data-root", str(root))
    assert_one_line_error(r, "--out", "--overwrite")


def test_rerun_of_a_generated_dataset_regenerates_it(tmp_path):
    out = tmp_path / "run"
    args = ["run", "logreg", "mnist1d", "--iterations", "3", "--out", str(out)]
    r = invoke(*args, "--data-root", str(tmp_path / "a"), "--device", "cpu", "--quiet")
    assert r.exit_code == 0, r.output
    again = tmp_path / "again"
    fresh_root = tmp_path / "b"  # an empty cache: the dataset is generated again
    r = invoke("rerun", str(out), "--out", str(again), "--data-root", str(fresh_root), "--quiet")
    assert r.exit_code == 0, r.output
    assert "bit-equal" in r.output
    assert any(fresh_root.rglob("*")), "the dataset was not generated in the new data root"
    assert (
        read_json(again / "result.json")["accuracy"] == read_json(out / "result.json")["accuracy"]
    )


def test_versions_that_differ_are_said_before_the_run(folder_run, tmp_path):
    _, run, root = folder_run
    record = read_json(run / "result.json")
    record["versions"]["torch"] = "1.0.0"
    (run / "result.json").write_text(json.dumps(record))
    plan = plan_rerun(run)
    assert plan.version_differences == [f"torch 1.0.0 recorded, {_torch()} here"]
    r = invoke("rerun", str(run), "--out", str(tmp_path / "x"), "--data-root", str(root))
    lines = r.output.splitlines()
    assert r.exit_code == 0, r.output
    assert lines[0] == f"Note: versions differ: torch 1.0.0 recorded, {_torch()} here"
    assert (
        "bit-equal to the recorded result (on another machine type, device or versions)"
        in (lines[-1])
    )


def _torch() -> str:
    from importlib import metadata

    return metadata.version("torch")


def test_default_out_is_outside_the_run():
    assert default_out(Path("runs/protonet_x/result.json")) == Path("reruns/protonet_x")
    assert default_out(Path("t/mlp-mnist1d/seed42/result.json")) == Path(
        "reruns/mlp-mnist1d-seed42"
    )


def test_a_difference_is_given_with_its_ci():
    c = Comparison(0.80, 0.03, 0.84, 0.04, same_machine=False, same_versions=True)
    assert not c.equal
    assert c.ci95_difference == pytest.approx(0.05)
    text = c.sentence()
    assert "difference +4.00 points" in text and "± 5.00 (within it)" in text
    far = Comparison(0.80, 0.01, 0.90, 0.01, same_machine=True, same_versions=True)
    assert "(outside it)" in far.sentence() and "although machine type" in far.sentence()
    assert version_differences({"torch": "1", "numpy": "2"}, {"torch": "1", "numpy": "3"}) == [
        "numpy 2 recorded, 3 here"
    ]


def test_missing_or_changed_user_folder_is_one_error(folder_run, tmp_path):
    folder, run, root = folder_run
    out = tmp_path / "again"
    (folder / "test" / "g" / "extra.png").write_bytes(b"x")
    r = invoke("rerun", str(run), "--out", str(out), "--data-root", str(root))
    assert_one_line_error(r, str(folder.resolve()), "no longer holds the files", "55 files")
    shutil.move(folder, tmp_path / "elsewhere")
    r = invoke("rerun", str(run), "--out", str(out), "--data-root", str(root))
    assert_one_line_error(r, str(folder.resolve()), "not there", "put the folder back")
    assert not out.exists()


def test_unknown_method_and_not_a_result_are_one_error(folder_run, tmp_path):
    _, run, root = folder_run
    record = read_json(run / "result.json")
    other = tmp_path / "other" / "result.json"
    other.parent.mkdir()
    other.write_text(json.dumps({**record, "settings": {**record["settings"], "method": "mine"}}))
    assert_one_line_error(invoke("rerun", str(other)), "method 'mine'", "protonet")
    other.write_text("not json")
    assert_one_line_error(invoke("rerun", str(other)), "not a result.json")
    other.write_text(json.dumps({"hello": 1}))
    assert_one_line_error(invoke("rerun", str(other)), "not a result.json")
    assert_one_line_error(invoke("rerun", str(tmp_path)), "holds no result.json")
    del record["data"]["folders"]  # a record of an older fsbench: the folder is only found
    (run / "result.json").write_text(json.dumps(record))
    assert plan_rerun(run).notes[0].endswith("no file list recorded (older fsbench), not checked")
    with pytest.raises(FsbenchError, match="own folder"):
        from fsbench.engine.rerun import rerun

        rerun(plan_rerun(run), run, overwrite=True)
