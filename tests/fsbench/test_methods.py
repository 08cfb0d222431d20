"""MAML (loop vs vmap, first vs second order), ProtoNets distances, and that every method learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fsbench.methods import build_method
from fsbench.methods.protonet import prototypes, prototypical_logits, squared_distances
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images, synthetic_signals
from torch.func import functional_call


def maml_settings(method: str = "maml", **kw) -> dict:
    base = dict(way=5, shot=1, query=3, train_query=3, meta_batch=4, hidden=8, inner_steps=2)
    base.update(kw)
    return resolve_settings(method, "doublemnist", base)


def meta_grads(method, episode, execution: str) -> list[torch.Tensor]:
    method.model.zero_grad()
    losses, _ = method.run_tasks(dict(method.model.named_parameters()), episode, 2, execution)
    losses.mean().backward()
    return [p.grad.clone() for p in method.model.parameters()]


@pytest.fixture(scope="module")
def store():
    return synthetic_images(classes=10, per_class=10, size=16)


@pytest.mark.parametrize("name", ["maml", "fomaml"])
def test_loop_and_vmap_give_the_same_meta_gradient(store, name):
    torch.manual_seed(0)
    method = build_method(maml_settings(name), store.example_shape, store.num_classes)
    episode = method.sample_train(store, torch.Generator().manual_seed(1), 0)
    loop = meta_grads(method, episode, "loop")
    vmapped = meta_grads(method, episode, "vmap")
    for a, b in zip(loop, vmapped, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_loop_matches_plain_autograd_reference(store):
    """The torch.func inner loop equals MAML written with torch.autograd.grad(create_graph=True)."""
    torch.manual_seed(0)
    method = build_method(maml_settings(), store.example_shape, store.num_classes)
    ep = method.sample_train(store, torch.Generator().manual_seed(2), 0)
    ours = meta_grads(method, ep, "loop")
    names = [n for n, _ in method.model.named_parameters()]
    params = list(method.model.parameters())
    method.model.zero_grad()
    total = 0.0
    for b in range(ep.support_x.shape[0]):
        fast = params
        for _ in range(2):
            logits = functional_call(
                method.model, dict(zip(names, fast, strict=True)), (ep.support_x[b],)
            )
            g = torch.autograd.grad(
                F.cross_entropy(logits, ep.support_y[b]), fast, create_graph=True
            )
            fast = [p - 0.4 * gi for p, gi in zip(fast, g, strict=True)]
        logits = functional_call(
            method.model, dict(zip(names, fast, strict=True)), (ep.query_x[b],)
        )
        total = total + F.cross_entropy(logits, ep.query_y[b])
    (total / ep.support_x.shape[0]).backward()
    for a, p in zip(ours, params, strict=True):
        torch.testing.assert_close(a, p.grad, atol=1e-6, rtol=1e-5)


def test_first_order_differs_from_second_order(store):
    torch.manual_seed(0)
    so = build_method(maml_settings("maml"), store.example_shape, store.num_classes)
    fo = build_method(maml_settings("fomaml"), store.example_shape, store.num_classes)
    fo.model.load_state_dict(so.model.state_dict())
    ep = so.sample_train(store, torch.Generator().manual_seed(3), 0)
    g_so = meta_grads(so, ep, "loop")
    g_fo = meta_grads(fo, ep, "loop")
    diff = max(float((a - b).abs().max()) for a, b in zip(g_so, g_fo, strict=True))
    assert diff > 1e-4
    # the head has no second-order path through the inner step of a 1-step... but with 2 steps
    # every parameter's meta-gradient changes; the query-loss value itself is identical
    lo_so, _ = so.run_tasks(dict(so.model.named_parameters()), ep, 2, "loop")
    lo_fo, _ = fo.run_tasks(dict(fo.model.named_parameters()), ep, 2, "loop")
    torch.testing.assert_close(lo_so, lo_fo)


def train_steps(method, store, steps: int, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    opt, sched = method.make_optimizer()
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for it in range(steps):
        loss, _ = method.train_loss(method.sample_train(store, gen, it))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("name", ["maml", "fomaml"])
def test_maml_variants_learn(name):
    train = synthetic_images(classes=20, per_class=10, size=16, seed=0, noise_seed=1, noise=0.3)
    test = synthetic_images(classes=20, per_class=10, size=16, seed=0, noise_seed=2, noise=0.3)
    torch.manual_seed(0)
    s = maml_settings(name, inner_steps=1, test_inner_steps=3, meta_batch=4, hidden=16, lr=3e-3)
    method = build_method(s, train.example_shape, train.num_classes)
    before = method.evaluate(test, torch.Generator().manual_seed(9), 40).accuracy
    losses = train_steps(method, train, 60)
    after = method.evaluate(test, torch.Generator().manual_seed(9), 40)
    assert sum(losses[-10:]) < sum(losses[:10])
    assert after.accuracy > 0.5  # chance is 0.2
    assert after.accuracy > before, (before, after.accuracy)
    assert after.ci95 >= 0 and after.episodes == 40


def test_protonet_distances_on_a_hand_made_example():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 1, 1])
    protos = prototypes(support, labels, 2)
    torch.testing.assert_close(protos, torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    query = torch.tensor([[1.0, 1.0], [0.0, 4.0]])
    d = squared_distances(query, protos)
    torch.testing.assert_close(d, torch.tensor([[1.0, 10.0], [17.0, 0.0]]))
    logits = prototypical_logits(support, labels, query, 2)
    torch.testing.assert_close(logits, -d)
    assert logits.argmax(1).tolist() == [0, 1]


def test_protonet_learns_with_separate_train_way():
    train = synthetic_images(classes=20, per_class=10, size=16, seed=0, noise_seed=1, noise=0.3)
    test = synthetic_images(classes=20, per_class=10, size=16, seed=0, noise_seed=2, noise=0.3)
    s = resolve_settings(
        "protonet", "omniglot", dict(way=5, shot=1, query=3, train_way=10, train_query=3, hidden=16)
    )
    assert (s["train_way"], s["train_shot"], s["way"]) == (10, 1, 5)
    torch.manual_seed(0)
    method = build_method(s, train.example_shape, train.num_classes)
    ep = method.sample_train(train, torch.Generator().manual_seed(0), 0)
    assert ep.support_x.shape[1] == 10  # 10-way 1-shot training episodes
    losses = train_steps(method, train, 100)
    res = method.evaluate(test, torch.Generator().manual_seed(9), 30)
    assert sum(losses[-10:]) < sum(losses[:10])
    assert res.accuracy > 0.6


def test_protonet_lr_halves_every_2000_episodes():
    s = resolve_settings("protonet", "omniglot")
    method = build_method({**s, "hidden": 4}, (1, 28, 28), 10)
    opt, sched = method.make_optimizer()
    for _ in range(2000):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn", "gru"])
def test_classifiers_learn_and_use_binomial_ci(name):
    train = synthetic_signals(per_class=60, noise=1.0, noise_seed=1)
    test = synthetic_signals(per_class=20, noise=1.0, noise_seed=2)
    s = resolve_settings(name, "mnist1d", dict(iterations=60))
    torch.manual_seed(0)
    method = build_method(s, train.example_shape, train.num_classes)
    losses = train_steps(method, train, 60 if name != "gru" else 80)
    res = method.evaluate(test, torch.Generator(), 0)
    assert sum(losses[-10:]) < sum(losses[:10])
    assert res.accuracy > 0.4  # chance is 0.1
    p, n = res.accuracy, len(test)
    assert res.ci95 == pytest.approx(1.96 * (p * (1 - p) / n) ** 0.5)
    assert res.episodes == n and "binomial" in res.ci95_method


def test_test_time_adaptation_same_under_loop_and_vmap(store):
    s = maml_settings(test_inner_steps=2)
    torch.manual_seed(0)
    method = build_method(s, store.example_shape, store.num_classes)
    scores = {}
    for execution in ("loop", "vmap"):
        method.execution = execution
        scores[execution] = method.evaluate(store, torch.Generator().manual_seed(0), 8).per_episode
    assert scores["loop"] == pytest.approx(scores["vmap"])


# ---- protocols: norm, distance, inner-loss scale, first order, the MNIST-1D reference models ----


def protonet(norm: str, distance: str = "sqeuclidean"):
    s = resolve_settings(
        "protonet",
        "omniglot",
        dict(way=3, train_way=3, shot=2, query=4, hidden=8, norm=norm, distance=distance),
    )
    torch.manual_seed(0)
    return build_method(s, (1, 16, 16), 20)


def test_protonet_query_prediction_is_independent_of_the_other_queries(store):
    """Running-statistics batch norm + eval(): as Snell et al., inductive at test."""
    method = protonet("running")
    method.train_loss(method.sample_train(store, torch.Generator().manual_seed(0), 0))  # stats
    a = store.sample_episode(torch.Generator().manual_seed(5), 3, 2, 4)
    b = store.sample_episode(torch.Generator().manual_seed(6), 3, 2, 4)
    mixed = type(a)(a.support_x, a.support_y, a.query_x.clone(), a.query_y, 3, 2, 4)
    mixed.query_x[0, 1:] = b.query_x[0, 1:]  # every query but the first replaced
    method.model.eval()
    with torch.no_grad():
        first = method._logits(a, 0, 3)[0]
        again = method._logits(mixed, 0, 3)[0]
    torch.testing.assert_close(first, again, atol=1e-5, rtol=1e-5)
    # the transductive norm (MAML's) does depend on them: the test above could fail
    batch = protonet("batch")
    with torch.no_grad():
        assert not torch.allclose(batch._logits(a, 0, 3)[0], batch._logits(mixed, 0, 3)[0])


def test_protonet_evaluates_in_eval_mode_and_restores_training(store):
    method = protonet("running")
    seen = []
    original = method.episode_accuracies

    def spy(ep):
        seen.append(method.model.training)
        return original(ep)

    method.episode_accuracies = spy
    method.evaluate(store, torch.Generator().manual_seed(0), 3)
    assert seen == [False, False, False] and method.model.training


def test_euclidean_distance_is_the_square_root():
    from fsbench.methods.protonet import distances

    q = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    p = torch.tensor([[0.0, 0.0]])
    torch.testing.assert_close(distances(q, p, "sqeuclidean"), torch.tensor([[25.0], [0.0]]))
    torch.testing.assert_close(distances(q, p, "euclidean"), torch.tensor([[5.0], [1e-6]]))
    q.requires_grad_(True)
    distances(q, p, "euclidean").sum().backward()
    assert torch.isfinite(q.grad).all()  # a query on its prototype has a finite gradient


def test_distances_and_softmax_stay_float32_under_autocast():
    support = torch.randn(6, 32) * 30
    labels = torch.arange(3).repeat_interleave(2)
    query = torch.randn(5, 32) * 30
    exact = prototypical_logits(support, labels, query, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = prototypical_logits(support.bfloat16(), labels, query.bfloat16(), 3)
    assert under.dtype == torch.float32
    ref = prototypical_logits(support.bfloat16().float(), labels, query.bfloat16().float(), 3)
    torch.testing.assert_close(under, ref)  # no bf16 matmul inside
    assert exact.dtype == torch.float32


def test_cbfinn_inner_loss_is_way_times_the_mean(store):
    """cbfinn's sum/shot inner loss: a fast lr on it equals way x that lr on the mean loss."""
    torch.manual_seed(0)
    cb = build_method(maml_settings(inner_loss="cbfinn", inner_lr=0.1), (1, 16, 16), 10)
    mean = build_method(maml_settings(inner_loss="mean", inner_lr=0.1 * 5), (1, 16, 16), 10)
    mean.model.load_state_dict(cb.model.state_dict())
    ep = cb.sample_train(store, torch.Generator().manual_seed(4), 0)
    params = dict(cb.model.named_parameters())
    a = cb.adapt(params, ep.support_x[0], ep.support_y[0], 1)
    b = mean.adapt(dict(mean.model.named_parameters()), ep.support_x[0], ep.support_y[0], 1)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-5)


