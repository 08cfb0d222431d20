"""Shards: shard K of N makes a contiguous block of every split's classes, so N machines share a run.

The draws of a class depend only on its place in the reference's draw order (train, val, test,
each class in order), never on the shard: a shard replays the cheap draws of every class before
its own and renders only its own. Shard K of N takes, of a split with C classes in generation
order, the classes ``[(K - 1) * C // N, K * C // N)``. Concatenating the shards' blocks in shard
order gives the split's class list back, so a merge is a concatenation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .errors import MdmnistError
from .splits import SPLITS, split_counts

Shard = tuple[int, int]  # (K, N): shard K of N, 1 <= K <= N
_SHARD_TEXT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def _is_pair_of_ints(value: object) -> bool:
    """True for a pair of integers (numpy ones too), not bools."""
    if not isinstance(value, Sequence) or len(value) != 2:
        return False
    return all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in value)


def _parse(value: object) -> Shard:
    """(K, N) from "K/N" or a pair of integers; MdmnistError when it is neither."""
    if isinstance(value, str):
        match = _SHARD_TEXT.fullmatch(value)
        if match:
            return int(match.group(1)), int(match.group(2))
    elif _is_pair_of_ints(value):
        return int(value[0]), int(value[1])  # type: ignore[index]
    raise MdmnistError(
        f"shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/3), got {value!r}"
    )


def check_shard(value: object, num_digit: int, ratios: Sequence[int]) -> Shard | None:
    """The validated shard (None: the whole run); N may not exceed the smallest split's classes."""
    if value is None:
        return None
    k, n = _parse(value)
    if n < 1:
        raise MdmnistError(f"shard {k}/{n}: N (the number of shards) must be at least 1")
    if not 1 <= k <= n:
        raise MdmnistError(f"shard {k}/{n}: K must be from 1 to N = {n}")
    counts = dict(zip(SPLITS, split_counts(num_digit, ratios), strict=True))
    smallest = min(counts, key=counts.__getitem__)
    if n > counts[smallest]:
        raise MdmnistError(
            f"shard {k}/{n}: N can be at most {counts[smallest]} for {num_digit} digit(s) with "
            f"ratios {' '.join(map(str, ratios))} (every shard takes at least one class of each "
            f"split, and the {smallest} split has {counts[smallest]})"
        )
    return k, n


def block(count: int, shard: Shard) -> tuple[int, int]:
    """Start and stop of shard (K, N)'s contiguous block among COUNT classes."""
    k, n = shard
    return (k - 1) * count // n, k * count // n


def shard_classes(splits: dict[str, list[str]], shard: Shard | None) -> dict[str, list[str]]:
    """The classes of each split that SHARD makes (all of them when SHARD is None)."""
    if shard is None:
        return {s: list(names) for s, names in splits.items()}
    chosen = {}
    for split, names in splits.items():
        start, stop = block(len(names), shard)
        chosen[split] = names[start:stop]
    return chosen


def shard_suffix(shard: Shard | None) -> str:
    """Suffix of a shard's default output folder: ``_shard_2_of_3`` (empty for a whole run)."""
    return "" if shard is None else f"_shard_{shard[0]}_of_{shard[1]}"
