"""The CUDA paths of the Python API and of Meta-Dataset's streamed records (issues 21 and 24).

As in test_cuda.py, every test takes a ``device``: the CPU variant runs everywhere, the CUDA one
carries the ``cuda`` marker (``pytest -m cuda``, benchmarks/gpu_run.sh) and skips without a GPU.
"""

from __future__ import annotations

import json

import md_fixtures as fx
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.data.md_records import RecordImages
from fsbench.data.md_sampling import EpisodeConfig, md_episode
from fsbench.data.registry import load_split

HAS_CUDA = torch.cuda.is_available()
CUDA_ONLY = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")]
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA_ONLY)]


def _stores(device: str):
    """Two tiny splits of 16x16 grey images (8 and 6 classes, 6 images each) as ArrayStores."""
    import fsbench

    g = torch.Generator().manual_seed(0)
    splits = {}
    for split, classes in (("train", range(8)), ("test", range(8, 14))):
        labels = torch.tensor([c for c in classes for _ in range(6)])
        x = torch.rand(len(labels), 1, 16, 16, generator=g) * 64 + 12 * labels[:, None, None, None]
        splits[split] = fsbench.ArrayStore.from_tensors(x.to(torch.uint8), labels, device=device)
    return splits


def _embedding() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()
    )


@pytest.mark.parametrize("device", DEVICES)
def test_api_trains_user_backbones_in_memory_on_the_device(device):
    import fsbench

    threads = torch.get_num_threads()
    kw = dict(device=device, iterations=3, episodes=4, way=3, shot=1, query=2, eval_every=0)
    kw.update(train_shot=1, train_query=2)
    proto = fsbench.train(fsbench.ProtoNet(_embedding()), _stores(device), train_way=3, **kw)
    assert 0 <= proto.accuracy <= 1 and len(proto.history) >= 3
    assert proto.result["device"].startswith(device)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    net(torch.zeros(1, 1, 16, 16))  # materialise the lazy layer on the CPU, as a user would
    maml = fsbench.train(fsbench.MAML(net, inner_steps=1), _stores(device), meta_batch=2, **kw)
    assert 0 <= maml.accuracy <= 1 and maml.result["device"].startswith(device)
    assert torch.get_num_threads() == threads  # no process-wide change left behind


@pytest.mark.parametrize("device", DEVICES)
def test_streamed_records_give_the_held_episodes_on_the_device(tmp_path, device):
    root = tmp_path / "records"
    fx.write_omniglot(root)
    kw = {"data_root": tmp_path, "path": root, "sources": "omniglot", "device": device}
    stream = load_split("metadataset", "train", **kw)
    held = load_split("metadataset", "train", md_read="memory", **kw)
    assert isinstance(stream.data, RecordImages)
    cfg = EpisodeConfig(min_ways=3)
    g1, g2 = stream.generator(3), held.generator(3)
    for _ in range(3):
        a, b = md_episode(stream, g1, cfg), md_episode(held, g2, cfg)
        assert a.support_x.device.type == device and a.support_x.is_contiguous()
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)


@pytest.mark.parametrize("device", DEVICES)
def test_simple_cnaps_with_lite_on_streamed_records(tmp_path, device):
    root = tmp_path / "records"
    fx.write_omniglot(root)
    out = tmp_path / "run"
    args = ["run", "simple_cnaps", "metadataset", "--dataset-dir", str(root)]
    args += ["--md-sources", "omniglot", "--md-episodes", "--lite-h", "2", "--hidden", "4"]
    args += ["--iterations", "2", "--episodes", "2", "--eval-every", "0", "--select", "last"]
    args += ["--device", device, "--data-root", str(tmp_path / "c"), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    r = json.loads((out / "result.json").read_text())
    assert r["device"].startswith(device) and 0 <= r["accuracy"] <= 1
