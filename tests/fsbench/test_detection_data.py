"""Detection data: generated mnist-detect scenes, and the COCO and VOC readers on tiny fixtures
written in their exact on-disk layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fsbench.detection import voc
from fsbench.detection.coco import read_coco, write_coco
from fsbench.detection.scenes import SceneSpec, generate_split, load_scenes, split_class_names
from fsbench.errors import FsbenchError
from PIL import Image

SPEC = SceneSpec(size=64, train_scenes=6, val_scenes=2, test_scenes=4, clutter=2, seed=3)


def test_class_splits_are_doublemnists_and_disjoint():
    train, val, test = (set(split_class_names(s)) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (64, 16, 20)
    assert not (train & val or train & test or val & test)


def test_scene_objects_are_where_the_annotation_says():
    data = generate_split(SPEC, "train")
    assert data.pixels.shape == (6, 64, 64)
    covered = np.zeros_like(data.pixels, dtype=bool)
    for i, rec in enumerate(data.records):
        assert 1 <= len(rec.boxes) <= 4 and len(rec.labels) == len(rec.boxes)
        for box in rec.boxes.astype(int):
            x1, y1, x2, y2 = box
            patch = data.pixels[i, y1:y2, x1:x2]
            # the box is the object's ink crop: every edge row/column holds ink
            assert patch[0].any() and patch[-1].any() and patch[:, 0].any() and patch[:, -1].any()
            assert (x2 - x1) > (y2 - y1)  # two digits side by side
            assert not covered[i, y1:y2, x1:x2].any()  # nothing else was pasted there
            covered[i, y1:y2, x1:x2] = True
    # without clutter, every pixel outside the boxes is zero
    plain = generate_split(SceneSpec(**{**SPEC.__dict__, "clutter": 0}), "train")
    for i, rec in enumerate(plain.records):
        mask = np.zeros((64, 64), dtype=bool)
        for x1, y1, x2, y2 in rec.boxes.astype(int):
            mask[y1:y2, x1:x2] = True
        assert not plain.pixels[i][~mask].any()


def test_pasted_object_is_its_class_digits():
    """At height 28 the object is its two MNIST digits unscaled: replay the split's draws and
    compare the box's pixels with the ink crop of the digits drawn."""
    from fsbench.detection.scenes import _ink_crop
    from mdmnist.idx import load_mnist
    from mdmnist.splits import digit_index_lists

    spec = SceneSpec(size=64, min_height=28, max_height=28, max_objects=1, clutter=0, seed=1)
    data = generate_split(spec, "test")
    pool = load_mnist()
    sources = digit_index_lists(pool, "test", disjoint_sources=False)
    rng = np.random.default_rng([1, 2])
    assert int(rng.integers(1, 2)) == 1
    label = int(rng.integers(20))
    digits = [pool.images[rng.choice(sources[int(d)])] for d in data.classes[label]]
    assert int(rng.integers(28, 29)) == 28
    x1, y1, x2, y2 = data.records[0].boxes[0].astype(int)
    assert int(data.records[0].labels[0]) == label
    assert np.array_equal(data.pixels[0, y1:y2, x1:x2], _ink_crop(np.hstack(digits)))


def test_same_seed_same_scenes_other_seed_other_scenes():
    a, b = generate_split(SPEC, "val"), generate_split(SPEC, "val")
    assert np.array_equal(a.pixels, b.pixels)
    c = generate_split(SceneSpec(**{**SPEC.__dict__, "seed": 4}), "val")
    assert not np.array_equal(a.pixels, c.pixels)


def test_cached_scenes_are_coco_pngs_and_a_preview(tmp_path):
    data = load_scenes(SPEC, "test", tmp_path)
    folder = next((tmp_path / "mnist-detect").iterdir())
    assert (folder / "preview.png").is_file()
    doc = json.loads((folder / "test" / "annotations.json").read_text())
    assert len(doc["images"]) == 4 and len(doc["categories"]) == 20
    png = np.asarray(Image.open(folder / "test" / data.records[0].file))
    assert np.array_equal(png, data.pixels[0])
    again = load_scenes(SPEC, "test", tmp_path)  # from the cache
    assert np.array_equal(again.pixels, data.pixels)
    assert all(
        np.array_equal(r.boxes, s.boxes) for r, s in zip(again.records, data.records, strict=True)
    )


