"""The folder dataset: your own images in DIR/<split>/<class>/ or DIR/<class>/, for every method.

Fixture images are flat grey levels or colours that encode their class and number, so a loaded
image says which file it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.data import images, load_split
from fsbench.errors import FsbenchError
from PIL import Image


def write_image(path: Path, level: int, size=(16, 16), mode: str = "L") -> None:
    """A flat image of grey ``level`` (or a colour with that red level)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = level if mode == "L" else (level, 255 - level, 40)
    Image.new(mode, size, colour).save(path)


def write_classes(root: Path, names: list[str], per_class: int, **kw) -> None:
    """``root/<name>/<k>.png`` for each class, grey level 10 * class + k."""
    for c, name in enumerate(names):
        for k in range(per_class):
            write_image(root / name / f"{k:02d}.png", 10 * c + k, **kw)


def split_folder(tmp_path: Path, per_class: int = 6, val: bool = True) -> Path:
    folder = tmp_path / "mydata"
    write_classes(folder / "train", ["a", "b", "c", "d", "e", "f"], per_class)
    if val:
        write_classes(folder / "val", ["g", "h", "i", "o", "p"], per_class)
    write_classes(folder / "test", ["j", "k", "l", "m", "n"], per_class)
    return folder


def load(folder: Path, split: str, tmp_path: Path, **kw):
    return load_split("folder", split, path=folder, data_root=tmp_path / "root", **kw)


def test_split_layout_grayscale_own_size_and_trainval(tmp_path):
    folder = split_folder(tmp_path)
    train = load(folder, "train", tmp_path)
    assert train.example_shape == (1, 16, 16)  # all gray and 12x12: kept as they are
    assert train.class_names == ["a", "b", "c", "d", "e", "f"] and len(train) == 36
    assert int(train.data[7, 0, 0, 0]) == 11 and int(train.labels[7]) == 1  # b/01.png
    test = load(folder, "test", tmp_path)
    assert test.class_names == ["j", "k", "l", "m", "n"] and test.meta["comparable"] is False
    trainval = load(folder, "trainval", tmp_path)
    assert trainval.class_names[-5:] == ["g", "h", "i", "o", "p"] and trainval.num_classes == 11
    assert load(folder, "train", tmp_path, image_size=8).example_shape == (1, 8, 8)
    r = run(folder, tmp_path, "protonet", "--image-size", "8")
    assert_one_line_error(r, "too small", "--image-size")


def test_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    folder = split_folder(tmp_path)
    first = load(folder, "test", tmp_path)

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "decode_image", no_decoding)
    for split in ("train", "val", "test"):  # all splits were decoded together
        load(folder, split, tmp_path)
    assert torch.equal(load(folder, "test", tmp_path).data, first.data)
    write_image(folder / "test" / "j" / "00.png", 99)  # a changed file: decoded again
    with pytest.raises(AssertionError, match="decoded again"):
        load(folder, "test", tmp_path)


def test_flat_layout_split_by_ratios_and_seed(tmp_path):
    folder = tmp_path / "flat"
    names = [f"c{i:02d}" for i in range(10)]
    write_classes(folder, names, 3, mode="RGB", size=(20, 14))  # colour, not square
    stores = {
        s: load(folder, s, tmp_path, split_ratios="0.6,0.2,0.2") for s in ("train", "val", "test")
    }
    assert [stores[s].num_classes for s in ("train", "val", "test")] == [6, 2, 2]
    every = [n for s in stores.values() for n in s.class_names]
    assert sorted(every) == names  # disjoint classes, all of them
    assert stores["train"].example_shape == (3, 84, 84)  # colour; sizes differ: 84
    again = load(folder, "train", tmp_path, split_ratios="0.6,0.2,0.2")
    assert again.class_names == stores["train"].class_names  # same seed, same split
    other = load(folder, "train", tmp_path, split_ratios="0.6,0.2,0.2", split_seed=5)
    assert other.class_names != stores["train"].class_names
    with pytest.raises(FsbenchError, match="--split-ratios must be three fractions"):
        load(folder, "train", tmp_path, split_ratios="0.5,0.5")


def test_one_colour_image_makes_the_dataset_rgb(tmp_path):
    folder = split_folder(tmp_path, val=False)
    write_image(folder / "train" / "a" / "00.png", 30, mode="RGB")
    train = load(folder, "train", tmp_path)
    assert train.example_shape == (3, 16, 16)
    assert train.data[1, :, 0, 0].tolist() == [1, 1, 1]  # gray a/01 replicated to RGB
    with pytest.raises(FsbenchError, match="no val split .*--eval-every 0"):
        load(folder, "val", tmp_path)
    assert load(folder, "trainval", tmp_path).num_classes == 6


def run(folder: Path, tmp_path: Path, method: str = "protonet", *extra: str):
    args = ["run", method, "folder", "--dataset-dir", str(folder), "--out", str(tmp_path / "o")]
    small = ["--iterations", "2", "--hidden", "4", "--episodes", "2", "--query", "2"]
    args += [*small, "--data-root", str(tmp_path / "root"), "--device", "cpu", "--quiet"]
    return CliRunner().invoke(main, [*args, *extra])


