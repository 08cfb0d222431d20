"""Second-order MAML with a shift-only batch norm (the Omniglot preset's norm_affine "shift"):
the fused kernel's double backward failed without a scale; now it runs and equals vmap's
primitive form (in float64, where the two differ by rounding only: ~1e-12, against ~1e-3
between either and float32 here)."""

from __future__ import annotations

import dataclasses

import torch
from fsbench.methods import build_method
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images


def test_second_order_maml_with_a_shift_only_norm_matches_vmap():
    torch.set_num_threads(1)
    store = synthetic_images(classes=6, per_class=4, size=16)
    settings = resolve_settings(
        "maml", "omniglot", dict(way=3, shot=1, query=2, train_query=2, meta_batch=2, hidden=4)
    )
    assert settings["norm_affine"] == "shift"
    torch.manual_seed(0)
    method = build_method(settings, store.example_shape, store.num_classes)
    method.model.double()
    ep = method.sample_train(store, torch.Generator().manual_seed(1), 0)
    ep = dataclasses.replace(ep, support_x=ep.support_x.double(), query_x=ep.query_x.double())
    params = list(method.model.parameters())
    grads = {}
    for path in ("loop", "vmap"):
        losses, _ = method.run_tasks(dict(method.model.named_parameters()), ep, 2, path)
        grads[path] = torch.autograd.grad(losses.mean(), params)
    for a, b in zip(grads["loop"], grads["vmap"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
