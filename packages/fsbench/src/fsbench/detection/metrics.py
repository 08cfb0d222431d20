"""mAP@0.5 of one episode, and its mean and 95% CI over episodes.

The average precision is torchmetrics' ``MeanAveragePrecision`` (pycocotools' evaluation) at the
single IoU threshold 0.5: COCO's 101-point interpolated precision (at recall 0, 0.01, ..., 1),
averaged over the classes that have a ground-truth box in the episode. VOC2007's devkit uses
11 points, VOC2010+ the area under the whole interpolated curve; on the same detections they
differ by a little (at most about 1/11 for 11 points), so numbers from the three are close but not
identical. Needs ``pip install 'fsbench[detection]'`` (torchmetrics, pycocotools).
"""

from __future__ import annotations

import numpy as np
import torch

from fsbench.errors import FsbenchError
from fsbench.methods.base import EvalResult, episode_ci

INTERPOLATION = "COCO 101-point interpolated AP at IoU 0.5 (torchmetrics/pycocotools)"


def _metric():
    try:
        from torchmetrics.detection import MeanAveragePrecision
    except ImportError:
        raise FsbenchError(
            "detection needs torchmetrics and pycocotools: pip install 'fsbench[detection]'"
        ) from None
    try:
        return MeanAveragePrecision(box_format="xyxy", iou_thresholds=[0.5], backend="pycocotools")
    except ModuleNotFoundError:
        raise FsbenchError(
            "detection mAP needs pycocotools: pip install 'fsbench[detection]'"
        ) from None


def episode_map(predictions: list[dict], targets: list[dict]) -> float:
    """mAP@0.5 of one episode's query images.

    predictions: per image ``{"boxes": [m, 4] xyxy, "scores": [m], "labels": [m]}``;
    targets: per image ``{"boxes": [g, 4], "labels": [g]}`` (tensors or arrays).
    """

    def tensors(d: dict, keys: tuple[str, ...]) -> dict:
        out = {}
        for k in keys:
            v = torch.as_tensor(np.asarray(d[k]))
            out[k] = (
                v.long()
                if k == "labels"
                else v.float().reshape(-1, 4)
                if k == "boxes"
                else v.float()
            )
        return out

    metric = _metric()
    metric.update(
        [tensors(p, ("boxes", "scores", "labels")) for p in predictions],
        [tensors(t, ("boxes", "labels")) for t in targets],
    )
    value = float(metric.compute()["map"])
    if value < 0:  # pycocotools' -1: no class has a ground-truth box
        raise ValueError("an episode's query images hold no ground-truth box")
    return value


def map_over_episodes(maps: list[float]) -> EvalResult:
    """Mean mAP@0.5 over episodes with the 95% CI 1.96 * std / sqrt(episodes)."""
    return episode_ci(maps)
