"""A detection split: images with boxes and class labels, whatever format they were read from.

Boxes are ``[x1, y1, x2, y2]`` in pixels (the COCO ``[x, y, w, h]`` and the VOC 1-based corners
are converted on reading); labels index ``classes``. Images are loaded when asked for: from an
in-memory array (generated scenes) or from a file under ``root`` (VOC, COCO).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fsbench.errors import FsbenchError


@dataclass
class ImageRecord:
    """One image: its file (relative to the set's root), size, boxes [m, 4] xyxy and labels [m]."""

    file: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray


@dataclass
class DetectionSet:
    """Images with boxes; ``pixels`` ([N, H, W] uint8) when held in memory, else files."""

    classes: list[str]
    records: list[ImageRecord]
    root: Path | None = None
    # [N, H, W] uint8, or a list of images when their sizes differ (predict's own images)
    pixels: np.ndarray | list[np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8, [H, W] (grayscale) or [H, W, 3]."""
        if self.pixels is not None:
            return self.pixels[i]
        rec = self.records[i]
        path = (self.root or Path(".")) / rec.file
        try:
            with Image.open(path) as opened:
                gray = opened.mode in ("L", "1", "I;16")
                return np.asarray(opened.convert("L") if gray else opened.convert("RGB"))
        except (OSError, ValueError) as e:
            raise FsbenchError(f"cannot read image {path}: {e}") from None

    def class_images(self) -> dict[int, np.ndarray]:
        """For each class id, the indices of the images holding at least one of its boxes."""
        out: dict[int, list[int]] = {c: [] for c in range(len(self.classes))}
        for i, rec in enumerate(self.records):
            for c in np.unique(rec.labels):
                out[int(c)].append(i)
        return {c: np.asarray(v, dtype=np.int64) for c, v in out.items()}


def check_boxes(boxes: np.ndarray, width: int, height: int, where: str) -> None:
    """One-line error when a box is empty or leaves its image (``where`` names the annotation)."""
    for b in boxes:
        x1, y1, x2, y2 = (float(v) for v in b)
        if not (x2 > x1 and y2 > y1):
            raise FsbenchError(f"{where}: box {[x1, y1, x2, y2]} is empty; fix the annotation")
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise FsbenchError(
                f"{where}: box {[x1, y1, x2, y2]} lies outside its {width}x{height} image; "
                "fix the annotation"
            )


def check_image_file(root: Path, file: str, where: str) -> None:
    """One-line error when an annotation names an image that is not there."""
    if not (root / file).is_file():
        raise FsbenchError(f"{where} names image {root / file}, which does not exist")
