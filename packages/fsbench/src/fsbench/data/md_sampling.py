"""Meta-Dataset's episodes: variable way, shot and imbalance, as its paper and sampling.py specify.

One episode comes from one source, chosen uniformly among the split's sources (Meta-Dataset's
multi-source pipeline). Within it (``EpisodeConfig``'s defaults are the paper's):

- way: uniform in [min_ways, min(max_ways_upper_bound, classes)]; Omniglot (``superclasses``)
  first picks one alphabet uniformly and draws the way and the classes inside it; ILSVRC in
  MD-v1 (``span_leaves``) picks one internal node of the split's WordNet graph whose leaves number
  min_ways..392 uniformly and takes its leaves (a random 50 of them when there are more);
- query per class: min(max_num_query, floor(min over the episode's classes of images / 2));
- support: the set size is min(max_support_set_size, sum_c floor(beta * min(100, remaining_c) + 1))
  with beta ~ U(0, 1); each class gets floor(p_c * (size - way)) + 1 examples (capped by what the
  class has left after its queries), p_c proportional to images_c * exp(U(log 0.5, log 2));
- fixed-way/shot/query overrides replace the draws (``num_ways``, ``num_support``, ``num_query``).

The draws use numpy's RandomState in the order of Meta-Dataset's own calls, seeded per episode
from fsbench's torch generator, so a run is deterministic and resumes exactly.

Episodes are **ragged**: a batch of one task whose support holds each class's own number of
examples (class-major; ``support_y`` says which), query balanced; ``Episode.shot`` is 0 to say
"variable". Methods that read labels (ProtoNets, Simple CNAPs) take them as they are; methods
that need a fixed way and shot (MAML, MTL) cannot use them.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fsbench.data.store import ArrayStore, Episode
from fsbench.errors import FsbenchError

MAX_SPANNING_LEAVES_ELIGIBLE = 392  # Meta-Dataset's bound on an ILSVRC node's leaves


@dataclass(frozen=True)
class EpisodeConfig:
    """Meta-Dataset's EpisodeDescriptionConfig; the defaults are its paper's (and LITE's)."""

    min_ways: int = 5
    max_ways_upper_bound: int = 50
    max_num_query: int = 10
    max_support_set_size: int = 500
    max_support_size_contrib_per_class: int = 100
    min_log_weight: float = math.log(0.5)
    max_log_weight: float = math.log(2.0)
    num_ways: int | None = None  # fixed way (no hierarchy then)
    num_support: int | None = None  # fixed shot per class
    num_query: int | None = None  # fixed query per class


@dataclass
class Description:
    """One episode's composition: store class ids, support count per class, query per class."""

    classes: np.ndarray
    support: np.ndarray
    query: int


@dataclass
class SourceClasses:
    """The classes of one source in a split, with its hierarchy (store class indices)."""

    classes: list[int]
    superclasses: list[list[int]] = field(default_factory=list)
    span_leaves: list[list[int]] = field(default_factory=list)


def sample_num_ways(num_classes: int, min_ways: int, max_ways: int, rng) -> int:
    """Uniform in [min_ways, min(max_ways, num_classes)]."""
    return int(rng.randint(low=min_ways, high=min(max_ways, num_classes) + 1))


def compute_num_query(images: np.ndarray, max_num_query: int, num_support: int | None) -> int:
    """Balanced query size: at most max_num_query and half the smallest class (or what a fixed
    support leaves)."""
    if num_support is None:
        if images.min() < 2:
            raise FsbenchError("Meta-Dataset episodes need at least 2 images per class")
        return int(min(max_num_query, (images // 2).min()))
    if (images - num_support).min() < 1:
        raise FsbenchError(f"a fixed shot of {num_support} needs {num_support + 1} images a class")
    return int(min(max_num_query, images.min() - num_support))


def sample_support_set_size(remaining: np.ndarray, max_contrib: int, max_size: int, rng) -> int:
    """min(max_size, sum_c floor(beta * min(max_contrib, remaining_c) + 1)), beta ~ U(0, 1)."""
    if max_size < len(remaining):
        raise FsbenchError("max support set size is below the way: one example a class at least")
    beta = rng.uniform()
    contributions = np.minimum(max_contrib, remaining)
    return int(min(np.floor(beta * contributions + 1).sum(), max_size))


def sample_num_support_per_class(
    images: np.ndarray, remaining: np.ndarray, size: int, min_log: float, max_log: float, rng
) -> np.ndarray:
    """floor(p_c * (size - way)) + 1 per class, capped by remaining_c; p_c ~ images_c * e^U."""
    if size < len(remaining):
        raise FsbenchError("support set smaller than the way")
    if remaining.min() < 1:
        raise FsbenchError("some class has no example left for the support set")
    weights = images * np.exp(rng.uniform(min_log, max_log, size=images.shape))
    proportions = weights / weights.sum()
    desired = np.floor(proportions * (size - len(remaining))).astype(np.int64) + 1
    return np.minimum(desired, remaining)


class EpisodeSampler:
    """Meta-Dataset's episode descriptions over the classes of one split.

    ``counts[k]`` is the number of images of store class k; ``sources`` groups the classes by
    source (each with its hierarchy, if any).
    """

    def __init__(
        self, counts: np.ndarray, sources: list[SourceClasses], config: EpisodeConfig
    ) -> None:
        self.counts = np.asarray(counts, dtype=np.int64)
        self.table: np.ndarray | None = None  # [C, Kmax] store positions (``sampler_for``)
        self.config = c = config
        self.sources = [s for s in sources if s.classes]
        if not self.sources:
            raise FsbenchError("no classes to draw Meta-Dataset episodes from")
        need = c.num_ways or c.min_ways
        for s in self.sources:
            if len(s.classes) < need:
                raise FsbenchError(
                    f"a source of this split has {len(s.classes)} classes, fewer than the "
                    f"{need} ways an episode needs; leave it out (--md-sources) or lower the way"
                )
            s.span_leaves = [
                g for g in s.span_leaves if c.min_ways <= len(g) <= MAX_SPANNING_LEAVES_ELIGIBLE
            ]
            if c.num_ways is not None:  # fixed way: Meta-Dataset samples without hierarchy
                s.superclasses, s.span_leaves = [], []
            for g in s.superclasses:
                if len(g) < c.min_ways:
                    raise FsbenchError(
                        f"a superclass has {len(g)} classes, fewer than min_ways {c.min_ways}"
                    )

    def sample_classes(self, source: SourceClasses, rng) -> np.ndarray:
        """The episode's classes: by hierarchy, alphabet, fixed way, or uniformly."""
        c = self.config
        if source.span_leaves:
            classes = np.asarray(source.span_leaves[rng.randint(len(source.span_leaves))])
            if len(classes) > c.max_ways_upper_bound:
                classes = rng.choice(classes, size=[c.max_ways_upper_bound], replace=False)
            return classes
        if source.superclasses:
            group = source.superclasses[int(rng.choice(len(source.superclasses), 1)[0])]
            way = sample_num_ways(len(group), c.min_ways, c.max_ways_upper_bound, rng)
            picks = rng.choice(len(group), way, replace=False)
            return np.asarray(group)[picks]
        if c.num_ways is not None:
            way = c.num_ways
        else:
            way = sample_num_ways(len(source.classes), c.min_ways, c.max_ways_upper_bound, rng)
        return rng.choice(np.asarray(source.classes), way, replace=False)

    def sample(self, rng: np.random.RandomState) -> Description:
        """One episode's description (Meta-Dataset's ``sample_episode_description``)."""
        c = self.config
        source = (
            self.sources[rng.randint(len(self.sources))]
            if len(self.sources) > 1
            else (self.sources[0])
        )
        classes = self.sample_classes(source, rng)
        images = self.counts[classes]
        if c.num_query is not None:
            query = c.num_query
        else:
            query = compute_num_query(images, c.max_num_query, c.num_support)
        if c.num_support is not None:
            if np.any(c.num_support + query > images):
                raise FsbenchError("some classes have fewer images than the fixed shot + query")
            support = np.full(len(classes), c.num_support, dtype=np.int64)
        else:
            remaining = images - query
            size = sample_support_set_size(
                remaining, c.max_support_size_contrib_per_class, c.max_support_set_size, rng
            )
            support = sample_num_support_per_class(
                images, remaining, size, c.min_log_weight, c.max_log_weight, rng
            )
        return Description(np.asarray(classes, dtype=np.int64), support, int(query))


def sources_of(store: ArrayStore) -> list[SourceClasses]:
    """The store's classes grouped by Meta-Dataset source (from its meta), or one flat source."""
    meta = store.meta
    owner = meta.get("md_class_source")
    if owner is None:
        return [SourceClasses(list(range(store.num_classes)))]
    groups: dict[int, SourceClasses] = {}
    for k, s in enumerate(owner):
        groups.setdefault(int(s), SourceClasses([])).classes.append(k)
    for g in meta.get("md_superclasses", []):
        groups[int(owner[g[0]])].superclasses.append(list(g))
    for g in meta.get("md_span_leaves", []):
        groups[int(owner[g[0]])].span_leaves.append(list(g))
    return [groups[k] for k in sorted(groups)]


_SAMPLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sampler_for(store: ArrayStore, config: EpisodeConfig) -> EpisodeSampler:
    """The store's sampler (built once per store and config)."""
    per_store = _SAMPLERS.setdefault(store, {})
    if config not in per_store:
        sampler = EpisodeSampler(store.class_counts.cpu().numpy(), sources_of(store), config)
        sampler.table = store.class_index.cpu().numpy()  # positions of each class, read once
        per_store[config] = sampler
    return per_store[config]


def episode_rng(generator: torch.Generator) -> np.random.RandomState:
    """A RandomState seeded from the next draw of fsbench's (checkpointed) torch generator."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
    return np.random.RandomState(seed)


def pick_examples(desc: Description, counts: np.ndarray, rng) -> list[np.ndarray]:
    """For each class, the positions (0..count-1) of its support then query examples."""
    return [
        rng.choice(int(counts[c]), int(s) + desc.query, replace=False)
        for c, s in zip(desc.classes, desc.support, strict=True)
    ]


def _episode(
    support: torch.Tensor, query: torch.Tensor, desc: Description, device: torch.device
) -> Episode:
    """A ragged Episode (a batch of one) from float support and query rows, class-major."""
    way = len(desc.classes)
    labels = torch.arange(way, device=device)
    return Episode(
        support_x=support.unsqueeze(0),
        support_y=labels.repeat_interleave(torch.as_tensor(desc.support, device=device))[None],
        query_x=query.unsqueeze(0),
        query_y=labels.repeat_interleave(desc.query)[None],
        way=way,
        shot=0,
        query=desc.query,
        classes=torch.as_tensor(desc.classes, device=device)[None],
    )


def assemble(images: list[torch.Tensor], desc: Description, to_float, device) -> Episode:
    """The Episode of each class's images (support rows first, then its queries)."""
    support = torch.cat([x[: int(s)] for x, s in zip(images, desc.support, strict=True)])
    query = torch.cat([x[int(s) :] for x, s in zip(images, desc.support, strict=True)])
    return _episode(to_float(support), to_float(query), desc, device)


def md_episode(store: ArrayStore, generator: torch.Generator, config: EpisodeConfig) -> Episode:
    """One Meta-Dataset episode drawn from an ArrayStore (one gather for support, one for query)."""
    sampler = sampler_for(store, config)
    rng = episode_rng(generator)
    desc = sampler.sample(rng)
    picks = pick_examples(desc, sampler.counts, rng)
    table = sampler.table
    assert table is not None  # set by sampler_for
    rows = [table[int(c)][p] for c, p in zip(desc.classes, picks, strict=True)]
    sup = np.concatenate([r[: int(s)] for r, s in zip(rows, desc.support, strict=True)])
    qry = np.concatenate([r[int(s) :] for r, s in zip(rows, desc.support, strict=True)])
    dev = store.device
    # index_select: on CPU about 9x faster than advanced indexing for uint8 images (measured)
    support = store.to_float(store.data.index_select(0, torch.from_numpy(sup).to(dev)))
    query = store.to_float(store.data.index_select(0, torch.from_numpy(qry).to(dev)))
    return _episode(support, query, desc, dev)


def config_from_settings(settings: Any) -> EpisodeConfig:
    """The episode config a run's settings ask for (``md_*`` settings; None keeps the paper's)."""
    keys = {
        "md_max_way": "max_ways_upper_bound",
        "md_max_support": "max_support_set_size",
        "md_way": "num_ways",
        "md_shot": "num_support",
        "md_query": "num_query",
    }
    values = settings if isinstance(settings, Mapping) else settings.as_dict()
    return EpisodeConfig(**{v: values[k] for k, v in keys.items() if values.get(k)})
