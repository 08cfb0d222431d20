"""Pascal VOC 2007/2012 (``Annotations/*.xml``, ``JPEGImages/*.jpg``, ``ImageSets/Main/*.txt``).

The few-shot class splits are those of Kang et al. (ICCV 2019, bingykang/Fewshot_Detection),
used by every few-shot detector since; the lists below are copied as facts from
ucbdrive/few-shot-object-detection (TFA), ``fsdet/data/builtin_meta.py``
(PASCAL_VOC_BASE_CATEGORIES / PASCAL_VOC_NOVEL_CATEGORIES): three splits of 15 base and 5 novel
classes. VOC corners are 1-based inclusive; as TFA, x_min and y_min lose 1 on reading.
``few_shot_split`` gives the train (base classes, VOC07+12 trainval) and test (novel classes,
VOC2007 test) splits that ``fsbench run repmet-det voc`` trains and tests on.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from fsbench.detection.dataset import DetectionSet, ImageRecord, check_boxes, check_image_file
from fsbench.errors import FsbenchError

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

NOVEL_CLASSES = {
    1: ("bird", "bus", "cow", "motorbike", "sofa"),
    2: ("aeroplane", "bottle", "cow", "horse", "sofa"),
    3: ("boat", "cat", "motorbike", "sheep", "sofa"),
}


def base_classes(split: int) -> tuple[str, ...]:
    """The 15 base classes of few-shot split 1, 2 or 3 (VOC order, novel ones removed)."""
    if split not in NOVEL_CLASSES:
        raise FsbenchError(f"VOC few-shot split {split} does not exist; choose 1, 2 or 3")
    return tuple(c for c in VOC_CLASSES if c not in NOVEL_CLASSES[split])


def classes_of(subset: str) -> tuple[str, ...]:
    """The class list named ``all``, ``base1``..``base3`` or ``novel1``..``novel3``."""
    if subset == "all":
        return VOC_CLASSES
    for prefix, pick in (("base", base_classes), ("novel", lambda s: NOVEL_CLASSES[s])):
        if subset.startswith(prefix) and subset[len(prefix) :] in ("1", "2", "3"):
            return tuple(pick(int(subset[len(prefix) :])))
    raise FsbenchError(f"VOC classes '{subset}' unknown; choose all, base1-3 or novel1-3")


def _text(node: ET.Element, path: str, where: Path) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise FsbenchError(f"{where} lacks <{path}>; is it a VOC annotation?")
    return found.text.strip()


def read_voc(
    root: str | Path,
    image_set: str = "trainval",
    classes: str = "all",
    keep_difficult: bool = False,
) -> DetectionSet:
    """The images listed in ``ImageSets/Main/{image_set}.txt`` with their boxes of ``classes``
    (objects of other classes are dropped; ``difficult`` ones unless ``keep_difficult``)."""
    root = Path(root)
    wanted = classes_of(classes)
    index = {c: i for i, c in enumerate(wanted)}
    listing = root / "ImageSets" / "Main" / f"{image_set}.txt"
    if not listing.is_file():
        raise FsbenchError(f"{listing} does not exist; is {root} a VOC year folder (VOC2007)?")
    records = []
    for image_id in listing.read_text().split():
        xml_path = root / "Annotations" / f"{image_id}.xml"
        try:
            doc = ET.parse(xml_path).getroot()
        except FileNotFoundError:
            raise FsbenchError(f"{listing} names {image_id}, but {xml_path} is missing") from None
        except ET.ParseError as e:
            raise FsbenchError(f"{xml_path} is not valid XML: {e}") from None
        file = f"JPEGImages/{_text(doc, 'filename', xml_path)}"
        check_image_file(root, file, str(xml_path))
        width = int(_text(doc, "size/width", xml_path))
        height = int(_text(doc, "size/height", xml_path))
        boxes, labels = [], []
        for obj in doc.findall("object"):
            name = _text(obj, "name", xml_path)
            if name not in index:
                continue
            difficult = obj.find("difficult")
            if not keep_difficult and difficult is not None and difficult.text == "1":
                continue
            x1, y1, x2, y2 = (
                float(_text(obj, f"bndbox/{k}", xml_path)) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            boxes.append([x1 - 1, y1 - 1, x2, y2])
            labels.append(index[name])
        box_array = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        check_boxes(box_array, width, height, str(xml_path))
        records.append(
            ImageRecord(file, width, height, box_array, np.asarray(labels, dtype=np.int64))
        )
    return DetectionSet(list(wanted), records, root)


def year_folders(folder: str | Path) -> list[Path]:
    """The VOC year folders of ``folder``: itself when it is one (it has ``ImageSets``), else its
    ``VOC2007``/``VOC2012`` subfolders (a ``VOCdevkit``); one line when there are none."""
    folder = Path(folder).expanduser()
    if (folder / "ImageSets").is_dir():
        return [folder]
    years = [folder / y for y in ("VOC2007", "VOC2012") if (folder / y / "ImageSets").is_dir()]
    if not years:
        raise FsbenchError(
            f"{folder} is neither a VOC year folder (with ImageSets/) nor a VOCdevkit holding "
            "VOC2007/ or VOC2012/; pass the folder the VOC archives unpack to"
        )
    return years


def merged(parts: list[DetectionSet], root: Path) -> DetectionSet:
    """Several sets of the same classes as one, their files made relative to ``root``."""
    records = []
    for part in parts:
        prefix = Path(part.root or ".").relative_to(root)
        for rec in part.records:
            records.append(dataclasses.replace(rec, file=str(prefix / rec.file)))
    return DetectionSet(list(parts[0].classes), records, root)


def check_layout(folder: str | Path) -> tuple[list[Path], Path]:
    """The year folders holding ``trainval`` lists and VOC2007's folder holding ``test``, found
    without reading an annotation; one line naming what is missing."""
    years = year_folders(folder)
    trainval = [y for y in years if (y / "ImageSets" / "Main" / "trainval.txt").is_file()]
    if not trainval:
        raise FsbenchError(f"no ImageSets/Main/trainval.txt under {Path(folder)}")
    test = [y for y in years if (y / "ImageSets" / "Main" / "test.txt").is_file()]
    if not test:
        raise FsbenchError(
            f"no ImageSets/Main/test.txt under {Path(folder)}: the few-shot test images are "
            "VOC2007's test set (VOCtest_06-Nov-2007.tar); unpack it beside its trainval"
        )
    return trainval, test[0]


def few_shot_split(folder: str | Path, split: str, class_split: int) -> DetectionSet:
    """The few-shot protocol of Kang et al. and TFA on ``folder`` (a VOCdevkit or one year):
    ``train`` is every year's ``trainval`` with the boxes of the 15 base classes of
    ``class_split`` only (novel objects stay unannotated, i.e. background, as in TFA's base
    training), ``test`` is VOC2007's ``test`` with the 5 novel classes' boxes; images left with no
    box are dropped. ``difficult`` objects are left out, as the VOC evaluation ignores them."""
    if split not in ("train", "test"):
        raise FsbenchError(f"VOC has no few-shot '{split}' split; choose train or test")
    trainval, test = check_layout(folder)
    if split == "train":
        parts = [read_voc(y, "trainval", f"base{class_split}") for y in trainval]
    else:
        parts = [read_voc(test, "test", f"novel{class_split}")]
    data = merged(parts, test.parent)  # the devkit: file names start with the year folder
    data.records = [r for r in data.records if len(r.boxes)]
    return data