def test_first_order_gradient_is_the_query_gradient_at_the_fast_weights(store):
    """FOMAML: d(query loss)/d(theta) = d(query loss)/d(fast) for one inner step."""
    torch.manual_seed(0)
    fo = build_method(maml_settings("fomaml", inner_steps=1), (1, 16, 16), 10)
    ep = fo.sample_train(store, torch.Generator().manual_seed(7), 0)
    params = dict(fo.model.named_parameters())
    fast = fo.adapt(params, ep.support_x[0], ep.support_y[0], 1)
    loss = F.cross_entropy(functional_call(fo.model, fast, (ep.query_x[0],)), ep.query_y[0])
    meta = torch.autograd.grad(loss, list(params.values()))
    leaf = {k: v.detach().requires_grad_(True) for k, v in fast.items()}
    loss2 = F.cross_entropy(functional_call(fo.model, leaf, (ep.query_x[0],)), ep.query_y[0])
    direct = torch.autograd.grad(loss2, list(leaf.values()))
    for a, b in zip(meta, direct, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_mnist1d_mlp_has_the_reference_residual():
    from fsbench.models.mnist1d import MLP

    torch.manual_seed(42)
    mlp = MLP()
    # the reference MLPBase builds linear1, linear2, linear3 in this order: same initial weights
    torch.manual_seed(42)
    ref = [torch.nn.Linear(40, 100), torch.nn.Linear(100, 100), torch.nn.Linear(100, 10)]
    for ours, theirs in zip((mlp.linear1, mlp.linear2, mlp.linear3), ref, strict=True):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    x = torch.randn(7, 40)
    h = torch.relu(ref[0](x))
    h = h + torch.relu(ref[1](h))
    torch.testing.assert_close(mlp(x), ref[2](h))


def test_sequential_batches_are_the_reference_slices():
    signals = synthetic_signals(per_class=25)  # 250 examples
    s = resolve_settings("mlp", "mnist1d", dict(batch_size=100))
    method = build_method(s, signals.example_shape, signals.num_classes)
    starts = []
    for it in range(4):
        x, _ = method.sample_train(signals, torch.Generator(), it)
        starts.append((int(torch.nonzero((signals.data == x[0]).all(1))[0]), len(x)))
    # (step * 100) % 250: 0, 100, 200 (a short slice of 50, as the reference), 50
    assert starts == [(0, 100), (100, 100), (200, 50), (50, 100)]
