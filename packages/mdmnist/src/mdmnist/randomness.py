"""Vectorised replay of the reference's numpy legacy draws (choice / randint on the global RNG).

The reference draws, per image, ``np.random.choice(list)`` once per digit, then
``np.random.randint(H - 28, size=n)`` and ``np.random.randint(W // n - 28, size=n)``.
In numpy's legacy ``RandomState`` (``mtrand``), ``choice(a)`` with no size/p and replace=True
is ``randint(0, len(a))``, and ``randint(0, high)`` of the default int64 dtype is a masked
rejection sampler over 32-bit MT19937 outputs: with ``rng = high - 1`` and ``mask`` the smallest
``2**k - 1 >= rng``, it takes outputs ``u`` until ``u & mask <= rng``; ``high == 1`` consumes
nothing. A ``size=n`` call equals n scalar calls. ``randint(0, 2**32, dtype=uint32)`` returns
the raw outputs one by one, so we draw a block of raw outputs once and replay the rejection
loop for a whole class with array operations plus one cheap integer walk per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PREFETCH = 1 << 16  # raw outputs fetched at once from the RandomState
SMALL_DRAWS = 64  # up to this many draws per call, replay them one by one in Python


class LegacyDrawStream:
    """The global legacy RNG after ``np.random.seed(seed)``, replayed in bulk."""

    def __init__(self, seed: int) -> None:
        self._rs = np.random.RandomState(seed)
        self._buf = np.empty(0, dtype=np.uint32)

    def _ensure(self, size: int) -> np.ndarray:
        """Raw 32-bit outputs not yet consumed, at least SIZE of them (fetched in big blocks:
        the RandomState is private, so reading ahead changes nothing)."""
        if len(self._buf) < size:
            more = max(size - len(self._buf), PREFETCH)
            extra = self._rs.randint(0, 2**32, size=more, dtype=np.uint32)
            self._buf = np.concatenate([self._buf, extra])
        return self._buf

    def draw_rounds(self, highs: Sequence[int], rounds: int) -> np.ndarray:
        """ROUNDS x len(HIGHS) values, as ROUNDS repetitions of ``randint(h)`` for h in HIGHS."""
        highs = [int(h) for h in highs]
        out = np.zeros((rounds, len(highs)), dtype=np.int64)
        active = [i for i, h in enumerate(highs) if h > 1]
        if rounds == 0 or not active:
            return out
        rngs = [highs[i] - 1 for i in active]
        masks = [(1 << r.bit_length()) - 1 for r in rngs]
        if rounds * len(active) <= SMALL_DRAWS:
            values, _ = self._draw_few(rngs, masks, rounds)
            out[:, active] = values
            return out
        per_round = sum((m + 1) / (r + 1) for r, m in zip(rngs, masks, strict=True))
        need = int(rounds * per_round * 1.05) + 64 * len(active)
        while True:
            buf = self._ensure(need)
            # Only the NEED words this call expects to use: the tables cost per word, and the
            # read-ahead buffer can be far longer (5x faster draws for 5-digit classes).
            result = _replay(buf[:need], rngs, masks, rounds)
            if result is not None:
                values, consumed = result
                out[:, active] = values
                self._buf = buf[consumed:]
                return out
            need = int(need * 1.5) + 1024

    def _draw_few(
        self, rngs: list[int], masks: list[int], rounds: int
    ) -> tuple[list[list[int]], int]:
        """Few draws (small classes): the rejection loop in plain Python, cheaper than arrays."""
        need = 2 * rounds * len(rngs) + 32
        while True:
            buf = self._ensure(need)
            result = _replay_few(buf[:need].tolist(), rngs, masks, rounds)
            if result is not None:
                self._buf = buf[result[1] :]
                return result
            need *= 2


def _replay_few(
    words: list[int], rngs: list[int], masks: list[int], rounds: int
) -> tuple[list[list[int]], int] | None:
    """ROUNDS rounds of masked draws over WORDS one by one, or None if WORDS run out."""
    pos = 0
    values = []
    for _ in range(rounds):
        row = []
        for r, m in zip(rngs, masks, strict=True):
            while True:
                if pos == len(words):
                    return None
                v = words[pos] & m
                pos += 1
                if v <= r:
                    break
            row.append(v)
        values.append(row)
    return values, pos


def _replay(
    buf: np.ndarray, rngs: list[int], masks: list[int], rounds: int
) -> tuple[np.ndarray, int] | None:
    """Accepted values of ROUNDS rounds of masked draws over BUF, or None if BUF is too short."""
    size = len(buf)
    fail = size + 1
    # after[s][p]: position just past the first output at or after p accepted by draw s.
    cache: dict[tuple[int, int], np.ndarray] = {}
    after: list[np.ndarray] = []
    for r, m in zip(rngs, masks, strict=True):
        key = (r, m)
        if key not in cache:
            accepted = (buf & np.uint32(m)) <= r
            nxt = np.where(accepted, np.arange(1, size + 1), fail)
            table = np.empty(size + 2, dtype=np.int64)
            table[:size] = np.minimum.accumulate(nxt[::-1])[::-1]
            table[size:] = fail
            cache[key] = table
        after.append(cache[key])
    step = after[0]
    for table in after[1:]:
        step = table[step]  # position after one whole round, from each start position
    jump = step.tolist()
    starts = [0] * rounds
    pos = 0
    for k in range(rounds):
        starts[k] = pos
        pos = jump[pos]
    if pos >= fail:
        return None
    values = np.empty((rounds, len(rngs)), dtype=np.int64)
    cur = np.asarray(starts, dtype=np.int64)
    for s, (table, m) in enumerate(zip(after, masks, strict=True)):
        cur = table[cur]
        values[:, s] = buf[cur - 1] & np.uint32(m)
    return values, pos


def draw_class(
    stream: LegacyDrawStream,
    index_lists: Sequence[np.ndarray],
    digits: Sequence[int],
    count: int,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source pool indices, rows and columns (count x n) of one class's digits, in draw order."""
    n = len(digits)
    hy, hx = height - 28, width // n - 28
    highs = [len(index_lists[d]) for d in digits]
    highs += [hy] * n if hy > 0 else []
    highs += [hx] * n if hx > 0 else []
    values = stream.draw_rounds(highs, count)
    src = np.empty((count, n), dtype=np.int64)
    for pos, d in enumerate(digits):
        src[:, pos] = index_lists[d][values[:, pos]]
    zeros = np.zeros((count, n), dtype=np.int64)
    ys = values[:, n : 2 * n] if hy > 0 else zeros
    xs_at = n + (n if hy > 0 else 0)
    xs = values[:, xs_at : xs_at + n] if hx > 0 else zeros
    cols = xs + (np.arange(n) * width) // n
    return src, ys, cols
