"""The reference's per-sample transformation, done on whole arrays of samples at once.

Every step repeats the reference's floating-point operations element for element (same operands,
same order), so the results are the reference's numbers bit for bit, not approximations of them.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter1d

from mnist1d.arguments import DatasetArgs
from mnist1d.draws import ChunkDraws

EPS = 1e-8  # the reference adds this to every template value before padding
CORR_SIGMA = 2  # width of the Gaussian that correlates the background noise
CORR_RADIUS = 8  # scipy's default truncate=4.0 times sigma
TABLE_LIMIT = 1 << 24  # at most this many floats for the table of every (label, padding) template


def resample(y: np.ndarray, n_new: int) -> np.ndarray:
    """Resample a 1-D signal onto ``n_new`` even points, exactly as the reference's ``interpolate``."""
    return np.interp(np.linspace(0, 1, n_new), np.linspace(0, 1, len(y)), y)


class Resampler:
    """Resample along axis 0 from ``linspace(0, 1, n)`` to ``linspace(0, 1, n_new)`` with np.interp's arithmetic.

    Signals are columns here (shape (n, samples)): every step then works on contiguous rows.
    """

    def __init__(self, n: int, n_new: int) -> None:
        xp = np.linspace(0, 1, n)
        x = np.linspace(0, 1, n_new)
        j0 = np.searchsorted(xp, x, side="right") - 1  # xp[j0] <= x < xp[j0 + 1]
        self.knot = np.minimum(j0, n - 1)
        self.exact = (j0 >= n - 1) | (xp[self.knot] == x)  # np.interp returns y[j0] on a knot
        self.lo = np.clip(j0, 0, n - 2)
        self.dx = (xp[self.lo + 1] - xp[self.lo])[:, None]
        self.offset = (x - xp[self.lo])[:, None]

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """Resampled columns of ``y`` (slope * (x - xp[j]) + y[j], or y[j] itself on a knot)."""
        y_lo = y[self.lo]
        out = y[self.lo + 1]
        out -= y_lo
        out /= self.dx
        out *= self.offset
        out += y_lo
        if self.exact.any():
            out[self.exact] = y[self.knot[self.exact]]
        return out


class GaussianNoiseFilter:
    """scipy's ``gaussian_filter(noise, 2)`` (reflect mode) along axis 0, summed in scipy's order.

    NumPy releases the GIL inside each step, so this overlaps with the drawing thread; ndimage does not.
    """

    def __init__(self, length: int) -> None:
        impulse = np.zeros(2 * CORR_RADIUS + 1)
        impulse[CORR_RADIUS] = 1.0
        self.weights = gaussian_filter1d(impulse, CORR_SIGMA)[
            CORR_RADIUS:
        ]  # centre, then distance 1..8
        self.length = length
        # 'reflect' (half-sample symmetric) extension: position p maps to p mod 2n, mirrored past n
        r = CORR_RADIUS
        edge = np.concatenate([np.arange(-r, 0), np.arange(length, length + r)]) % (2 * length)
        self.edge_source = np.where(edge < length, edge, 2 * length - 1 - edge)

    def extended(self, samples: int) -> np.ndarray:
        """An empty (length + 2 * radius, samples) buffer; write the noise into ``buffer[radius:-radius]``."""
        return np.empty((self.length + 2 * CORR_RADIUS, samples))

    def __call__(self, ext: np.ndarray) -> np.ndarray:
        """Filter the noise held in ``ext[radius:-radius]``: centre * w0, then (before + after) * w_d
        added from the farthest d inwards."""
        r, n = CORR_RADIUS, self.length
        noise = ext[r : r + n]
        ext[:r] = noise[self.edge_source[:r]]
        ext[r + n :] = noise[self.edge_source[r:]]
        out = noise * self.weights[0]
        pair = np.empty_like(out)
        for d in range(r, 0, -1):
            np.add(ext[r - d : r - d + n], ext[r + d : r + d + n], out=pair)
            pair *= self.weights[d]
            out += pair
        return out


