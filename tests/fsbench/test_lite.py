"""LITE: unbiased (exact in expectation) support gradients, flat memory, same accuracy, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.methods.lite import lite_embed
from fsbench.methods.protonet import prototypical_logits
from fsbench.models.conv4 import Conv4
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images


def _task(way: int, shot: int, query: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(way * shot, 1, 16, 16, generator=g, dtype=dtype)
    xq = torch.rand(way * query, 1, 16, 16, generator=g, dtype=dtype)
    ys = torch.arange(way).repeat_interleave(shot)
    yq = torch.arange(way).repeat_interleave(query)
    return xs, ys, xq, yq


def _grads(model, xs, ys, xq, yq, subset=None) -> list[torch.Tensor]:
    zs = model(xs) if subset is None else lite_embed(model, xs, subset, chunk=4)
    logits = prototypical_logits(zs, ys, model(xq), int(ys.max()) + 1)
    return torch.autograd.grad(F.cross_entropy(logits, yq), list(model.parameters()))


def test_lite_gradient_averaged_over_all_subsets_is_the_full_gradient():
    torch.manual_seed(0)
    model = Conv4((1, 16, 16), hidden=4, norm="group").double()
    xs, ys, xq, yq = _task(way=2, shot=3, query=2)
    full = _grads(model, xs, ys, xq, yq)
    n, h = len(xs), 2
    subsets = list(itertools.combinations(range(n), h))
    assert len(subsets) == 15
    total = [torch.zeros_like(g) for g in full]
    for subset in subsets:
        for t, g in zip(total, _grads(model, xs, ys, xq, yq, torch.tensor(subset)), strict=True):
            t += g
    for t, g in zip(total, full, strict=True):
        torch.testing.assert_close(t / len(subsets), g, atol=1e-10, rtol=0)
    # one subset alone is not the full gradient (the test above could fail)
    one = _grads(model, xs, ys, xq, yq, torch.tensor(subsets[0]))
    assert max(float((a - b).abs().max()) for a, b in zip(one, full, strict=True)) > 1e-6
    # H = N: the full gradient itself
    every = _grads(model, xs, ys, xq, yq, torch.arange(n))
    for a, b in zip(every, full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def _saved_bytes(method, episode) -> int:
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        method.train_loss(episode)
    return total


@pytest.mark.parametrize("lite", [True, False])
def test_memory_saved_for_backward_is_flat_with_lite(lite):
    store = synthetic_images(classes=10, per_class=104, size=16)
    sizes = {}
    for shot in (10, 100):
        s = resolve_settings(
            "protonet",
            "omniglot",
            dict(way=5, train_way=5, shot=shot, query=2, train_query=2, hidden=8, norm="group"),
        )
        s["lite_h"] = 8 if lite else 0
        method = build_method(s, store.example_shape, store.num_classes)
        episode = method.sample_train(store, torch.Generator().manual_seed(0), 0)
        sizes[shot] = _saved_bytes(method, episode)
    if lite:
        assert sizes[100] <= 1.05 * sizes[10], sizes  # H and the queries, not the support
    else:
        assert sizes[100] >= 5 * sizes[10], sizes  # grows with the support set


def test_lite_reaches_the_accuracy_of_full_backpropagation():
    train = synthetic_images(classes=20, per_class=30, size=16, seed=0, noise_seed=1, noise=0.3)
    test = synthetic_images(classes=20, per_class=30, size=16, seed=0, noise_seed=2, noise=0.3)
    results = {}
    for h in (0, 8):  # 8 of the 20 support images back-propagated
        s = resolve_settings(
            "protonet",
            "omniglot",
            dict(way=5, train_way=5, shot=4, query=5, hidden=16, norm="group", lr=1e-3),
        )
        s["lite_h"] = h
        torch.manual_seed(0)
        method = build_method(s, train.example_shape, train.num_classes)
        opt, _ = method.make_optimizer()
        gen = torch.Generator().manual_seed(0)
        for it in range(300):
            loss, _ = method.train_loss(method.sample_train(train, gen, it))
            opt.zero_grad()
            loss.backward()
            opt.step()
        results[h] = method.evaluate(test, torch.Generator().manual_seed(9), 200)
    full, lite = results[0], results[8]
    # measured 93.9 ± 0.7 (full) vs 93.2 ± 0.8 (H = 8) on one machine, 94.9 ± 0.6 vs 91.5 ± 0.8
    # on another (2026-12-04, the same code: float rounding sends LITE's noisy 300 steps
    # elsewhere); H = 2 reached 87.8. The CIs cover the test episodes only, not the training
    # run's own noise, so the two runs are compared with a stated 5-point tolerance instead.
    assert full.accuracy > 0.85 and lite.accuracy > 0.85  # both learned (chance 0.2)
    assert abs(full.accuracy - lite.accuracy) <= 0.05


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"lite_h": 50, "norm": "group"}, "larger than the training support set"),
        ({"lite_h": 4, "norm": "batch"}, "norm group"),
    ],
)
def test_bad_settings(extra, needle):
    with pytest.raises(FsbenchError, match=needle):
        resolve_settings("protonet", "omniglot", {"way": 5, "train_way": 5, "shot": 5, **extra})
    with pytest.raises(FsbenchError, match="lite_h applies to protonet"):
        resolve_settings("maml", "doublemnist", {"lite_h": 2})


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "protonet", "doubled", "--lite-h", "0"], "--lite-h"),
        (["run", "maml", "doubled", "--lite-h", "2"], "--lite-h applies to protonet"),
        (["run", "protonet", "doubled", "--lite-h", "4", "--norm", "batch"], "--norm group"),
    ],
)
def test_bad_input_is_one_line(args, needle, tmp_path):
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert_one_line_error(r, needle)
    assert not (tmp_path / "o").exists()


def test_running_norm_lite_updates_statistics_and_embeds_each_image_alone():
    store = synthetic_images(classes=10, per_class=20, size=16)
    s = resolve_settings(
        "protonet", "omniglot", dict(way=5, train_way=5, shot=5, query=3, hidden=8, norm="running")
    )
    s["lite_h"] = 4
    method = build_method(s, store.example_shape, store.num_classes)
    bn = next(m for m in method.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    episode = method.sample_train(store, torch.Generator().manual_seed(0), 0)
    first, _ = method.train_loss(episode)
    assert not torch.equal(bn.running_mean, before)  # the episode moved the statistics
    assert method.model.training  # back in training mode for the optimiser step
    # every image was embedded alone with the updated statistics: one at a time gives the same
    a = method._lite_logits(episode).detach()
    method.model.eval()
    with torch.no_grad():
        zs = torch.cat([method.model(x[None]) for x in episode.support_x[0]])
        zq = torch.cat([method.model(x[None]) for x in episode.query_x[0]])
    alone = prototypical_logits(zs, episode.support_y[0], zq, 5)
    torch.testing.assert_close(a, alone, atol=1e-4, rtol=1e-5)
