"""The chance level of a test: the mAP@0.5 of boxes placed at random on the same episodes.

Each query image gets ``per_image`` boxes, each the size of one of the episode's support boxes
(drawn at random), at a uniformly random position inside the image, with a random episode class
and a random score. A detector that learned anything lies far above this.
"""

from __future__ import annotations

import numpy as np
import torch

from fsbench.detection.dataset import DetectionSet
from fsbench.detection.episodes import DetectionEpisode, sample_episode
from fsbench.detection.metrics import episode_map

PER_IMAGE = 10


def episode_seed(generator: torch.Generator) -> int:
    """The seed of the next test episode (the detectors and the chance level draw alike)."""
    return int(torch.randint(2**62, (1,), generator=generator, device=generator.device))


def random_detections(
    data: DetectionSet, ep: DetectionEpisode, rng: np.random.Generator, per_image: int = PER_IMAGE
) -> list[dict]:
    """Random boxes, classes and scores on the episode's query images."""
    sizes = np.asarray([[b[2] - b[0], b[3] - b[1]] for _, b in ep.support], dtype=np.float32)
    out = []
    for i in ep.queries:
        rec = data.records[i]
        wh = sizes[rng.integers(len(sizes), size=per_image)]
        x = rng.uniform(0, 1, per_image) * (rec.width - wh[:, 0])
        y = rng.uniform(0, 1, per_image) * (rec.height - wh[:, 1])
        boxes = np.stack([x, y, x + wh[:, 0], y + wh[:, 1]], axis=1).astype(np.float32)
        out.append(
            {
                "boxes": boxes,
                "scores": rng.uniform(0, 1, per_image).astype(np.float32),
                "labels": rng.integers(len(ep.classes), size=per_image),
            }
        )
    return out


def random_boxes_map(
    data: DetectionSet, generator: torch.Generator, episodes: int, way: int, shot: int, query: int
) -> float:
    """Mean mAP@0.5 of random boxes over the test episodes that ``generator`` draws."""
    maps = []
    for _ in range(episodes):
        seed = episode_seed(generator)
        ep = sample_episode(data, np.random.default_rng(seed), way, shot, query)
        maps.append(
            episode_map(random_detections(data, ep, np.random.default_rng(seed + 1)), ep.targets)
        )
    return float(np.mean(maps))
