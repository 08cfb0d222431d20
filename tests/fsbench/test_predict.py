"""fsbench predict: a trained run classifies query images among a support folder's classes.

The acceptance check: on a DoubleMNIST model, a 5-class x 1-image support folder and labelled
queries give the same predictions and accuracy as the test-episode evaluation of those images.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.data import load_split
from fsbench.data.store import Episode
from fsbench.engine.evaluate import trained_settings
from fsbench.engine.predict import build_trained, run_transform
from PIL import Image
from test_data_folder import split_folder, write_image

QUERIES = 3


def invoke(*args: str):
    return CliRunner().invoke(main, [*args])


def train_doublemnist(tiny, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    r = invoke(
        "run", "protonet", "doubled", "--images-per-class", "25", "--resize", "16",
        "--iterations", "3", "--hidden", "4", "--train-way", "5", "--train-query", "2",
        "--episodes", "2", "--eval-every", "0", "--select", "last",
        "--data-root", str(tiny.data_root), "--out", str(out), "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return out


def write_episode(store, root: Path) -> tuple[Path, Path, torch.Tensor, torch.Tensor]:
    """support/<class>/0.png and query/<class>/k.png from the store's first 5 test classes."""
    support_idx, query_idx = [], []
    for c in range(5):
        rows = store.class_index[c, : 1 + QUERIES].tolist()
        support_idx.append(rows[0])
        query_idx += rows[1:]
    for folder, idx, per in (("support", support_idx, 1), ("query", query_idx, QUERIES)):
        for n, i in enumerate(idx):
            name = store.class_names[int(store.labels[i])]
            path = root / folder / name / f"{n % per}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(store.data[i, 0].numpy()).save(path)
    return root / "support", root / "query", torch.tensor(support_idx), torch.tensor(query_idx)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_equals_the_episode_evaluation_of_the_same_images(tiny_doublemnist, tmp_path):
    # the images as the dataset ships them (64x64); predict applies the run's --resize 16
    run_dir = train_doublemnist(tiny_doublemnist, tmp_path)
    kw = dict(data_root=tiny_doublemnist.data_root, num_image_per_class=25)
    small = load_split("doublemnist", "test", resize=16, **kw)
    written = load_split("doublemnist", "test", **kw)
    support, query, s_idx, q_idx = write_episode(written, tmp_path / "images")
    out = tmp_path / "pred.csv"
    r = invoke("predict", str(run_dir), "--support", str(support), "--query", str(query),
               "--out", str(out), "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = read_csv(out)
    assert len(rows) == 5 * QUERIES and set(rows[0]) >= {"image", "predicted_class", "true_class"}
    accuracy = sum(r["predicted_class"] == r["true_class"] for r in rows) / len(rows)
    assert f"accuracy {100 * accuracy:.2f} %" in r.output

    # the same images as a test episode of the same model
    settings, _ = trained_settings(run_dir)
    method = build_trained(run_dir, settings, run_transform(run_dir), torch.device("cpu"))
    xs, xq = small.to_float(small.data[s_idx]), small.to_float(small.data[q_idx])
    labels = torch.arange(5)
    ep = Episode(
        xs[None], labels[None], xq[None], labels.repeat_interleave(QUERIES)[None], 5, 1, QUERIES
    )
    method.model.eval()
    with torch.no_grad():
        episode_accuracy = float(method.episode_accuracies(ep)[0])
        guesses = method.task_scores(xs, labels, xq, 5).argmax(1).tolist()
    assert accuracy == pytest.approx(episode_accuracy, abs=1e-6)
    names = [small.class_names[c] for c in range(5)]
    assert [r["predicted_class"] for r in rows] == [names[g] for g in guesses]


def train_folder(tmp_path: Path, method: str = "protonet", *extra: str) -> tuple[Path, Path]:
    folder = split_folder(tmp_path, per_class=8)
    out = tmp_path / f"run-{method}"
    r = invoke(
        "run", method, "folder", "--dataset-dir", str(folder), "--iterations", "2",
        "--hidden", "4", "--episodes", "2", "--query", "2", "--train-query", "2",
        "--eval-every", "0", "--select", "last", "--data-root", str(tmp_path / "root"),
        "--out", str(out), "--device", "cpu", "--quiet", *extra,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return folder, out


def test_unequal_shots_flat_query_and_json(tmp_path):
    folder, run_dir = train_folder(tmp_path)
    support, query = tmp_path / "s", tmp_path / "q"
    for name, count in (("cats", 3), ("dogs", 1), ("owls", 2)):
        for k in range(count):
            write_image(support / name / f"{k}.jpg", 30 * len(name) + k, mode="L")
    for k in range(4):
        write_image(query / f"new{k}.png", 40 * k)
    (query / ".DS_Store").write_bytes(b"\0")
    out = tmp_path / "p.json"
    r = invoke("predict", str(run_dir), "--support", str(support), "--query", str(query),
               "--out", str(out), "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert sum(ln.startswith("Warning:") for ln in r.output.splitlines()) == 1
    doc = json.loads(out.read_text())
    assert doc["classes"] == ["cats", "dogs", "owls"] and doc["accuracy"] is None
    assert len(doc["predictions"]) == 4 and "true_class" not in doc["predictions"][0]
    for row in doc["predictions"]:
        assert sum(row["scores"].values()) == pytest.approx(1, abs=1e-4)
    # csv to stdout, no true class column for unlabelled queries
    r = CliRunner().invoke(main, ["predict", str(run_dir), "--support", str(support), "--query",
                                  str(query), "--format", "csv", "--quiet"])  # fmt: skip
    assert r.exit_code == 0, r.output
    header = r.stdout.splitlines()[0]  # warnings go to stderr
    assert header == "image,predicted_class,score_cats,score_dogs,score_owls"
    # an existing --out is kept without --overwrite
    before = out.read_text()
    r = invoke("predict", str(run_dir), "--support", str(support), "--query", str(query),
               "--out", str(out))  # fmt: skip
    assert_one_line_error(r, "--out", "--overwrite")
    assert out.read_text() == before


@pytest.mark.parametrize("method", ["magnet", "repmet"])
def test_modes_methods_predict_with_unequal_shots(tmp_path, method):
    extra = ["--modes", "2", "--clusters-per-batch", "3", "--images-per-cluster", "2"]
    if method == "repmet":
        extra += ["--embedding-dim", "8"]
    folder, run_dir = train_folder(tmp_path, method, "--shot", "2", *extra)
    support = tmp_path / "s"
    for c, name in enumerate(["j", "k", "l"]):
        for k in range(c + 1):  # 1, 2 and 3 images
            write_image(support / name / f"{k}.png", 10 * (c + 9) + k)
    out = tmp_path / "p.csv"
    r = invoke("predict", str(run_dir), "--support", str(support), "--query",
               str(folder / "test"), "--out", str(out))  # fmt: skip
    assert_one_line_error(r, "--query class folder 'm'", "not a class of --support")
    for name in ("m", "n"):
        write_image(support / name / "0.png", 200)
    r = invoke("predict", str(run_dir), "--support", str(support), "--query",
               str(folder / "test"), "--out", str(out), "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = read_csv(out)
    assert len(rows) == 5 * 8
    scores = [float(v) for k, v in rows[0].items() if k.startswith("score_")]
    assert len(scores) == 5 and sum(scores) == pytest.approx(1, abs=1e-4)


def test_maml_needs_its_own_way_and_bad_folders_are_one_line(tmp_path):
    folder, run_dir = train_folder(tmp_path, "maml", "--meta-batch", "1")
    support = tmp_path / "s"
    for name in ("a", "b", "c"):
        write_image(support / name / "0.png", 50)
    r = invoke("predict", str(run_dir), "--support", str(support), "--query", str(folder / "test"))
    assert_one_line_error(r, "--support has 3 classes", "5-way")
    for name in ("d", "e"):
        write_image(support / name / "0.png", 90)
    mixed = tmp_path / "mixed"
    write_image(mixed / "a" / "0.png", 5)
    write_image(mixed / "loose.png", 5)
    r = invoke("predict", str(run_dir), "--support", str(support), "--query", str(mixed))
    assert_one_line_error(r, "both images and class folders")
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "broken.png").write_bytes(b"not a png")
    r = invoke("predict", str(run_dir), "--support", str(support), "--query", str(tmp_path / "q"))
    assert_one_line_error(r, "cannot decode image", "broken.png")
    out = tmp_path / "ok.csv"
    r = invoke("predict", str(run_dir), "--support", str(support), "--query",
               str(folder / "test" / "j"), "--out", str(out), "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(read_csv(out)) == 8


def test_predict_without_a_finished_run_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    write_image(tmp_path / "s" / "a" / "0.png", 1)
    r = invoke("predict", str(tmp_path / "empty"), "--support", str(tmp_path / "s"),
               "--query", str(tmp_path / "s"))  # fmt: skip
    assert_one_line_error(r, "checkpoint.pt")
