"""Detect the support set's classes in new images with a trained detection run.

The support set is one of
- a folder with a COCO JSON file (``*.json``) beside or above its images: every box is a shot;
- a VOC folder (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/*.txt``): likewise;
- ``DIR/<class>/<image>``: one object per image, its box the whole image (an image smaller than
  the run's images is pasted in the middle of a zero canvas of their size, so the object
  keeps the scale the detector was trained at).
Every class must have at least one box. The queries are the images of a folder (PNG/JPEG).
Output: ``predictions.json`` (per image: boxes [x1, y1, x2, y2], class names, scores) and each
query with its boxes drawn as PNG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fsbench.detection.coco import read_coco
from fsbench.detection.dataset import DetectionSet, ImageRecord
from fsbench.detection.episodes import DetectionEpisode
from fsbench.detection.method import DetectionStore, image_side
from fsbench.detection.scenes import draw_boxes
from fsbench.detection.voc import read_voc
from fsbench.errors import FsbenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Support:
    """Support images (in memory) with one box each, class-major, and the class names."""

    data: DetectionSet
    boxes: list[tuple[int, np.ndarray, int]]  # (image, box, class)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _gray_or_rgb(image: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1 and image.ndim == 3:
        return np.asarray(Image.fromarray(image).convert("L"))
    if channels == 3 and image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image


def read_support(folder: Path, side: int, channels: int = 1) -> DetectionSet:
    """The support set of ``folder`` in any of the module's three layouts (``side``: the canvas
    a class folder's image is pasted on; ``channels``: 1 grayscale, 3 colour)."""
    folder = Path(folder)
    jsons = sorted(folder.glob("*.json"))
    if jsons:
        return read_coco(jsons[0], image_dir=folder)
    if (folder / "Annotations").is_dir():
        sets = sorted((folder / "ImageSets" / "Main").glob("*.txt"))
        if not sets:
            raise FsbenchError(f"--support {folder}: a VOC folder needs ImageSets/Main/*.txt")
        voc = read_voc(folder, sets[0].stem)
        present = sorted({int(c) for r in voc.records for c in r.labels})  # VOC lists all 20
        remap = {c: k for k, c in enumerate(present)}
        for r in voc.records:
            r.labels = np.asarray([remap[int(c)] for c in r.labels], dtype=np.int64)
        voc.classes = [voc.classes[c] for c in present]
        return voc
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise FsbenchError(
            f"--support {folder} holds no COCO JSON, no VOC Annotations/ and no class folders"
        )
    records, pixels = [], []
    for c, name in enumerate(classes):
        files = _images(folder / name)
        if not files:
            raise FsbenchError(f"support class '{name}' has no box: {folder / name} has no image")
        for f in files:
            with Image.open(f) as im:
                crop = np.asarray(im.convert("L" if channels == 1 else "RGB"))
            h, w = crop.shape[:2]
            size = max(side, h, w)
            canvas = np.zeros((size, size, *crop.shape[2:]), dtype=np.uint8)
            y, x = (size - h) // 2, (size - w) // 2
            canvas[y : y + h, x : x + w] = crop
            box = np.asarray([[x, y, x + w, y + h]], dtype=np.float32)
            records.append(ImageRecord(str(f), size, size, box, np.asarray([c])))
            pixels.append(canvas)
    data = DetectionSet(classes, records, None)
    data.pixels = pixels  # a list: canvases may differ in size
    return data


def support_episode(data: DetectionSet) -> DetectionEpisode:
    """Every box of the support set as a shot; each class needs one (the shot is the smallest
    count: the first that many boxes of each class are used)."""
    per_class: dict[int, list[tuple[int, np.ndarray]]] = {c: [] for c in range(len(data.classes))}
    for i, rec in enumerate(data.records):
        for box, c in zip(rec.boxes, rec.labels.tolist(), strict=True):
            per_class[c].append((i, box))
    for c, shots in per_class.items():
        if not shots:
            raise FsbenchError(
                f"support class '{data.classes[c]}' has no box; annotate one or remove it"
            )
    shot = min(len(v) for v in per_class.values())
    support = [item for c in sorted(per_class) for item in per_class[c][:shot]]
    return DetectionEpisode(list(range(len(data.classes))), shot, support, [], [])


def predict_folder(
    run_dir: Path, support_dir: Path, query_dir: Path, out: Path, *, data_root=None, device="auto"
) -> dict:
    """Detections of the support classes in every query image: writes OUT/predictions.json and
    OUT/<image>.png; returns the JSON object."""
    from fsbench.detection.run import trained_method

    query_files = _images(Path(query_dir))
    if not query_files:
        raise FsbenchError(f"--query {query_dir} holds no PNG or JPEG image")
    method, settings, dev = trained_method(run_dir, data_root, device)
    channels = int(method.shape()[0])
    support = read_support(support_dir, image_side(settings), channels)
    ep = support_episode(support)
    pixels = [_gray_or_rgb(support.image(i), channels) for i in range(len(support))]
    queries = []
    for f in query_files:
        with Image.open(f) as im:
            queries.append(_gray_or_rgb(np.asarray(im.convert("RGB")), channels))
    n_support = len(pixels)
    records = list(support.records) + [
        ImageRecord(
            str(f), q.shape[1], q.shape[0], np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        )
        for f, q in zip(query_files, queries, strict=True)
    ]
    joined = DetectionSet(support.classes, records, None)
    joined.pixels = pixels + queries
    ep.queries = list(range(n_support, n_support + len(queries)))
    store = DetectionStore(joined, dev)
    with torch.no_grad():
        detections = method.episode_detections(store, ep, settings.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for f, q, det in zip(query_files, queries, detections, strict=True):
        names = [support.classes[int(c)] for c in det["labels"]]
        images.append(
            {
                "file": str(f),
                "boxes": [[round(float(v), 2) for v in b] for b in det["boxes"]],
                "classes": names,
                "scores": [round(float(s), 4) for s in det["scores"]],
            }
        )
        draw_boxes(q, det["boxes"], names, scores=det["scores"]).save(out / f"{f.stem}.png")
    doc = {
        "run": str(run_dir),
        "method": settings.method,
        "classes": support.classes,
        "shot": ep.shot,
        "images": images,
    }
    (out / "predictions.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc
