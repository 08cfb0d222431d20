"""Pascal VOC 2007/2012 (``Annotations/*.xml``, ``JPEGImages/*.jpg``, ``ImageSets/Main/*.txt``).

The few-shot class splits are those of Kang et al. (ICCV 2019, bingykang/Fewshot_Detection),
used by every few-shot detector since; the lists below are copied as facts from
ucbdrive/few-shot-object-detection (TFA), ``fsdet/data/builtin_meta.py``
(PASCAL_VOC_BASE_CATEGORIES / PASCAL_VOC_NOVEL_CATEGORIES): three splits of 15 base and 5 novel
classes. VOC corners are 1-based inclusive; as TFA, x_min and y_min lose 1 on reading.
"""

from __future__ import annotations

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
