"""Few-shot detection on Pascal VOC: Kang et al.'s base/novel protocol read from a VOCdevkit in
its exact layout (VOC2007 trainval + test, VOC2012 trainval), trained and tested end to end, and
bad input as one `Error:` line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.detection import voc
from PIL import Image

pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")

W, H = 64, 48
COLOURS = {"person": (200, 30, 30), "car": (30, 200, 30), "dog": (30, 30, 200),
           "bird": (220, 220, 40), "bus": (40, 220, 220)}  # fmt: skip

# image id -> objects (class, xmin, ymin, xmax, ymax), VOC's 1-based corners
VOC2007_TRAINVAL = {
    "000005": [("person", 5, 5, 30, 40)],
    "000007": [("car", 20, 10, 60, 30), ("bird", 2, 2, 12, 12)],  # a novel object: background
    "000009": [("dog", 10, 8, 50, 44)],
    "000012": [("bird", 10, 10, 40, 40)],  # only a novel object: not a training image
}
VOC2007_TEST = {
    "000001": [("bird", 5, 5, 30, 30), ("person", 35, 5, 60, 40)],  # base object: not annotated
    "000002": [("bird", 20, 10, 50, 40)],
    "000003": [("bus", 5, 10, 45, 40)],
    "000004": [("bus", 15, 5, 60, 35)],
    "000006": [("dog", 5, 5, 40, 40)],  # no novel object: not a test image
}
VOC2012_TRAINVAL = {
    "2008_000002": [("person", 8, 4, 40, 46), ("dog", 40, 20, 62, 46)],
}


def _year(root: Path, sets: dict[str, dict[str, list]]) -> None:
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_set, images in sets.items():
        (root / "ImageSets" / "Main" / f"{image_set}.txt").write_text(
            "".join(f"{i}\n" for i in images)
        )
        for image_id, objects in images.items():
            image = Image.new("RGB", (W, H), (90, 90, 90))
            xml = [f"<annotation><folder>{root.name}</folder><filename>{image_id}.jpg</filename>",
                   f"<size><width>{W}</width><height>{H}</height><depth>3</depth></size>"]  # fmt: skip
            for name, x1, y1, x2, y2 in objects:
                image.paste(COLOURS[name], (x1 - 1, y1 - 1, x2, y2))
                xml.append(
                    f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin>"
                    f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
                )
            image.save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
            (root / "Annotations" / f"{image_id}.xml").write_text("".join(xml) + "</annotation>")


@pytest.fixture(scope="module")
def devkit(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc") / "VOCdevkit"
    _year(root / "VOC2007", {"trainval": VOC2007_TRAINVAL, "test": VOC2007_TEST})
    _year(root / "VOC2012", {"trainval": VOC2012_TRAINVAL})
    return root


def _named(data, rec) -> list[str]:
    return [data.classes[c] for c in rec.labels]


def test_training_split_is_both_years_base_classes_only(devkit):
    train = voc.few_shot_split(devkit, "train", 1)
    assert train.classes == list(voc.base_classes(1)) and len(train.classes) == 15
    files = [r.file for r in train.records]
    assert files == ["VOC2007/JPEGImages/000005.jpg", "VOC2007/JPEGImages/000007.jpg",
                     "VOC2007/JPEGImages/000009.jpg", "VOC2012/JPEGImages/2008_000002.jpg"]  # fmt: skip
    assert _named(train, train.records[1]) == ["car"]  # the bird is left unannotated
    assert train.records[1].boxes.tolist() == [[19, 9, 60, 30]]  # VOC's 1-based corners
    assert train.image(3).shape == (H, W, 3)  # read from VOC2012 through the devkit root


def test_test_split_is_voc2007_test_novel_classes_only(devkit):
    test = voc.few_shot_split(devkit, "test", 1)
    assert test.classes == list(voc.NOVEL_CLASSES[1])
    assert [r.file for r in test.records] == [
        f"VOC2007/JPEGImages/00000{i}.jpg" for i in (1, 2, 3, 4)
    ]
    assert _named(test, test.records[0]) == ["bird"]  # the person is not a novel class
    # another split makes other classes novel: bird and bus are base classes of split 2
    assert len(voc.few_shot_split(devkit, "test", 2)) == 0


def test_one_year_folder_works_as_the_devkit_does(devkit):
    train = voc.few_shot_split(devkit / "VOC2007", "train", 1)
    assert [r.file for r in train.records][0] == "VOC2007/JPEGImages/000005.jpg"
    assert train.image(0).shape == (H, W, 3)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


TINY = ["--voc-size", "32", "--iterations", "2", "--episodes", "2", "--way", "2", "--query", "1",
        "--batch-size", "2", "--threads", "1", "--checkpoint-every", "0", "--quiet"]  # fmt: skip


def test_run_and_eval_on_voc(devkit, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "repmet-det", "voc", "--dataset-dir", devkit, *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    assert "repmet-det on voc 2-way 1-shot: mAP@0.5" in result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["dataset"] == "voc" and saved["episodes"] == 2
    assert saved["data"]["train"]["classes"] == 15 and saved["data"]["test"]["classes"] == 5
    assert saved["data"]["train"]["images"] == 4 and saved["data"]["test"]["images"] == 4
    assert saved["settings"]["data_options"] == {"path": str(devkit.resolve())}
    assert saved["settings"]["voc_split"] == 1 and saved["settings"]["voc_size"] == 32
    assert any("VOC2007 test" in d for d in saved["protocol_notes"])
    assert 0.0 <= saved["map50"] <= 1.0
    assert saved["data"]["folders"]["path"]["path"] == str(devkit.resolve())  # for rerun
    again = invoke("rerun", out, "--out", tmp_path / "again", "--quiet")
    assert again.exit_code == 0, again.output
    assert "bit-equal to the recorded result" in again.output
    # eval finds the images where the run read them (the recorded folder)
    result = invoke("eval", out, "--episodes", 1, "--quiet")
    assert result.exit_code == 0, result.output
    again = json.loads((out / "eval-2w1s" / "result.json").read_text())
    assert again["dataset"] == "voc" and again["data"]["test"]["classes"] == 5


def test_predict_with_a_voc_run_keeps_colour(devkit, tmp_path):
    from fsbench.detection.predict import read_support

    out = tmp_path / "run"
    assert (
        invoke("run", "repmet-det", "voc", "--dataset-dir", devkit, *TINY, "--out", out).exit_code
        == 0
    )
    support, query = tmp_path / "support", tmp_path / "query"
    for name, image_id, (x1, y1, x2, y2) in (("bird", "000002", (20, 10, 50, 40)),
                                              ("bus", "000003", (5, 10, 45, 40))):  # fmt: skip
        (support / name).mkdir(parents=True)
        with Image.open(devkit / "VOC2007" / "JPEGImages" / f"{image_id}.jpg") as im:
            im.crop((x1 - 1, y1 - 1, x2, y2)).save(support / name / f"{image_id}.png")
    canvas = read_support(support, 32, channels=3).image(0)  # the bird, pasted mid-canvas
    assert canvas.shape == (32, 32, 3) and abs(int(canvas[16, 16, 2]) - COLOURS["bird"][2]) < 12
    query.mkdir()
    for image_id in ("000001", "000004"):
        Image.open(devkit / "VOC2007" / "JPEGImages" / f"{image_id}.jpg").save(
            query / f"{image_id}.jpg"
        )
    result = invoke("predict", out, "--support", support, "--query", query, "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert doc["classes"] == ["bird", "bus"] and len(doc["images"]) == 2
    assert all(0 <= v <= W for im in doc["images"] for b in im["boxes"] for v in b[::2])
    assert Image.open(tmp_path / "p" / "000001.png").mode == "RGB"


def test_finetune_baseline_runs_on_voc(devkit, tmp_path):
    result = invoke("run", "finetune-det", "voc", "--dataset-dir", devkit, *TINY,
                    "--finetune-steps", "2", "--out", tmp_path / "ft")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ft" / "result.json").read_text())["method"] == "finetune-det"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["voc"], ("voc needs --dataset-dir",)),
        (
            ["voc", "--dataset-dir", "DEVKIT", "--scene-size", "64"],
            ("--scene-size", "apply to voc"),
        ),
        (["mnist-detect", "--voc-split", "2"], ("--voc-split", "apply to mnist-detect")),
        (["mnist-detect", "--dataset-dir", "DEVKIT"], ("--dataset-dir", "it is generated")),
        (["voc", "--dataset-dir", "DEVKIT", "--voc-split", "4"], ("--voc-split", "<= 3")),
        (["voc", "--dataset-dir", "EMPTY"], ("neither a VOC year folder", "VOCdevkit")),
        (["voc", "--dataset-dir", "DEVKIT/VOC2012"], ("no ImageSets/Main/test.txt", "VOCtest")),
    ],
    ids=["no-dir", "scene-flag", "voc-flag", "generated", "split-range", "not-voc", "no-test"],
)
def test_bad_voc_input_is_one_line(devkit, tmp_path, args, needles):
    (tmp_path / "empty").mkdir()
    paths = {"DEVKIT": str(devkit), "EMPTY": str(tmp_path / "empty")}
    args = [a.replace("DEVKIT", paths["DEVKIT"]).replace("EMPTY", paths["EMPTY"]) for a in args]
    out = tmp_path / "out"
    result = invoke("run", "repmet-det", *args, "--iterations", 2, "--quiet", "--out", out)
    assert_one_line_error(result, *needles)
    assert not out.exists()  # refused before anything is written
