"""Decoding many image files (paths or bytes) into uint8 arrays on a few threads, through the
photo datasets' input transform (``data/transform.py``: the one decoder of the image datasets).

Used by the Oxford sets (Flowers-102, Pets) and by user image folders.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fsbench.data.transform import photo_transform
from fsbench.errors import FsbenchError

CHUNK = 32  # images per decoding task
WORKERS = max(1, min(4, os.cpu_count() or 1))
ImageData = Path | bytes


def check_image_size(image_size: object) -> int:
    """``image_size`` as an int >= 1, else a one-line FsbenchError naming the parameter."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise FsbenchError(f"image_size must be an integer >= 1, got {image_size!r}")
    return image_size


def decode_image(data: ImageData, name: str, size: int, mode: str = "RGB") -> np.ndarray:
    """One image file (path or bytes) as uint8 [C, size, size] (C = 3 for "RGB", 1 for "L") by
    the photo datasets' transform (``transform.photo_transform``); FsbenchError naming it."""
    return photo_transform(size, 3 if mode == "RGB" else 1).decode(data, name)


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
