"""The fsbench command: bad input is one line and a non-zero exit; list; run end to end; table."""

from __future__ import annotations

import json

import pytest
import torch
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.engine import run_setting
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_loader


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("run", "resnet", "doubled"), ("'resnet'", "maml", "protonet", "gru")),
        (("run", "maml", "cifar"), ("'cifar'", "doublemnist", "tripled", "omniglot")),
        (("run", "maml", "doubled", "--way", "0"), ("--way", "0")),
        (("run", "maml", "doubled", "--iterations", "-3"), ("--iterations",)),
        (("run", "protonet", "doubled", "--episodes", "0"), ("--episodes",)),
        (("run", "mlp", "doubled"), ("mnist1d",)),
        (("run", "maml", "mnist1d"), ("image dataset",)),
        (("run", "mlp", "mnist1d", "--images-per-class", "5"), ("--images-per-class",)),
        (("run", "maml", "doubled", "--device", "tpu"), ("--device",)),
        (("reproduce", "nope"), ("'nope'", "mnist1d", "multidigit-maml", "protonet-omniglot")),
        (("reproduce", "mnist1d", "--seeds", "a,b"), ("--seeds",)),
        (("reproduce", "mnist1d", "--jobs", "0"), ("--jobs", "0")),
        (("reproduce", "mnist1d", "--iterations", "0"), ("--iterations", "0")),
        (("table", "/definitely/not/here"), ("/definitely/not/here",)),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, needles):
    assert_one_line_error(invoke(*args), *needles)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu(tmp_path):
    r = invoke("run", "protonet", "doubled", "--device", "cuda", "--out", str(tmp_path))
    assert_one_line_error(r, "CUDA")


def test_way_larger_than_classes_and_shot_query_too_large(tiny_doublemnist, tmp_path):
    root = str(tiny_doublemnist.data_root)
    common = ("--data-root", root, "--images-per-class", "25", "--quiet", "--device", "cpu")
    r = invoke(
        "run",
        "protonet",
        "doubled",
        "--way",
        "30",
        "--train-way",
        "5",
        "--out",
        str(tmp_path / "a"),
        *common,
    )
    assert_one_line_error(r, "--way 30", "20")
    r = invoke(
        "run",
        "protonet",
        "doubled",
        "--shot",
        "20",
        "--query",
        "10",
        "--train-way",
        "5",
        "--out",
        str(tmp_path / "b"),
        *common,
    )
    assert_one_line_error(r, "--shot", "25")
    # validation episodes larger than the val split (16 classes) are refused before training
    r = invoke(
        "run",
        "protonet",
        "doubled",
        "--train-way",
        "5",
        "--val-way",
        "17",
        "--out",
        str(tmp_path / "c"),
        *common,
    )
    assert_one_line_error(r, "val split", "--val-way")
    # A rejected run leaves nothing behind, not even an empty OUT folder.
    assert not any((tmp_path / d).exists() for d in ("a", "b", "c"))


