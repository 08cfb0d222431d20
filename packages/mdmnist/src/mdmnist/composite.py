"""Paste digits onto zero canvases for many images at once (the reference's per-image paste)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .idx import DIGIT_SIZE


def composite(
    digits: np.ndarray, src: np.ndarray, ys: np.ndarray, cols: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Images (K, H, W) uint8: digit SRC[k, l] of DIGITS assigned at row YS[k, l], column COLS[k, l].

    Digit boxes never overlap (column offsets stay below W // n - 28), so assignment in any
    order equals the reference's left-to-right paste.
    """
    count, n = src.shape
    canvas = np.zeros((count, height, width), dtype=np.uint8)
    if count == 0:
        return canvas
    d = DIGIT_SIZE
    # Every (row, column) placement of a 28x28 box in every image, as a writable view.
    windows = as_strided(
        canvas,
        shape=(count, height - d + 1, width - d + 1, d, d),
        strides=(height * width, width, 1, width, 1),
    )
    rows = np.arange(count)
    for pos in range(n):
        windows[rows, ys[:, pos], cols[:, pos]] = digits[src[:, pos]]
    return canvas
