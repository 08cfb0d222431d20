"""ProtoNets' evaluation embeds in chunks (memory flat in the support size), same scores."""

from __future__ import annotations

import pytest
import torch
from fsbench.methods import build_method
from fsbench.methods.lite import CHUNK
from fsbench.resolve import resolve_settings


@pytest.mark.parametrize("norm", ["group", "running"])
def test_chunked_evaluation_equals_one_pass(norm, monkeypatch):
    s = resolve_settings("protonet", "omniglot", {"hidden": 4, "norm": norm})
    torch.manual_seed(0)
    method = build_method(s, (1, 16, 16), 10)
    method.model.eval()
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(2 * CHUNK + 7, 1, 16, 16, generator=g)
    ys = torch.arange(5).repeat_interleave(len(xs) // 5 + 1)[: len(xs)]
    xq = torch.rand(10, 1, 16, 16, generator=g)
    calls = []
    forward = method.model.forward
    monkeypatch.setattr(method.model, "forward", lambda x: calls.append(len(x)) or forward(x))
    with torch.no_grad():
        chunked = method.task_scores(xs, ys, xq, 5)
    assert max(calls) == CHUNK and len(calls) == 3  # never the whole support set at once
    calls.clear()
    whole = method.task_scores(xs, ys, xq, 5).detach()  # with gradients: one pass
    assert calls == [len(xs) + len(xq)]
    torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=1e-5)
