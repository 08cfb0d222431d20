"""COCO JSON (the ``instances_*.json`` layout): read into a DetectionSet, and write one.

Read: ``images`` (id, file_name, width, height), ``annotations`` (image_id, category_id,
``bbox`` = [x, y, w, h]; ``iscrowd`` ones are skipped) and ``categories`` (id, name); category ids
become class indices in ascending id order. Image files are looked up under ``image_dir``
(default: the JSON's folder).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fsbench.data.diskcache import atomic_path
from fsbench.detection.dataset import DetectionSet, ImageRecord, check_boxes, check_image_file
from fsbench.errors import FsbenchError


def _field(entry: dict, key: str, where: str):
    if key not in entry:
        raise FsbenchError(f"{where} lacks '{key}'; is it a COCO annotation file?")
    return entry[key]


def read_coco(path: str | Path, image_dir: str | Path | None = None) -> DetectionSet:
    """The images, boxes and classes of a COCO JSON file (checked: files exist, boxes inside)."""
    path = Path(path)
    root = Path(image_dir) if image_dir is not None else path.parent
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FsbenchError(f"annotation file {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise FsbenchError(f"cannot read annotation file {path}: {e}") from None
    if not isinstance(doc, dict):
        raise FsbenchError(f"{path} is not a COCO annotation file (no top-level object)")
    cats = sorted(_field(doc, "categories", str(path)), key=lambda c: int(c["id"]))
    cat_index = {int(c["id"]): i for i, c in enumerate(cats)}
    classes = [str(c["name"]) for c in cats]
    images = _field(doc, "images", str(path))
    by_id: dict[int, tuple[list, list]] = {int(im["id"]): ([], []) for im in images}
    for ann in _field(doc, "annotations", str(path)):
        if ann.get("iscrowd", 0):
            continue
        where = f"{path}: annotation {ann.get('id', '?')}"
        image_id = int(_field(ann, "image_id", where))
        if image_id not in by_id:
            raise FsbenchError(f"{where} names image id {image_id}, which is not in 'images'")
        cat = int(_field(ann, "category_id", where))
        if cat not in cat_index:
            raise FsbenchError(f"{where} names category {cat}, which is not in 'categories'")
        x, y, w, h = (float(v) for v in _field(ann, "bbox", where))
        by_id[image_id][0].append([x, y, x + w, y + h])
        by_id[image_id][1].append(cat_index[cat])
    records = []
    for im in images:
        where = f"{path}: image {im.get('id', '?')}"
        file = str(_field(im, "file_name", where))
        check_image_file(root, file, where)
        boxes = np.asarray(by_id[int(im["id"])][0], dtype=np.float32).reshape(-1, 4)
        width, height = int(_field(im, "width", where)), int(_field(im, "height", where))
        check_boxes(boxes, width, height, where)
        labels = np.asarray(by_id[int(im["id"])][1], dtype=np.int64)
        records.append(ImageRecord(file, width, height, boxes, labels))
    return DetectionSet(classes, records, root)


def coco_document(dataset: DetectionSet) -> dict:
    """The COCO JSON object of ``dataset`` (image ids 1..N, category ids 1..C, boxes [x, y, w, h])."""
    images: list[dict] = []
    annotations: list[dict] = []
    for i, rec in enumerate(dataset.records):
        images.append(
            {"id": i + 1, "file_name": rec.file, "width": rec.width, "height": rec.height}
        )
        for box, label in zip(rec.boxes.tolist(), rec.labels.tolist(), strict=True):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": c + 1, "name": n} for c, n in enumerate(dataset.classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(dataset: DetectionSet, path: str | Path) -> None:
    """Write ``dataset``'s annotations as COCO JSON, atomically (same input, same bytes)."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(coco_document(dataset), indent=1, sort_keys=True) + "\n")
