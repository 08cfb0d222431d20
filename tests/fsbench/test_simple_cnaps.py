"""Simple CNAPs: the Mahalanobis classifier by hand, FiLM placement, LITE unbiased with FiLM."""

from __future__ import annotations

import dataclasses
import itertools

import torch
import torch.nn.functional as F
from fsbench.data.md_sampling import EpisodeConfig, md_episode
from fsbench.methods import build_method
from fsbench.methods.simple_cnaps import (
    FiLM,
    class_means_and_precisions,
    covariance,
    simple_cnaps_logits,
)
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images


def test_mahalanobis_logits_equal_a_hand_computation():
    # class 0: (0,0), (2,0) -> mean (1,0), covariance [[2,0],[0,0]], lambda 2/3
    # class 1: (0,1), (0,3), (0,5) -> mean (0,3), covariance [[0,0],[0,4]], lambda 3/4
    # task covariance of all five: [[0.8,-0.9],[-0.9,4.7]]
    # Q_0 = 2/3 S_0 + 1/3 S_task + I = [[2.6,-0.3],[-0.3,2.566667]]
    # Q_1 = 3/4 S_1 + 1/4 S_task + I = [[1.2,-0.225],[-0.225,5.175]]
    # query (1,1): d_0 = (0,1): Q_0^-1[1,1] = 2.6 / 6.583333 = 0.394937
    #              d_1 = (1,-2): (5.175 - 0.9 + 4.8) / 6.159375 = 1.473364
    zs = torch.tensor([[0.0, 0], [2, 0], [0, 1], [0, 3], [0, 5]], dtype=torch.float64)
    ys = torch.tensor([0, 0, 1, 1, 1])
    torch.testing.assert_close(
        covariance(zs), torch.tensor([[0.8, -0.9], [-0.9, 4.7]], dtype=torch.float64)
    )
    logits = simple_cnaps_logits(zs, ys, torch.tensor([[1.0, 1.0]], dtype=torch.float64), 2)
    torch.testing.assert_close(logits, torch.tensor([[-0.394937, -1.473364]]), atol=1e-6, rtol=0)
    means, factors = class_means_and_precisions(zs, ys, 2)
    q0 = factors[0] @ factors[0].t()
    torch.testing.assert_close(
        q0,
        torch.tensor([[2.6, -0.3], [-0.3, 2.5666667]], dtype=torch.float64),
        atol=1e-6,
        rtol=0,
    )
    assert covariance(zs[:1]).abs().sum() == 0  # one example: no class covariance


def _method(backbone="conv4", lite_h=0, shape=(1, 16, 16), **extra):
    settings = resolve_settings(
        "simple_cnaps",
        "omniglot",
        {"hidden": 8, "lite_h": lite_h, "backbone": backbone, "widths": [4, 4, 8, 8], **extra},
    )
    torch.manual_seed(0)
    return build_method(settings, shape, 10)


def test_film_sits_after_every_norm_of_conv4_and_resnet12():
    conv = _method()
    assert len(conv.model.films) == 4
    res = _method("resnet12")
    assert len(res.model.films) == 4 * 3  # four blocks of three conv-norm layers
    # batch statistics without affine terms (ResNet-12's default): channels read from a pass
    bare = _method("resnet12", norm="batch", norm_affine="none")
    gammas = bare.model.generator(torch.zeros(bare.model.set_encoder.dim))
    assert [len(gm) for gm, _ in gammas] == [4, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8]
    # the untrained generator is near the identity (regularisers ~ N(0, 1e-3))
    r = torch.randn(conv.model.set_encoder.dim)
    gamma, beta = conv.model.generator(r)[0]
    assert (gamma - 1).abs().max() < 0.05 and beta.abs().max() < 0.05
    assert all(isinstance(f, FiLM) for f in conv.model.films)


def _grads(method, xs, ys, xq, yq, subsets=None):
    logits = method._logits(xs, ys, xq, 2, subsets)
    params = [p for p in method.model.parameters() if p.requires_grad]
    return torch.autograd.grad(F.cross_entropy(logits, yq), params)


def test_lite_gradient_with_film_is_unbiased_over_every_pair_of_subsets():
    method = _method(lite_h=2)
    model = method.model.double()
    with torch.no_grad():  # make the FiLM path matter, so a biased scheme would show
        for reg in [*model.generator.gamma_reg, *model.generator.beta_reg]:
            reg.copy_(torch.randn_like(reg) * 0.5)
    g = torch.Generator().manual_seed(1)
    xs = torch.rand(4, 1, 16, 16, generator=g, dtype=torch.float64)
    xq = torch.rand(4, 1, 16, 16, generator=g, dtype=torch.float64)
    ys = torch.tensor([0, 0, 1, 1])
    yq = torch.tensor([0, 1, 0, 1])
    full = _grads(method, xs, ys, xq, yq)
    subsets = [torch.tensor(s) for s in itertools.combinations(range(4), 2)]
    total = [torch.zeros_like(t) for t in full]
    for a, b in itertools.product(subsets, subsets):  # independent: encoder, backbone
        for t, grad in zip(total, _grads(method, xs, ys, xq, yq, (a, b)), strict=True):
            t += grad
    for t, grad in zip(total, full, strict=True):
        torch.testing.assert_close(t / len(subsets) ** 2, grad, atol=1e-9, rtol=1e-7)
    # one subset pair alone differs, and so does the same subset for both (a biased scheme)
    one = _grads(method, xs, ys, xq, yq, (subsets[0], subsets[0]))
    assert max(float((a - b).abs().max()) for a, b in zip(one, full, strict=True)) > 1e-6
    same = [torch.zeros_like(t) for t in full]
    for a in subsets:
        for t, grad in zip(same, _grads(method, xs, ys, xq, yq, (a, a)), strict=True):
            t += grad
    gap = max(float((t / len(subsets) - f).abs().max()) for t, f in zip(same, full, strict=True))
    assert gap > 1e-6


def test_trains_on_ragged_md_episodes_and_evaluates_chunked():
    store = synthetic_images(classes=8, per_class=12, size=16)
    method = _method(lite_h=3, shape=store.example_shape)
    method.settings = dataclasses.replace(method.settings, md_episodes=True, md_max_way=6)
    gen = store.generator(0)
    batch = method.sample_train(store, gen, 0)
    assert batch.shot == 0 and 5 <= batch.way <= 6
    loss, metrics = method.train_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and 0 <= float(metrics["accuracy"]) <= 1
    res = method.evaluate(store, store.generator(1), 3)
    assert res.episodes == 3 and 0 <= res.accuracy <= 1
    # the no-grad (chunked) evaluation path gives the same scores as one big pass
    ep = md_episode(store, store.generator(2), EpisodeConfig(max_ways_upper_bound=6))
    method.model.eval()
    method.chunk = 2
    with torch.no_grad():
        chunked = method.task_scores(ep.support_x[0], ep.support_y[0], ep.query_x[0], ep.way)
    whole = method.task_scores(ep.support_x[0], ep.support_y[0], ep.query_x[0], ep.way)
    torch.testing.assert_close(chunked, whole.detach(), atol=1e-4, rtol=1e-4)
