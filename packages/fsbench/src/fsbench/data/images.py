"""Decoding image files (paths or bytes) into uint8 arrays: the one decoder of the image datasets.

Any PIL image becomes RGB or 8-bit grayscale, its centred square resized with PIL's antialiased
bilinear filter; large JPEGs are decoded at a reduced DCT scale first (never below twice the
size). Used by the Oxford sets (Flowers-102, Pets) and by user image folders.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fsbench.errors import FsbenchError

CHUNK = 32  # images per decoding task
WORKERS = max(1, min(4, os.cpu_count() or 1))
ImageData = Path | bytes


def check_image_size(image_size: object) -> int:
    """``image_size`` as an int >= 1, else a one-line FsbenchError naming the parameter."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise FsbenchError(f"image_size must be an integer >= 1, got {image_size!r}")
    return image_size


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL image as RGB: grayscale and CMYK converted, transparency dropped."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # so the palette's transparency does not warn
    return im if im.mode == "RGB" else im.convert("RGB")


def fit_square(im: Image.Image, size: int) -> Image.Image:
    """The centred square of side min(w, h), resized to size x size (bilinear, antialiased).

    The same as resizing the shorter side to ``size`` and then cropping the centre.
    """
    width, height = im.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    return im.resize((size, size), Image.Resampling.BILINEAR, box=box)


def to_mode(im: Image.Image, mode: str) -> Image.Image:
    """Any PIL image as ``mode``: "RGB" (``to_rgb``) or "L" (8-bit grayscale, PIL's luma)."""
    if mode == "RGB":
        return to_rgb(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return im if im.mode == "L" else im.convert("L")


def decode_image(data: ImageData, name: str, size: int, mode: str = "RGB") -> np.ndarray:
    """One image file (path or bytes) as uint8 [C, size, size] (C = 3 for "RGB", 1 for "L");
    FsbenchError naming it if unreadable."""
    try:
        with Image.open(data if isinstance(data, Path) else io.BytesIO(data)) as im:
            # JPEG only: a cheaper decode, still >= 2S (grayscale keeps the file's own mode)
            im.draft("RGB" if mode == "RGB" else None, (2 * size, 2 * size))
            square = fit_square(to_mode(im, mode), size)
            pixels = np.asarray(square, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise FsbenchError(f"cannot decode image {name}: {e}") from None
    return pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels[None]


def decode_all(
    items: Iterator[tuple[int, str, ImageData]],
    count: int,
    size: int,
    *,
    progress: str | None = None,
    mode: str = "RGB",
) -> np.ndarray:
    """Decode ``count`` images into uint8 [count, C, size, size] on a few threads (C: ``mode``).

    Pillow releases the GIL while it decodes and resamples, so threads overlap; at most a few
    chunks wait at a time, so an archive's bytes are never all held in memory.
    """
    from tqdm.auto import tqdm

    out = np.empty((count, 3 if mode == "RGB" else 1, size, size), dtype=np.uint8)
    bar = tqdm(total=count, desc=progress, unit="img", disable=progress is None)

    def work(chunk: list[tuple[int, str, ImageData]]) -> int:
        for i, name, data in chunk:
            out[i] = decode_image(data, name, size, mode)
        return len(chunk)

    pending: deque[Future[int]] = deque()
    with ThreadPoolExecutor(WORKERS) as pool:
        try:
            chunk: list[tuple[int, str, ImageData]] = []
            for item in items:
                chunk.append(item)
                if len(chunk) == CHUNK:
                    pending.append(pool.submit(work, chunk))
                    chunk = []
                while len(pending) > 2 * WORKERS:
                    bar.update(pending.popleft().result())
            if chunk:
                pending.append(pool.submit(work, chunk))
            while pending:
                bar.update(pending.popleft().result())
        finally:  # on an error, drop the work not yet started
            for fut in pending:
                fut.cancel()
            bar.close()
    return out