def test_corrupt_image_is_one_error_naming_it(tmp_path):
    folder = split_folder(tmp_path)
    (folder / "test" / "k" / "03.png").write_bytes(b"\x89PNG not really")
    assert_one_line_error(run(folder, tmp_path), "cannot decode image", "k/03.png")
    assert not (tmp_path / "o").exists()


def test_empty_class_is_one_error_naming_it(tmp_path):
    folder = split_folder(tmp_path)
    (folder / "train" / "empty").mkdir()
    assert_one_line_error(run(folder, tmp_path), "class folder", "train/empty", "holds no images")
    assert not (tmp_path / "o").exists()


def test_small_class_is_one_error_naming_it(tmp_path):
    folder = split_folder(tmp_path)
    for k in range(2, 6):
        (folder / "test" / "m" / f"{k:02d}.png").unlink()
    r = run(folder, tmp_path, "protonet", "--train-query", "2")
    assert_one_line_error(r, "--shot + --query = 3", "'m'", "2 examples")
    assert not (tmp_path / "o").exists()


def test_non_image_files_are_skipped_with_one_warning(tmp_path):
    folder = split_folder(tmp_path, val=False)
    (folder / "train" / "a" / ".DS_Store").write_bytes(b"\0\0")
    (folder / "test" / "j" / "Thumbs.db").write_bytes(b"\0\0")
    (folder / "README.txt").write_text("my data")
    r = run(folder, tmp_path, "protonet", "--train-query", "2")
    assert r.exit_code == 0, r.output
    warnings = [ln for ln in r.output.splitlines() if ln.startswith("Warning:")]
    assert len(warnings) == 1 and "skipped 3" in warnings[0], r.output
    res = json.loads((tmp_path / "o" / "result.json").read_text())
    assert res["settings"]["eval_every"] == 0 and res["selection"]["select"] == "last"
    assert res["published_percent"] is None and res["not_comparable"]


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("protonet", ("--train-query", "2")),
        ("maml", ("--train-query", "2", "--meta-batch", "2")),
        ("magnet", ("--modes", "2", "--clusters-per-batch", "3", "--images-per-cluster", "2")),
        ("repmet", ("--modes", "2", "--embedding-dim", "8", "--clusters-per-batch", "3")),
    ],
)
def test_every_episodic_method_runs_on_a_folder(tmp_path, method, extra):
    folder = split_folder(tmp_path, per_class=8)  # the modes presets validate 5-shot
    r = run(folder, tmp_path, method, "--shot", "2", *extra, "--eval-every", "1")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "o" / "result.json").read_text())
    assert res["dataset"] == "folder" and res["data"]["train"]["example_shape"] == [1, 16, 16]


def test_pretrain_and_mtl_run_on_a_folder(tmp_path):
    folder = split_folder(tmp_path)
    common = ["--dataset-dir", str(folder), "--data-root", str(tmp_path / "root"), "--quiet"]
    small = ["--widths", "2,2,2,2", "--episodes", "2", "--query", "2", "--device", "cpu"]
    pre = tmp_path / "pre"
    r = CliRunner().invoke(
        main,
        ["pretrain", "imagefolder", *common, *small, "--epochs", "1", "--batch-size", "12"]
        + ["--eval-episodes", "2", "--test-inner-steps", "2", "--out", str(pre)],
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        main,
        ["run", "mtl", "folder", *common, *small, "--pretrained", str(pre), "--iterations", "2"]
        + ["--inner-steps", "2", "--test-inner-steps", "2", "--train-query", "2"]
        + ["--eval-every", "0", "--select", "last", "--out", str(tmp_path / "mtl")],
    )
    assert r.exit_code == 0, r.output


def test_folder_options_are_checked(tmp_path):
    folder = split_folder(tmp_path)
    assert_one_line_error(
        run(folder, tmp_path, "protonet", "--split-ratios", "0.5,0.3,0.2"),
        "--split-ratios",
        "already split",
    )
    r = CliRunner().invoke(main, ["run", "protonet", "folder", "--quiet"])
    assert_one_line_error(r, "--dataset-dir")
    r = CliRunner().invoke(main, ["run", "protonet", "doubled", "--split-seed", "1", "--quiet"])
    assert_one_line_error(r, "--split-seed", "folder")
    (tmp_path / "only-test" / "test" / "a").mkdir(parents=True)
    assert_one_line_error(run(tmp_path / "only-test", tmp_path), "no train/")
    assert not (tmp_path / "o").exists()


def test_fit_square_of_grayscale_keeps_one_channel():
    pixels = images.decode_image(_png(np.full((6, 10), 7, dtype=np.uint8)), "x", 4, "L")
    assert pixels.shape == (1, 4, 4) and int(pixels.max()) == 7


def _png(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()
