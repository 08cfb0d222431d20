"""Meta-Dataset's episode sampler against its paper's rules, on fixture specs."""

from __future__ import annotations

import md_fixtures as fx
import numpy as np
import pytest
import torch
from fsbench.data.md_sampling import (
    EpisodeConfig,
    EpisodeSampler,
    SourceClasses,
    md_episode,
)
from fsbench.data.registry import load_split
from fsbench.data.store import ArrayStore
from fsbench.errors import FsbenchError


def _descriptions(sampler: EpisodeSampler, n: int, seed: int = 0):
    rng = np.random.RandomState(seed)
    return [sampler.sample(rng) for _ in range(n)]


def test_way_is_uniform_within_bounds_and_capped_by_the_split():
    counts = np.full(60, 40)
    descs = _descriptions(
        EpisodeSampler(counts, [SourceClasses(list(range(60)))], EpisodeConfig()), 4000
    )
    ways = np.array([len(d.classes) for d in descs])
    assert ways.min() == 5 and ways.max() == 50
    freq = np.bincount(ways, minlength=51)[5:]
    expected = len(ways) / 46
    assert freq.min() > 0.6 * expected and freq.max() < 1.4 * expected
    assert all(len(set(d.classes.tolist())) == len(d.classes) for d in descs)  # distinct classes
    small = EpisodeSampler(np.full(12, 40), [SourceClasses(list(range(12)))], EpisodeConfig())
    ways = {len(d.classes) for d in _descriptions(small, 500)}
    assert ways == set(range(5, 13))  # min(50, 12) caps the way


