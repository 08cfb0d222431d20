"""Per-sample transformations with the reference's names and draws (``mnist1d.transform``).

These draw from NumPy's global generator one sample at a time, exactly like the reference, for code
that augments single signals; ``make_dataset`` uses the vectorised equivalent in ``mnist1d.batch``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from mnist1d.batch import CORR_SIGMA, EPS, Resampler


def pad(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """Append a random number of zeros in [low, high] to the last axis of ``x``."""
    low, high = padding
    p = low + int(np.random.rand() * (high - low + 1))
    return np.concatenate([x, np.zeros(np.shape(x)[:-1] + (p,))], axis=-1)


def shear(x: np.ndarray, scale: float = 10) -> np.ndarray:
    """Tilt the signal by a random linear ramp of slope in [-scale/2, scale/2)."""
    coeff = scale * (np.random.rand() - 0.5)
    return x - coeff * np.linspace(-0.5, 0.5, len(x))


def translate(x: np.ndarray, max_translation: int) -> np.ndarray:
    """Roll the signal right by a random k in [0, max_translation); no change when k >= len(x)."""
    k = np.random.choice(max_translation)
    if k == 0 or k >= len(x):
        return np.concatenate([x, x[:0]])  # a copy, like the reference's concatenate
    return np.roll(x, k, axis=0)


def corr_noise_like(x: np.ndarray, scale: float) -> np.ndarray:
    """Gaussian noise of ``x``'s shape, smoothed by a Gaussian of width 2 (correlated noise)."""
    return gaussian_filter(scale * np.random.randn(*np.shape(x)), CORR_SIGMA)


def iid_noise_like(x: np.ndarray, scale: float) -> np.ndarray:
    """Independent Gaussian noise of ``x``'s shape."""
    return scale * np.random.randn(*np.shape(x))


def interpolate(x: np.ndarray, N: int) -> np.ndarray:
    """Linearly resample ``x`` along axis 0 onto ``N`` evenly spaced points."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return np.interp(np.linspace(0, 1, N), np.linspace(0, 1, len(x)), x)
    out = Resampler(len(x), N)(x.reshape(len(x), -1))
    return out.reshape((N,) + x.shape[1:])


def transform(
    x: np.ndarray, y: np.ndarray, args: Any, eps: float = EPS
) -> tuple[np.ndarray, np.ndarray]:
    """Pad, dilate, scale, translate, add noise, shear and subsample one template (x) and its grid (y)."""
    length = args.template_len + args.padding[-1]
    new_x = interpolate(pad(x + eps, args.padding), length)
    new_y = interpolate(y, length)
    new_x *= 1 + args.scale_coeff * (np.random.rand() - 0.5)
    new_x = translate(new_x, args.max_translation)
    background = corr_noise_like(new_x, args.corr_noise_scale)
    new_x = np.where(new_x != 0, new_x, background)
    new_x = new_x + iid_noise_like(new_x, args.iid_noise_scale)
    new_x = shear(new_x, args.shear_scale)
    return interpolate(new_x, args.final_seq_length), interpolate(new_y, args.final_seq_length)
