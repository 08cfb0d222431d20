"""mAP@0.5 against values worked out by hand."""

from __future__ import annotations

import pytest
import torch
from fsbench.detection.metrics import episode_map, map_over_episodes

pytest.importorskip("pycocotools")


def _example() -> tuple[list[dict], list[dict]]:
    """Class 0: two boxes, detections TP (0.9), FP (0.8), TP (0.7). Class 1: one box, found."""
    targets = [
        {"boxes": torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[5, 5, 15, 15]]), "labels": torch.tensor([1])},
    ]
    predictions = [
        {
            "boxes": torch.tensor([[0, 0, 10, 10], [40, 40, 50, 50], [21, 21, 30, 30]]),
            "scores": torch.tensor([0.9, 0.8, 0.7]),
            "labels": torch.tensor([0, 0, 0]),
        },
        {
            "boxes": torch.tensor([[5, 5, 15, 14]]),
            "scores": torch.tensor([0.5]),
            "labels": torch.tensor([1]),
        },
    ]
    return predictions, targets


def test_map_by_hand():
    # class 0: precision 1 up to recall 0.5, then 2/3 up to recall 1. COCO's 101 recall points:
    # 51 points (0..0.50) at 1 and 50 points (0.51..1) at 2/3 -> (51 + 50 * 2/3) / 101.
    ap0 = (51 + 50 * 2 / 3) / 101
    predictions, targets = _example()
    assert episode_map(predictions, targets) == pytest.approx((ap0 + 1.0) / 2, abs=1e-6)


def test_a_class_without_ground_truth_does_not_count_and_iou_below_half_misses():
    predictions, targets = _example()
    predictions[1] = {
        "boxes": torch.tensor([[5, 5, 15, 15], [0, 0, 3, 3]]),
        "scores": torch.tensor([0.5, 0.9]),
        "labels": torch.tensor([1, 2]),  # class 2 has no box anywhere
    }
    ap0 = (51 + 50 * 2 / 3) / 101
    assert episode_map(predictions, targets) == pytest.approx((ap0 + 1.0) / 2, abs=1e-6)
    predictions[1]["boxes"] = torch.tensor([[5, 5, 11, 11], [0, 0, 3, 3]])  # IoU 0.36 < 0.5
    assert episode_map(predictions, targets) == pytest.approx(ap0 / 2, abs=1e-6)


def test_mean_and_ci_over_episodes():
    result = map_over_episodes([0.5, 0.7])
    assert result.accuracy == pytest.approx(0.6)
    assert result.ci95 == pytest.approx(1.96 * 0.1 / 2**0.5)
