"""Few-shot detection episodes: ``way`` classes, ``shot`` annotated boxes each, query images.

As the RepMet paper's episodes: the classes are drawn from the test split (never seen in
training); each class's support is ``shot`` boxes from distinct images; the queries are
``query`` further images per class that hold it (an image drawn for two classes counts once).
A query's ground truth is its boxes of the episode's classes; objects of other classes in it
are not annotated in the episode (a detection on them is a false positive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsbench.detection.dataset import DetectionSet
from fsbench.errors import FsbenchError


@dataclass
class DetectionEpisode:
    """classes: dataset class ids in episode order; support: (image, box [4]) class-major,
    ``shot`` per class; queries: image indices; targets: per query ``boxes`` [g, 4] and
    ``labels`` [g] in 0..way-1."""

    classes: list[int]
    shot: int
    support: list[tuple[int, np.ndarray]]
    queries: list[int]
    targets: list[dict]

    @property
    def support_labels(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.classes)), self.shot)


def check_episodes(data: DetectionSet, way: int, shot: int, query: int, split: str) -> None:
    """One line when fewer than ``way`` classes have ``shot + query`` images in ``split``."""
    counts = {c: len(v) for c, v in data.class_images().items()}
    enough = [c for c, n in counts.items() if n >= shot + query]
    if len(enough) < way:
        raise FsbenchError(
            f"the {split} split has {len(enough)} classes with at least {shot + query} images "
            f"(--shot {shot} + --query {query}), fewer than --way {way}; lower them or generate "
            "more scenes"
        )


def sample_episode(
    data: DetectionSet, rng: np.random.Generator, way: int, shot: int, query: int
) -> DetectionEpisode:
    """One episode drawn with ``rng`` (call ``check_episodes`` first)."""
    holders = data.class_images()
    eligible = np.asarray(sorted(c for c, v in holders.items() if len(v) >= shot + query))
    classes = [int(c) for c in rng.choice(eligible, size=way, replace=False)]
    support: list[tuple[int, np.ndarray]] = []
    queries: list[int] = []
    used: set[int] = set()
    for c in classes:
        images = rng.permutation(holders[c])
        chosen = [int(i) for i in images if int(i) not in used][: shot + query]
        if len(chosen) < shot + query:  # other classes took its images: reuse queries
            chosen = [int(i) for i in images[: shot + query]]
        for i in chosen[:shot]:
            boxes = data.records[i].boxes[data.records[i].labels == c]
            support.append((i, boxes[int(rng.integers(len(boxes)))]))
            used.add(i)
        for i in chosen[shot:]:
            if i not in queries:
                queries.append(i)
    queries = [i for i in queries if i not in {s for s, _ in support}]
    index = {c: k for k, c in enumerate(classes)}
    targets = []
    for i in queries:
        rec = data.records[i]
        keep = np.isin(rec.labels, classes)
        targets.append(
            {
                "boxes": rec.boxes[keep],
                "labels": np.asarray([index[int(c)] for c in rec.labels[keep]], dtype=np.int64),
            }
        )
    return DetectionEpisode(classes, shot, support, queries, targets)
