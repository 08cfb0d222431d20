"""Decode many small PNGs straight into one preallocated uint8 array, on a thread pool.

Pillow releases the GIL while it inflates and resamples, so a few threads decode a PNG tree
or a zip of drawings several times faster than a loop, without copying images around.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fsbench.data.transform import InputTransform, to_mode
from fsbench.errors import FsbenchError

# Source of one image: a file path, or in-memory bytes with a name for error messages.
PngSource = Path | tuple[str, bytes]


def _open(src: PngSource) -> Image.Image:
    """Open one PNG from a path or from (name, bytes)."""
    if isinstance(src, tuple):
        return Image.open(io.BytesIO(src[1]))
    return Image.open(src)


def _name(src: PngSource) -> str:
    return src[0] if isinstance(src, tuple) else str(src)


def probe_shape(src: PngSource) -> tuple[int, int]:
    """(height, width) of one PNG, read from its header; FsbenchError naming it if unreadable."""
    try:
        with _open(src) as im:
            return im.size[1], im.size[0]
    except (OSError, UnidentifiedImageError) as e:
        raise FsbenchError(f"cannot read image {_name(src)}: {e}") from None


def decode_pngs(
    sources: Sequence[PngSource],
    size: tuple[int, int] | None = None,
    *,
    resample: str = "lanczos",
    invert: bool = False,
    workers: int | None = None,
    progress: str | None = None,
    mode: str = "L",
    transform: InputTransform | None = None,
) -> np.ndarray:
    """Decode ``sources`` (PNG, JPEG: anything Pillow reads) into a uint8 array [N, H, W].

    ``mode="RGB"`` gives [N, H, W, 3] colour images instead of greyscale.

    With ``size=None`` every image must have the shape of the first one; otherwise each is
    resized to the square ``size`` (height, width) with ``resample`` ("lanczos" or "bilinear").
    ``invert`` maps v -> 255 - v (Omniglot: black strokes on white become bright on dark).
    ``transform`` (an ``InputTransform``; the arguments above make a ``fit="stretch"`` one)
    replaces size, resample, invert and mode: the loaders that record their transform pass it.
    ``progress``: a description to show a progress bar with (large jobs only), or None.
    """
    from tqdm.auto import tqdm

    n = len(sources)
    if transform is None and size is not None:
        if size[0] != size[1]:
            raise FsbenchError(f"decode_pngs resizes to squares only, got {size}")
        transform = InputTransform(
            3 if mode == "RGB" else 1, size[0], fit="stretch", filter=resample, invert=invert
        )
    if transform is not None:
        target, mode = (transform.size, transform.size), transform.mode
    else:
        target = probe_shape(sources[0]) if n else (0, 0)
    channels = (3,) if mode == "RGB" else ()
    out = np.empty((n, *target, *channels), dtype=np.uint8)

    def decode_range(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            src = sources[i]
            try:
                with _open(src) as im:
                    arr = transform.pixels(im) if transform else np.asarray(to_mode(im, mode))
            except (OSError, UnidentifiedImageError, ValueError) as e:
                raise FsbenchError(f"cannot decode image {_name(src)}: {e}") from None
            if arr.shape[:2] != tuple(target):
                raise FsbenchError(
                    f"image {_name(src)} is {arr.shape[0]}x{arr.shape[1]} but the others are "
                    f"{target[0]}x{target[1]}; all images of a split must share one size"
                )
            out[i] = arr
        bar.update(hi - lo)

    bar = tqdm(total=n, desc=progress, unit="img", disable=progress is None or n < 5000)
    workers = workers or min(8, os.cpu_count() or 1)
    chunk = 512
    bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    if workers <= 1 or len(bounds) <= 1:
        for lo, hi in bounds:
            decode_range(lo, hi)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for fut in [pool.submit(decode_range, lo, hi) for lo, hi in bounds]:
                fut.result()
    bar.close()
    if invert and transform is None:
        np.subtract(255, out, out=out)
    return out
