"""FLOPs and bytes of one step (fsbench.methods.step_cost): exact on small known cases."""

from __future__ import annotations

import torch
from fsbench.methods import build_method
from fsbench.methods.step_cost import StepCost, count_step
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images


def test_linear_forward_and_backward_flops():
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(16, 8)
    cost = count_step(lambda: lin(x).sum().backward())
    assert cost.flops == 2 * 16 * 8 * 4 * 2  # forward product + weight gradient (x needs none)


def test_bytes_count_every_operation_once_and_skip_views():
    a, b = torch.randn(1000), torch.randn(1000)
    cost = count_step(lambda: (a + b).view(10, 100).t())
    assert (cost.ops, cost.op_bytes, cost.flops) == (1, 3 * 4000, 0)


def test_floor_is_the_larger_of_arithmetic_and_memory_time():
    cost = StepCost(flops=10**12, op_bytes=10**9, ops=5)
    assert cost.floor_seconds(1e12, 1e12) == 1.0
    assert cost.floor_seconds(1e15, 1e9) == 1.0
    assert cost.as_dict() == {"flops": 10**12, "op_bytes": 10**9, "ops": 5}


def test_second_order_maml_costs_more_than_first_order():
    store = synthetic_images(classes=10, per_class=6, size=16)
    costs = {}
    for name in ("maml", "fomaml"):
        s = resolve_settings(name, "doublemnist", dict(way=3, query=2, meta_batch=2, hidden=8))
        torch.manual_seed(0)
        method = build_method(s, store.example_shape, store.num_classes)
        ep = method.sample_train(store, torch.Generator().manual_seed(0), 0)
        costs[name] = count_step(lambda m=method, e=ep: m.train_loss(e)[0].backward())
    forward = count_step(lambda: method.model(ep.query_x[0]))
    assert costs["maml"].flops > costs["fomaml"].flops > 2 * 2 * forward.flops
    assert costs["maml"].ops > costs["fomaml"].ops