def test_query_and_support_follow_the_papers_formulas():
    rng = np.random.default_rng(1)
    counts = rng.integers(6, 700, size=80)
    sampler = EpisodeSampler(counts, [SourceClasses(list(range(80)))], EpisodeConfig())
    for d in _descriptions(sampler, 1500):
        images = counts[d.classes]
        assert d.query == min(10, int((images // 2).min()))
        remaining = images - d.query
        assert (d.support >= 1).all() and (d.support <= remaining).all()
        bound = min(500, int((np.minimum(100, remaining) + 1).sum()))
        assert len(d.classes) <= d.support.sum() <= bound


def test_support_sizes_are_imbalanced_by_class_size_and_a_random_log_weight():
    # half the classes hold 200 images, half 1000: p_c ~ images_c * exp(U(log 1/2, log 2))
    counts = np.array([200] * 30 + [1000] * 30)
    sampler = EpisodeSampler(counts, [SourceClasses(list(range(60)))], EpisodeConfig())
    ratios, spread = [], []
    for d in _descriptions(sampler, 3000):
        big, small = d.support[counts[d.classes] == 1000], d.support[counts[d.classes] == 200]
        if len(big) and len(small) and len(d.classes) <= 12 and d.support.sum() >= 300:
            ratios.append(big.mean() / small.mean())
        same = d.support[counts[d.classes] == 1000]
        if len(same) >= 2 and same.min() >= 10:
            spread.append(same.max() / same.min())
    assert 3.5 < np.mean(ratios) < 6.5  # E[ratio] about 5 (images 5x, weights cancel on average)
    # equal-sized classes differ by at most the log-weights' factor 4 (plus the +1 and floor)
    assert len(ratios) > 50 and max(spread) <= 4.2 and np.mean(spread) > 1.5


def test_total_support_uses_the_budget_of_500():
    counts = np.full(60, 1000)
    sampler = EpisodeSampler(counts, [SourceClasses(list(range(60)))], EpisodeConfig())
    descs = _descriptions(sampler, 4000)
    totals = np.array([d.support.sum() for d in descs])
    assert totals.max() <= 500
    # S = min(500, way * floor(100 beta + 1)) and S - way < total <= S: with way ~ U{5..50},
    # P(S = 500) and P(S >= 451) from the formula bound the fraction of totals >= 451
    ways = np.arange(5, 51)
    p_cap = np.mean(np.clip(1 - (np.ceil(500 / ways) - 1) / 100, 0, 1))
    p_451 = np.mean(np.clip(1 - (np.ceil(451 / ways) - 1) / 100, 0, 1))
    high = (totals >= 451).mean()
    assert p_cap - 0.03 < high < p_451 + 0.03


def test_omniglot_episodes_stay_in_one_alphabet():
    groups = [list(range(0, 14)), list(range(14, 20)), list(range(20, 80))]
    src = SourceClasses(list(range(80)), superclasses=groups)
    sampler = EpisodeSampler(np.full(80, 20), [src], EpisodeConfig())
    seen = set()
    for d in _descriptions(sampler, 600):
        owner = [i for i, g in enumerate(groups) if d.classes[0] in g][0]
        assert set(d.classes.tolist()) <= set(groups[owner])
        assert 5 <= len(d.classes) <= min(50, len(groups[owner]))
        seen.add(owner)
    assert seen == {0, 1, 2}


def test_imagenet_episodes_are_the_leaves_of_one_node():
    spans = [list(range(0, 3)), list(range(0, 8)), list(range(8, 70)), list(range(0, 70))]
    src = SourceClasses(list(range(70)), span_leaves=[list(s) for s in spans])
    sampler = EpisodeSampler(np.full(70, 30), [src], EpisodeConfig())
    sizes = set()
    for d in _descriptions(sampler, 400):
        cls = set(d.classes.tolist())
        assert len(cls) >= 5  # the 3-leaf node is not eligible (min_ways)
        node = [s for s in spans[1:] if cls <= set(s)]
        assert node
        if len(node[0]) <= 50:
            assert cls == set(node[0])  # all the node's leaves
        else:
            assert len(cls) == 50  # a random 50 of a larger node
        sizes.add(len(cls))
    assert sizes == {8, 50}


def test_fixed_way_shot_query_overrides():
    src = SourceClasses(list(range(30)), superclasses=[list(range(30))])
    cfg = EpisodeConfig(num_ways=7, num_support=3, num_query=2)
    for d in _descriptions(EpisodeSampler(np.full(30, 20), [src], cfg), 50):
        assert len(d.classes) == 7 and (d.support == 3).all() and d.query == 2
    with pytest.raises(FsbenchError, match="fewer than the 5 ways"):
        EpisodeSampler(np.full(4, 20), [SourceClasses([0, 1, 2, 3])], EpisodeConfig())


def _store(classes=20, per_class=30) -> ArrayStore:
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (classes * per_class, 1, 6, 6), generator=g, dtype=torch.uint8)
    return ArrayStore(data, torch.arange(classes).repeat_interleave(per_class))


def test_episodes_are_ragged_deterministic_and_labelled():
    store = _store()
    a = md_episode(store, store.generator(3), EpisodeConfig())
    b = md_episode(store, store.generator(3), EpisodeConfig())
    c = md_episode(store, store.generator(4), EpisodeConfig())
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert a.support_x.shape != c.support_x.shape or not torch.equal(a.support_x, c.support_x)
    assert a.shot == 0 and a.support_x.shape[0] == 1
    counts = torch.bincount(a.support_y[0], minlength=a.way)
    assert (counts >= 1).all() and int(counts.sum()) == a.support_x.shape[1]
    assert torch.equal(torch.bincount(a.query_y[0]), torch.full((a.way,), a.query))
    # every support and query image belongs to its labelled class, none repeated
    for x, y in ((a.support_x[0], a.support_y[0]), (a.query_x[0], a.query_y[0])):
        for img, label in zip(x, y, strict=True):
            cls = int(a.classes[0, label])
            rows = store.data[store.labels == cls].float() / 255
            assert (rows == img).flatten(1).all(1).any()
    both = torch.cat([a.support_x[0], a.query_x[0]]).flatten(1)
    assert len(torch.unique(both, dim=0)) == len(both)


def test_streamed_records_give_the_same_episodes_as_decoded_arrays(tmp_path):
    root = tmp_path / "records"
    fx.write_omniglot(root)
    fx.write_flat_source(root, "dtd", per_split=(4, 0, 0))
    cfg = EpisodeConfig(min_ways=3)
    kw = {"data_root": tmp_path, "path": root, "sources": "omniglot,dtd"}
    memory = load_split("metadataset", "train", md_read="memory", **kw)
    stream = load_split("metadataset", "train", md_read="stream", **kw)
    assert not isinstance(stream.data, torch.Tensor)  # nothing decoded up front
    assert stream.class_names == memory.class_names and stream.meta == memory.meta
    assert torch.equal(stream.labels, memory.labels) and len(stream) == len(memory)
    assert torch.equal(stream.data[3:9], memory.data[3:9])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(6):
        a, b = md_episode(memory, g1, cfg), md_episode(stream, g2, cfg)
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
        assert torch.equal(a.support_y, b.support_y) and torch.equal(a.classes, b.classes)
    # fixed-shape episodes (sample_episode) read the same rows too
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a, b = memory.sample_episode(g1, 3, 2, 1, 2), stream.sample_episode(g2, 3, 2, 1, 2)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)


def test_run_protonet_with_md_episodes_on_fixture_records(tmp_path):
    import json

    from click.testing import CliRunner
    from fsbench.cli import main

    root = tmp_path / "records"
    fx.write_omniglot(root)
    out = tmp_path / "run"
    args = [
        "run",
        "protonet",
        "metadataset",
        "--dataset-dir",
        str(root),
        "--md-sources",
        "omniglot",
        "--md-episodes",
        "--lite-h",
        "3",
        "--norm",
        "group",
        "--hidden",
        "4",
        "--iterations",
        "2",
        "--episodes",
        "3",
        "--eval-every",
        "1",
        "--eval-episodes",
        "2",
        "--data-root",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        "--quiet",
        "--threads",
        "1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    r = json.loads((out / "result.json").read_text())
    assert r["episodes"] == 3 and r["settings"]["md_episodes"] is True
    assert r["data"]["train"]["classes"] == 11 and r["data"]["test"]["classes"] == 5
    # read whole into memory instead of streamed from the records: the same run, number for number
    memory = tmp_path / "memory"
    args[args.index(str(out))] = str(memory)
    result = CliRunner().invoke(main, [*args, "--md-read", "memory"])
    assert result.exit_code == 0, result.output
    m = json.loads((memory / "result.json").read_text())
    assert (m["accuracy"], m["ci95"]) == (r["accuracy"], r["ci95"])
    assert m["data"] == r["data"] and m["deviations"] == r["deviations"]
    for name in ("episodes.csv", "metrics.jsonl"):
        assert (memory / name).read_text() == (out / name).read_text()


def test_md_episodes_are_refused_for_fixed_way_methods():
    from fsbench.resolve import resolve_settings

    with pytest.raises(FsbenchError, match="md_episodes applies to protonet and simple_cnaps"):
        resolve_settings("maml", "doublemnist", {"md_episodes": True})
    assert resolve_settings("simple_cnaps", "doublemnist", {"md_episodes": True})["md_episodes"]