def _coco_fixture(tmp_path: Path, bbox=(2, 3, 10, 5), file="a.png") -> Path:
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8)).save(tmp_path / "a.png")
    doc = {
        "images": [{"id": 7, "file_name": file, "width": 30, "height": 20}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": list(bbox), "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 4, 4], "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 2, "bbox": [0, 0, 30, 20], "iscrowd": 1},
        ],
        "categories": [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_reader_and_writer_round_trip(tmp_path):
    data = read_coco(_coco_fixture(tmp_path))
    assert data.classes == ["dog", "cat"]  # ascending category id
    rec = data.records[0]
    assert rec.boxes.tolist() == [[2, 3, 12, 8], [0, 0, 4, 4]] and rec.labels.tolist() == [1, 0]
    assert data.image(0).shape == (20, 30)
    write_coco(data, tmp_path / "out.json")
    again = read_coco(tmp_path / "out.json", image_dir=tmp_path)
    assert again.classes == data.classes
    assert again.records[0].boxes.tolist() == rec.boxes.tolist()


def test_coco_missing_image_is_one_line(tmp_path):
    with pytest.raises(FsbenchError, match="names image .*missing.png, which does not exist"):
        read_coco(_coco_fixture(tmp_path, file="missing.png"))


def test_coco_box_outside_image_is_one_line(tmp_path):
    with pytest.raises(FsbenchError, match=r"outside its 30x20 image"):
        read_coco(_coco_fixture(tmp_path, bbox=(25, 3, 10, 5)))


VOC_XML = """<annotation>
  <folder>VOC2007</folder>
  <filename>{id}.jpg</filename>
  <size><width>40</width><height>30</height><depth>3</depth></size>
  <object><name>bird</name><pose>Left</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax><ymax>{ymax}</ymax></bndbox></object>
  <object><name>person</name><difficult>0</difficult>
    <bndbox><xmin>5</xmin><ymin>5</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>
  <object><name>cow</name><difficult>1</difficult>
    <bndbox><xmin>3</xmin><ymin>3</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>
</annotation>
"""


def _voc_fixture(tmp_path: Path, ymax: int = 15) -> Path:
    root = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    for image_id in ("000005", "000007"):
        (root / "Annotations" / f"{image_id}.xml").write_text(
            VOC_XML.format(id=image_id, ymax=ymax)
        )
        Image.new("RGB", (40, 30), (9, 9, 9)).save(root / "JPEGImages" / f"{image_id}.jpg")
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("000005\n000007\n")
    return root


def test_voc_few_shot_splits_are_kangs():
    for split in (1, 2, 3):
        base, novel = voc.base_classes(split), voc.NOVEL_CLASSES[split]
        assert (
            len(base) == 15 and len(novel) == 5 and set(base) | set(novel) == set(voc.VOC_CLASSES)
        )
    assert voc.NOVEL_CLASSES[1] == ("bird", "bus", "cow", "motorbike", "sofa")


def test_voc_reader(tmp_path):
    root = _voc_fixture(tmp_path)
    data = voc.read_voc(root, "trainval")
    assert len(data) == 2 and data.classes == list(voc.VOC_CLASSES)
    rec = data.records[0]
    assert rec.file == "JPEGImages/000005.jpg" and (rec.width, rec.height) == (40, 30)
    assert rec.boxes.tolist() == [[0, 1, 20, 15], [4, 4, 10, 12]]  # difficult cow dropped
    assert [data.classes[c] for c in rec.labels] == ["bird", "person"]
    assert data.image(0).shape == (30, 40, 3)
    novel = voc.read_voc(root, "trainval", classes="novel1", keep_difficult=True)
    assert [novel.classes[c] for c in novel.records[0].labels] == ["bird", "cow"]
    base = voc.read_voc(root, "trainval", classes="base1")
    assert [base.classes[c] for c in base.records[0].labels] == ["person"]


def test_voc_bad_input_is_one_line(tmp_path):
    root = _voc_fixture(tmp_path, ymax=31)
    with pytest.raises(FsbenchError, match="outside its 40x30 image"):
        voc.read_voc(root)
    (root / "JPEGImages" / "000005.jpg").unlink()
    with pytest.raises(FsbenchError, match="000005.jpg, which does not exist"):
        voc.read_voc(root)
    with pytest.raises(FsbenchError, match="choose all, base1-3 or novel1-3"):
        voc.read_voc(root, classes="base4")
