"""Whole-dataset generation: reference-order draws feeding vectorised transforms, then the reference's
shuffle, normalisation and train/test split."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from mnist1d.arguments import DatasetArgs
from mnist1d.batch import BatchTransform, resample
from mnist1d.draws import ChunkDraws, iter_draws, legacy_generator

CHUNK_SIZE = 2048  # samples per chunk: big enough to amortise numpy calls, small enough for cache
IN_FLIGHT = 2  # chunks transformed in the worker thread while the main thread draws the next


def _transform_into(
    out: np.ndarray, draws: ChunkDraws, labels: np.ndarray, transform: BatchTransform
) -> None:
    """Transform one chunk and store it at its place in ``out`` (runs in the worker thread)."""
    out[draws.start : draws.start + draws.count] = transform(draws, labels).T


def generate(
    args: DatasetArgs,
    templates: Mapping[str, Any],
    progress: Callable[[int], None] | None = None,
    sync_global_rng: bool = True,
) -> dict[str, Any]:
    """Build the dataset dict (x, x_test, y, y_test, t, templates) exactly as the reference does.

    With ``sync_global_rng`` Python's ``random`` is seeded and NumPy's global legacy generator is left
    in the state the reference leaves it in, so code that draws from it afterwards sees the same numbers.
    """
    templates_x = np.asarray(templates["x"], dtype=np.float64)
    templates_y = np.asarray(templates["y"])
    num_classes = len(templates_y)
    per_class = args.num_samples // num_classes
    total = per_class * num_classes
    length = args.dilated_len
    label_ix = np.repeat(np.arange(num_classes), per_class)

    rs, bitgen = legacy_generator(args.seed)
    transform = BatchTransform(args, templates_x)
    signals = np.empty((total, args.final_seq_length))
    chunks = iter_draws(rs, bitgen, total, length, args.max_translation, CHUNK_SIZE)
    pending: deque[tuple[Future[None], int]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnist1d") as pool:
        for draws in chunks:
            labels = label_ix[draws.start : draws.start + draws.count]
            job = pool.submit(_transform_into, signals, draws, labels, transform)
            pending.append((job, draws.count))
            while len(pending) > (IN_FLIGHT if draws.start + draws.count < total else 0):
                job, count = pending.popleft()
                job.result()
                if progress is not None:
                    progress(count)

    batch_shuffle = rs.permutation(total)
    xs = signals[batch_shuffle]
    del signals
    ys = np.repeat(templates_y, per_class)[batch_shuffle]
    if args.shuffle_seq:
        xs = xs[..., rs.permutation(args.final_seq_length)]

    t = resample(
        resample(np.asarray(templates["t"], dtype=np.float64), length), args.final_seq_length
    )
    std = xs.std()
    t = t / std
    mean = xs.mean()
    xs -= mean  # in place: the same operations as (xs - mean) / std, without two more copies
    xs /= std

    if sync_global_rng:
        random.seed(args.seed)
        np.random.set_state(rs.get_state())

    split = int(total * args.train_split)
    return {
        "x": xs[:split],
        "x_test": xs[split:],
        "y": ys[:split],
        "y_test": ys[split:],
        "t": t,
        "templates": templates,
    }