def dilate(template: np.ndarray, pad: int, length: int) -> np.ndarray:
    """One template plus eps, zero-padded by ``pad`` and resampled to ``length`` (the reference's first steps)."""
    return resample(np.concatenate([template + EPS, np.zeros(pad)]), length)


class BatchTransform:
    """The reference's ``transform`` for whole chunks of samples of one dataset (built once per dataset)."""

    def __init__(self, args: DatasetArgs, templates_x: np.ndarray) -> None:
        self.args = args
        self.templates_x = templates_x
        self.length = length = args.dilated_len
        low, high = args.padding
        self.pad_draw_width = high - low + 1  # the reference's padding is low + int(rand() * this)
        self.pad_min, pad_max = args.pad_range
        self.num_pads = pad_max - self.pad_min + 1
        self.table_windows = None
        if len(templates_x) * self.num_pads * 2 * length <= TABLE_LIMIT:
            # every (label, padding) template, twice over, so that a roll by k is the window at length - k
            table = np.array(
                [
                    dilate(tx, self.pad_min + p, length)
                    for tx in templates_x
                    for p in range(self.num_pads)
                ]
            )
            self.table_windows = sliding_window_view(
                np.concatenate([table, table], axis=1), length, axis=1
            )
        self.corr = GaussianNoiseFilter(length)
        self.shear_line = np.linspace(-0.5, 0.5, length)
        self.subsample = Resampler(length, args.final_seq_length)

    def _dilated_and_rolled(
        self, labels: np.ndarray, pad_ix: np.ndarray, shift: np.ndarray
    ) -> np.ndarray:
        """Each sample's padded, dilated template, rolled right by its shift."""
        length = self.length
        if self.table_windows is not None:
            return self.table_windows[labels * self.num_pads + pad_ix, length - shift]
        # huge padding ranges: build only the (label, padding) pairs this chunk uses
        keys = labels.astype(np.int64) * self.num_pads + pad_ix
        uniq, inverse = np.unique(keys, return_inverse=True)
        low = self.pad_min
        rows = np.array(
            [
                dilate(self.templates_x[k // self.num_pads], low + k % self.num_pads, length)
                for k in uniq.tolist()
            ]
        )
        idx = np.arange(length)[None, :] - shift[:, None]
        idx[idx < 0] += length
        return np.take_along_axis(rows[inverse.reshape(-1)], idx, axis=1)

    def __call__(self, draws: ChunkDraws, labels: np.ndarray) -> np.ndarray:
        """Transform one chunk: (final_seq_length, n) signals as columns, in generation order."""
        args, length = self.args, self.length
        # low + int(rand() * (high - low + 1)); astype truncates towards zero like int()
        low = args.padding[0]
        pad_ix = low - self.pad_min + (draws.pad_u * self.pad_draw_width).astype(np.int64)
        # translate: concatenate([x[-k:], x[:-k]]) is a roll by k, and no change at all when k >= length
        shift = np.where(draws.shift < length, draws.shift, 0)
        rolled = self._dilated_and_rolled(
            labels, pad_ix, shift
        )  # rolling first is exact: it only moves values
        n = len(rolled)
        x = np.empty(
            (length, n)
        )  # signals become columns: every later step runs on contiguous rows
        np.multiply(rolled.T, 1 + args.scale_coeff * (draws.scale_u - 0.5), out=x)  # scale

        # correlated noise only where the signal is exactly zero (the padding), then iid noise everywhere
        ext = self.corr.extended(n)
        np.multiply(
            draws.normals[:, :length].T, args.corr_noise_scale, out=ext[CORR_RADIUS:-CORR_RADIUS]
        )
        noise = self.corr(ext)
        if np.isfinite(noise).all():
            np.copyto(noise, x, where=x != 0)
        else:  # inf or nan noise: the reference's mask * x + (1 - mask) * noise, where 0 * inf = nan
            mask = x != 0
            noise = mask * x + (1 - mask) * noise
        iid = np.multiply(
            draws.normals[:, length:].T, args.iid_noise_scale, out=x
        )  # x is no longer needed
        noise += iid
        # shear
        noise -= np.multiply.outer(self.shear_line, args.shear_scale * (draws.shear_u - 0.5))
        return self.subsample(noise)
