"""Random draws in exactly the reference's order, chunk by chunk, from NumPy's legacy MT19937 stream.

Per sample the reference calls, on the global legacy generator: ``rand()`` (padding), ``rand()``
(scale), ``choice(max_translation)`` (shift), ``randn(L)`` (correlated noise), ``randn(L)`` (iid
noise), ``rand()`` (shear). ``rand()`` consumes two 32-bit words, ``choice(n)`` is ``randint(0, n)``,
which for n <= 2**32 draws 32-bit words until ``word & mask <= n - 1`` (none at all when n == 1; for
larger n each candidate is two words, the first one high), and
the two ``randn(L)`` calls give the same numbers as one ``randn(2L)`` (the Gaussian cache carries
over; 2L is even, so the cache is empty again at every sample boundary). So per sample we take the
shear uniform of one sample together with the padding and scale uniforms of the next in one call,
the shift candidate as one raw word of the same bit generator, and the normals in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChunkDraws:
    """All random numbers of ``count`` consecutive samples, starting at sample ``start``."""

    start: int
    pad_u: np.ndarray  # (n,) uniform for the padding length
    scale_u: np.ndarray  # (n,) uniform for the scale factor
    shift: np.ndarray  # (n,) int64 translation draw in [0, max_translation)
    normals: np.ndarray  # (n, 2L): correlated-noise normals, then iid-noise normals
    shear_u: np.ndarray  # (n,) uniform for the shear coefficient

    @property
    def count(self) -> int:
        """Number of samples in this chunk."""
        return len(self.pad_u)


def legacy_generator(seed: int | None) -> tuple[np.random.RandomState, np.random.MT19937]:
    """A legacy RandomState seeded like ``np.random.seed(seed)``, and its bit generator."""
    bitgen = np.random.MT19937()
    rs = np.random.RandomState(bitgen)
    rs.seed(seed)
    return rs, bitgen


WORD_MAX = 0xFFFFFFFF  # bounds up to this use one 32-bit word per candidate, larger ones two


def _masked_word(raw: Callable[[], int], rng: int, mask: int) -> int:
    """randint's masked rejection with 32-bit words: draw until ``word & mask <= rng``."""
    v = raw() & mask
    while v > rng:
        v = raw() & mask
    return v


def _masked_double_word(raw: Callable[[], int], rng: int, mask: int) -> int:
    """The same with 64-bit candidates, each made of two words (high word first, as MT19937's next64)."""
    v = ((raw() << 32) | raw()) & mask
    while v > rng:
        v = ((raw() << 32) | raw()) & mask
    return v


def iter_draws(
    rs: np.random.RandomState,
    bitgen: np.random.MT19937,
    num_samples: int,
    length: int,
    max_translation: int,
    chunk_size: int = 4096,
) -> Iterator[ChunkDraws]:
    """Yield the draws of ``num_samples`` samples in the reference's order, ``chunk_size`` at a time."""
    rng = max_translation - 1  # randint(0, n) draws from [0, rng]
    mask = (1 << rng.bit_length()) - 1  # the smallest all-ones mask covering rng
    draw = _masked_word if rng <= WORD_MAX else _masked_double_word
    raw = bitgen.random_raw  # one 32-bit word per call, from rs's own stream
    uniform = rs.random_sample
    normal = rs.standard_normal
    two_l = 2 * length

    head = uniform(2)  # the first sample's padding and scale uniforms
    start = 0
    while start < num_samples:
        count = min(chunk_size, num_samples - start)
        last = count - 1 if start + count == num_samples else -1
        uniforms = [head]
        shifts: list[int] = []
        normals: list[np.ndarray] = []
        for i in range(count):
            if rng:  # randint(0, 1) returns 0 without consuming a word
                shifts.append(draw(raw, rng, mask))
            normals.append(normal(two_l))
            # this sample's shear, then (unless it is the very last) the next sample's padding and scale
            uniforms.append(uniform(1 if i == last else 3))
        flat = np.concatenate(uniforms)
        rows = flat[: 3 * count].reshape(count, 3)
        head = flat[3 * count :]
        yield ChunkDraws(
            start=start,
            pad_u=rows[:, 0],
            scale_u=rows[:, 1],
            shift=np.asarray(shifts, dtype=np.int64) if rng else np.zeros(count, np.int64),
            normals=np.stack(normals),
            shear_u=rows[:, 2],
        )
        start += count