def test_corrupt_dataset_file_is_one_line(tiny_doublemnist, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(tiny_doublemnist.data_root, root)
    for h5 in root.rglob("train.h5"):
        h5.write_bytes(b"not an hdf5 file")
    r = invoke(
        "run",
        "protonet",
        "doubled",
        "--data-root",
        str(root),
        "--images-per-class",
        "25",
        "--quiet",
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    )
    assert_one_line_error(r)


def test_list_shows_methods_datasets_presets_tables():
    r = invoke("list")
    assert r.exit_code == 0, r.output
    for word in (
        "maml",
        "fomaml",
        "protonet",
        "logreg",
        "gru",
        "doublemnist",
        "doubled",
        "tripled",
        "mnist1d-shuffled",
        "omniglot",
        "inner_lr=0.4",
        "meta_batch=12",
        "multidigit-maml",
        "protonet-omniglot",
    ):
        assert word in r.output, word


def test_run_protonet_on_tiny_doublemnist_end_to_end(tiny_doublemnist, tmp_path):
    out = tmp_path / "run"
    args = [
        "run",
        "protonet",
        "doubled",
        "--iterations",
        "3",
        "--episodes",
        "5",
        "--way",
        "5",
        "--query",
        "5",
        "--train-way",
        "5",
        "--train-query",
        "5",
        "--hidden",
        "8",
        "--images-per-class",
        "25",
        "--data-root",
        str(tiny_doublemnist.data_root),
        "--out",
        str(out),
        "--quiet",
        "--device",
        "cpu",
        "--checkpoint-every",
        "2",
    ]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "result.json").read_text())
    assert (res["method"], res["dataset"], res["way"], res["shot"], res["query"]) == (
        "protonet",
        "doublemnist",
        5,
        1,
        5,
    )
    assert res["episodes"] == 5 and res["iterations"] == 3
    assert res["data"]["train"]["classes"] == 64 and res["data"]["test"]["classes"] == 20
    for name in ("metrics.jsonl", "curve.png", "checkpoint.pt"):
        assert (out / name).is_file()
    # an existing run is not overwritten; --resume continues it to more iterations
    assert_one_line_error(invoke(*args), "--resume")
    r = invoke(*[a if a != "3" else "5" for a in args], "--resume")
    assert r.exit_code == 0, r.output
    res = json.loads((out / "result.json").read_text())
    assert res["iterations"] == 5 and res["resumed_from"] == 3
    # table over the run directory
    r = invoke("table", str(tmp_path), "--out", str(tmp_path / "tab"))
    assert r.exit_code == 0, r.output
    assert "protonet" in r.output and (tmp_path / "tab" / "table.csv").is_file()


def test_table_renders_seeds_and_published(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    for seed in (0, 1):
        s = resolve_settings(
            "maml",
            "doublemnist",
            dict(
                way=5, shot=1, query=1, meta_batch=1, hidden=4, iterations=1, episodes=4, seed=seed
            ),
        )
        run_setting(s, tmp_path / f"maml/seed{seed}", loader=load, quiet=True)
    s = resolve_settings("mlp", "mnist1d", dict(iterations=2))
    run_setting(s, tmp_path / "mlp", loader=load, quiet=True)
    r = invoke("table", str(tmp_path))
    assert r.exit_code == 0, r.output
    md = [ln for ln in r.output.splitlines() if ln.startswith("| maml")]
    assert len(md) == 1 and "97.046" in md[0] and "| 2 |" in md[0] and "0 1" in md[0]
    assert any(ln.startswith("| mlp") and "68" in ln for ln in r.output.splitlines())
    assert "method,dataset,way,shot" in r.output  # the CSV follows the markdown


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "fsbench", "--help"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and "reproduce" in r.stdout


def test_plot_draws_several_runs_labelled_by_their_difference(tmp_path):
    load = synthetic_loader(size=16, classes=10, per_class=6)
    base = dict(way=3, shot=1, query=2, train_way=4, hidden=4, iterations=4, episodes=2)
    for distance in ("sqeuclidean", "euclidean"):
        s = resolve_settings("protonet", "omniglot", {**base, "distance": distance})
        s.update(eval_every=2, eval_episodes=2)
        run_setting(s, tmp_path / distance, loader=load, quiet=True)
    png = tmp_path / "curves.png"
    r = invoke(
        "plot", str(tmp_path / "sqeuclidean"), str(tmp_path / "euclidean"), "--out", str(png)
    )
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from fsbench.settings import semantic
    from fsbench.tables import differing_settings

    settings = [
        json.loads((tmp_path / d / "result.json").read_text())["settings"]
        for d in ("sqeuclidean", "euclidean")
    ]
    assert differing_settings([semantic(s) for s in settings]) == [
        "distance=sqeuclidean",
        "distance=euclidean",
    ]
    assert_one_line_error(
        invoke("plot", str(tmp_path / "euclidean"), "--out", str(png)), "--overwrite"
    )
    assert_one_line_error(
        invoke("plot", str(tmp_path), "--out", str(tmp_path / "x.png")), "metrics.jsonl"
    )
