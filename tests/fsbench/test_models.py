"""Shapes of the Conv-4 backbone and the MNIST-1D classifiers; batch-statistics norm is exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fsbench.models import Conv4, build_mnist1d_model
from fsbench.models.conv4 import BatchStatNorm


@pytest.mark.parametrize(
    ("shape", "feat"),
    [((1, 28, 28), 64 * 1 * 1), ((1, 64, 64), 64 * 4 * 4), ((84, 84), 64 * 5 * 5)],
)
def test_conv4_feature_sizes(shape, feat):
    model = Conv4(shape, hidden=64, num_classes=5)
    assert model.feature_dim == feat
    x = torch.rand(3, *shape)
    assert model(x).shape == (3, 5)
    assert model.embed(x).shape == (3, feat)


def test_conv4_has_no_buffers_and_stride_variant():
    model = Conv4((1, 28, 28), hidden=8, num_classes=None, pool="stride")
    assert list(model.buffers()) == []
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 8 * 2 * 2)


def test_conv4_rejects_tiny_input():
    with pytest.raises(ValueError, match="too small"):
        Conv4((1, 8, 8), hidden=4)


def test_batch_stat_norm_primitive_matches_fused_and_ignores_eval_mode():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 5, 5) * 3 + 1
    norm = BatchStatNorm(4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    fused = norm(x)
    norm.fused = False
    prim = norm(x)
    torch.testing.assert_close(prim, fused, atol=1e-5, rtol=1e-5)
    ref = F.batch_norm(x, None, None, norm.weight, norm.bias, training=True)
    norm.eval()  # batch statistics also at test time
    torch.testing.assert_close(norm(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "params"), [("logreg", 410), ("mlp", 15210), ("cnn", 5210), ("gru", None)]
)
def test_mnist1d_classifier_shapes(name, params):
    model = build_mnist1d_model(name)
    assert model(torch.randn(7, 40)).shape == (7, 10)
    if params is not None:
        assert sum(p.numel() for p in model.parameters()) == params


def test_cnn_flattens_125_features_and_gru_all_outputs():
    cnn = build_mnist1d_model("cnn")
    assert cnn.linear.in_features == 125
    gru = build_mnist1d_model("gru")
    assert gru.gru.bidirectional and gru.gru.hidden_size == 6
    assert gru.linear.in_features == 40 * 12


def test_unknown_classifier():
    with pytest.raises(ValueError, match="logreg"):
        build_mnist1d_model("resnet")


def test_conv4_mean_readout_feeds_hidden_values_to_the_head():
    model = Conv4((1, 64, 64), hidden=8, num_classes=5, readout="mean")
    assert model.feature_dim == 8 and model.head.in_features == 8
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 5)
