"""Magnet loss pieces against values computed by hand; the sampler's neighbourhoods; the vote."""

from __future__ import annotations

import math

import pytest
import torch
from fsbench.methods.magnet import magnet_loss, neighbourhood, soft_vote


def test_loss_of_two_overlapping_clusters_by_hand():
    # 1-D: cluster 0 (class 0) at 0, 2 -> mean 1; cluster 1 (class 1) at 1, 3 -> mean 2
    z = torch.tensor([[0.0], [2.0], [1.0], [3.0]], dtype=torch.float64)
    cluster = torch.tensor([0, 0, 1, 1])
    loss, each = magnet_loss(z, cluster, torch.tensor([0, 1]), alpha=1.0)
    # sigma^2 = (1 + 1 + 1 + 1) / (4 - 1) = 4/3, so 1 / (2 sigma^2) = 3/8
    # r = 0: 3/8 * 1 + 1 - 3/8 * 4 = -1/8 -> 0;  r = 2: 3/8 * 1 + 1 - 3/8 * 0 = 11/8
    # r = 1: 3/8 + 1 - 0 = 11/8;                 r = 3: 3/8 + 1 - 3/8 * 4 = -1/8 -> 0
    assert each.tolist() == pytest.approx([0.0, 11 / 8, 11 / 8, 0.0], abs=1e-12)
    assert float(loss) == pytest.approx(11 / 16, abs=1e-12)
    # the public implementations' 2 * variance^2 would give 1/(2 * 16/9) = 9/32 instead
    assert float(loss) != pytest.approx((9 / 32 + 1) / 2, abs=1e-6)


def test_clusters_of_the_same_class_are_not_impostors():
    # cluster 2 (class 0 again) at 2, 2: for r in cluster 0 it is no impostor, for r in
    # cluster 1 it is one
    z = torch.tensor([[0.0], [2.0], [1.0], [3.0], [2.0], [2.0]], dtype=torch.float64)
    cluster = torch.tensor([0, 0, 1, 1, 2, 2])
    _, each = magnet_loss(z, cluster, torch.tensor([0, 1, 0]), alpha=1.0)
    k = 1 / (2 * (4 / 5))  # sigma^2 = 4 / (6 - 1)
    # r = 2.0 in cluster 0: own distance^2 1, the only impostor mean 2 at 0
    assert float(each[1]) == pytest.approx(k * 1 + 1 - 0.0, abs=1e-12)
    # r = 1.0 in cluster 1: own 1; impostors mean 1 (distance^2 0) and mean 2 (distance^2 1)
    expected = k * 1 + 1 + math.log(math.exp(0.0) + math.exp(-k))
    assert float(each[2]) == pytest.approx(expected, abs=1e-12)
    # r = 2.0 in cluster 2 (own distance 0): impostor mean 2 at distance^2 0 -> 1 + log 1
    assert float(each[4]) == pytest.approx(1.0, abs=1e-12)


def test_neighbourhood_is_the_seed_and_its_nearest_impostors():
    means = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [0.5]])
    mean_class = torch.tensor([0, 1, 2, 3, 4, 0])
    loss = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # only cluster 5 can be the seed
    chosen = neighbourhood(means, mean_class, loss, m=3, generator=torch.Generator().manual_seed(0))
    # seed 5 (class 0, at 0.5): nearest of other classes 1 (at 1.0), then 2 (at 2.0); cluster 0
    # is nearer (0.5 away) but of the seed's own class
    assert chosen.tolist() == [5, 1, 2]
    counts = torch.zeros(6)
    gen = torch.Generator().manual_seed(1)
    for _ in range(400):
        counts[neighbourhood(means, mean_class, torch.tensor([1.0, 3, 0, 0, 0, 0]), 2, gen)[0]] += 1
    assert counts[2:].sum() == 0 and 0.15 < counts[0] / 400 < 0.35  # seeds in proportion 1:3


def test_soft_vote_over_the_nearest_clusters():
    means = torch.tensor([[0.0], [1.0], [5.0]])
    mean_class = torch.tensor([0, 1, 1])
    z = torch.tensor([[0.4]])
    p = soft_vote(z, means, mean_class, variance=0.5, nearest=2, num_classes=2)
    w0, w1 = math.exp(-(0.4**2) / 1.0), math.exp(-(0.6**2) / 1.0)  # the far mean is not among L
    assert p[0].tolist() == pytest.approx([w0 / (w0 + w1), w1 / (w0 + w1)], abs=1e-6)
