"""New images go through the run's own input transform (data/transform.py), one family at a time.

Each family's loader records its transform; images handed to ``fsbench predict`` in the form the
dataset ships them (Omniglot: 105x105 PNGs, black strokes on white) must become exactly the
loader's own tensors, and a trained run must classify them exactly as it classifies the loader's
copies in a test episode.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.data import load_split
from fsbench.data.store import ArrayStore
from fsbench.data.transform import InputTransform, photo_transform
from fsbench.engine.evaluate import check_transform, trained_settings
from fsbench.engine.predict import build_trained, load_images, run_transform
from fsbench.errors import FsbenchError
from PIL import Image

SMALL_ZIPS = ("images_background_small1.zip", "images_background_small2.zip")


def invoke(*args: str):
    return CliRunner().invoke(main, [*args])


def transform_of(store: ArrayStore) -> InputTransform:
    return InputTransform.from_dict(store.meta["transform"])


# ---------------------------------------------------------------------------- the record


def test_record_round_trips_and_bad_records_are_one_line():
    t = InputTransform(1, 28, fit="stretch", filter="lanczos", invert=True, resize=14)
    assert InputTransform.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    assert t.to_dict()["scale"] == "x/255" and t.output_size == 14
    with pytest.raises(FsbenchError, match="unknown field 'gamma'"):
        InputTransform.from_dict({**t.to_dict(), "gamma": 2})
    with pytest.raises(FsbenchError, match="filter must be bilinear or lanczos"):
        InputTransform.from_dict({**t.to_dict(), "filter": "cubic"})
    with pytest.raises(FsbenchError, match="channels must be 1 or 3"):
        InputTransform(2, 28)


def test_steps_crop_stretch_invert_and_scale():
    wide = np.zeros((10, 30), dtype=np.uint8)
    wide[:, 10:20] = 200  # a bright centre third
    im = Image.fromarray(wide)
    crop = InputTransform(1, 10).apply(im)
    assert crop.shape == (1, 10, 10) and crop.dtype == torch.float32
    assert torch.allclose(crop, torch.full((1, 10, 10), 200 / 255))  # the centre square only
    stretched = InputTransform(1, 10, fit="stretch", invert=True).apply(im)
    assert stretched[0, 5, 0] == 1.0 and stretched[0, 5, 5] == pytest.approx(55 / 255)
    rgb = InputTransform(3, 4).apply(im)
    assert rgb.shape == (3, 4, 4) and torch.equal(rgb[0], rgb[2])


# ---------------------------------------------------------------------------- Omniglot


def omniglot_drawings(zips: list[Path], store: ArrayStore, classes: int, per_class: int, out: Path):
    """The shipped PNG bytes of the first drawings of the store's first rot000 classes, written
    to ``out/<class>/<k>.png`` as they are; returns their files and store indices."""
    members: dict[tuple[str, str], bytes] = {}
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if len(parts) == 4 and parts[3].endswith(".png"):
                    members.setdefault((f"{parts[1]}/{parts[2]}", parts[3]), zf.read(info))
    chosen = [c for c, n in enumerate(store.class_names) if n.endswith("/rot000")][:classes]
    files, index = [], []
    for c in chosen:
        character = store.class_names[c].rsplit("/", 1)[0]
        drawings = sorted(d for ch, d in members if ch == character)
        for k in range(per_class):
            path = out / f"c{c:04d}" / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(members[(character, drawings[k])])
            files.append(path)
            index.append(int(store.class_index[c, k]))
    return files, torch.tensor(index)


@pytest.fixture(params=["omniglot_fixture_dir", "small_omniglot_dir"])
def omniglot_dir(request) -> Path:
    """The synthetic zips, then the real small background sets (skipped when absent)."""
    return request.getfixturevalue(request.param)


def zips_in(folder: Path) -> list[Path]:
    full = [folder / "images_background.zip", folder / "images_evaluation.zip"]
    return full if all(z.is_file() for z in full) else [folder / z for z in SMALL_ZIPS]


def test_omniglot_drawings_as_shipped_become_the_loaders_tensors(omniglot_dir, tmp_path):
    store = load_split("omniglot", "test", omniglot_dir=omniglot_dir, progress=False)
    transform = transform_of(store)
    assert (transform.size, transform.fit, transform.filter, transform.invert) == (
        28,
        "stretch",
        "lanczos",
        True,
    )
    files, index = omniglot_drawings(zips_in(omniglot_dir), store, 4, 3, tmp_path)
    with Image.open(files[0]) as im:
        assert im.size == (105, 105) and np.asarray(im.convert("L")).mean() > 128  # white paper
    assert torch.equal(load_images(files, transform), store.to_float(store.data[index]))


def test_predict_classifies_shipped_omniglot_drawings_as_the_test_episode_does(
    omniglot_fixture_dir, tmp_path
):
    run_dir = tmp_path / "run"
    r = invoke(
        "run", "protonet", "omniglot", "--dataset-dir", str(omniglot_fixture_dir),
        "--iterations", "3", "--hidden", "4", "--way", "5", "--train-way", "5", "--shot", "1",
        "--query", "2", "--train-query", "2", "--episodes", "2", "--eval-every", "0",
        "--select", "last", "--out", str(run_dir), "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    result = json.loads((run_dir / "result.json").read_text())
    assert result["data"]["train"]["transform"]["invert"] is True
    store = load_split("omniglot", "test", omniglot_dir=omniglot_fixture_dir, progress=False)
    files, index = omniglot_drawings(zips_in(omniglot_fixture_dir), store, 5, 3, tmp_path / "img")
    support, query = tmp_path / "support", tmp_path / "query"
    for n, f in enumerate(files):  # drawing 0 of each class in the support, 1 and 2 as queries
        target = (support if n % 3 == 0 else query) / f.parent.name / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.read_bytes())
    out = tmp_path / "pred.csv"
    r = invoke("predict", str(run_dir), "--support", str(support), "--query", str(query),
               "--out", str(out), "--device", "cpu", "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the same drawings as the loader made them, scored by the same model
    settings, _ = trained_settings(run_dir)
    method = build_trained(run_dir, settings, run_transform(run_dir), torch.device("cpu"))
    method.model.eval()
    xs = store.to_float(store.data[index[0::3]])
    xq = store.to_float(store.data[torch.cat([index[1::3], index[2::3]])])
    labels = torch.arange(5)
    with torch.no_grad():
        scores = method.task_scores(xs, labels, xq, 5)
    names = sorted({f.parent.name for f in files})
    by_file = {row["image"]: row["predicted_class"] for row in rows}
    queries = [f for n, f in enumerate(files) if n % 3 == 1] + [
        f for n, f in enumerate(files) if n % 3 == 2
    ]
    expected = [names[g] for g in scores.argmax(1).tolist()]
    got = [by_file[str(query / f.parent.name / f.name)] for f in queries]
    assert got == expected


# ---------------------------------------------------------------------------- mdmnist


def test_mdmnist_pngs_become_the_loaders_tensors_with_and_without_resize(
    tiny_doublemnist, tmp_path
):
    kw = dict(data_root=tiny_doublemnist.data_root, num_image_per_class=25)
    store = load_split("doublemnist", "test", **kw)
    small = load_split("doublemnist", "test", resize=16, **kw)
    assert transform_of(small) == transform_of(store).with_resize(16)
    index = store.class_index[:3, :2].reshape(-1)
    files = []
    for i in index.tolist():
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(store.data[i, 0].numpy()).save(files[-1])
    assert torch.equal(load_images(files, transform_of(store)), store.to_float(store.data[index]))
    assert torch.equal(load_images(files, transform_of(small)), small.to_float(small.data[index]))


# ---------------------------------------------------------------------------- folder


def test_folder_images_of_any_size_become_the_loaders_tensors(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    files = []
    for split, names in (("train", "abcde"), ("test", "fghij")):
        for c, name in enumerate(names):
            for k in range(2):
                h, w = 20 + 7 * c, 33 - 5 * k  # non-square, several sizes
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                path = folder / split / name / f"{k}.{'jpg' if k else 'png'}"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
                files.append(path)
    store = load_split("folder", "test", path=folder, data_root=tmp_path / "root", image_size=12)
    assert transform_of(store) == photo_transform(12, 3)
    test_files = [f for f in files if f.parts[-3] == "test"]
    assert torch.equal(load_images(test_files, transform_of(store)), store.to_float(store.data))


# ---------------------------------------------------------------------------- eval, old runs


def test_eval_refuses_images_made_another_way():
    store = ArrayStore(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]))
    same = InputTransform(1, 4)
    store.meta["transform"] = same.to_dict()
    check_transform(Path("run"), {"input_transform": same.to_dict()}, store)
    check_transform(Path("run"), {}, store)  # a run from before the record: not checked
    other = InputTransform(1, 4, invert=True).to_dict()
    with pytest.raises(FsbenchError, match=r"inverted \(255 - v\).*now loads them as"):
        check_transform(Path("run"), {"input_transform": other}, store)


def test_a_result_without_the_record_falls_back_with_one_warning(tmp_path):
    from test_data_folder import split_folder

    folder = split_folder(tmp_path, per_class=4)
    run_dir = tmp_path / "run"
    r = invoke(
        "run", "protonet", "folder", "--dataset-dir", str(folder), "--iterations", "2",
        "--hidden", "4", "--episodes", "2", "--query", "2", "--train-query", "2",
        "--eval-every", "0", "--select", "last", "--data-root", str(tmp_path / "root"),
        "--out", str(run_dir), "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    recorded = run_transform(run_dir)
    assert recorded == photo_transform(16, 1)
    path = run_dir / "result.json"
    doc = json.loads(path.read_text())
    del doc["data"]["train"]["transform"]
    path.write_text(json.dumps(doc))
    out = tmp_path / "p.csv"
    r = invoke("predict", str(run_dir), "--support", str(folder / "test"), "--query",
               str(folder / "test"), "--out", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    warnings = [ln for ln in r.output.splitlines() if ln.startswith("Warning:")]
    assert len(warnings) == 1 and "records no input transform" in warnings[0]
    assert run_transform(run_dir) == recorded  # today's rule is the folder dataset's
