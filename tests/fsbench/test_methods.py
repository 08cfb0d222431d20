"""MAML (loop vs vmap, first vs second order), ProtoNets distances, and that every method learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fsbench.methods import build_method
from fsbench.methods.protonet import prototypes, prototypical_logits, squared_distances
from fsbench.presets import resolve_settings
from fsbench.synthetic import synthetic_images, synthetic_signals
from torch.func import functional_call


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one thread avoids OpenMP oversubscription on shared 2-core CI machines."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    episode = method.sample_train(store, torch.Generator().manual_seed(1))
    loop = meta_grads(method, episode, "loop")
    vmapped = meta_grads(method, episode, "vmap")
    for a, b in zip(loop, vmapped, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_loop_matches_plain_autograd_reference(store):
    """The torch.func inner loop equals MAML written with torch.autograd.grad(create_graph=True)."""
    torch.manual_seed(0)
    method = build_method(maml_settings(), store.example_shape, store.num_classes)
    ep = method.sample_train(store, torch.Generator().manual_seed(2))
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
    ep = so.sample_train(store, torch.Generator().manual_seed(3))
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
    for _ in range(steps):
        loss, _ = method.train_loss(method.sample_train(store, gen))
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
    ep = method.sample_train(train, torch.Generator().manual_seed(0))
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
