"""mnist-super: classes with several known modes, each the union of 3 DoubleMNIST classes.

A super-class joins ``parts`` (default 3) DoubleMNIST classes of the same split that share no
digit in the same position (e.g. '02', '47' and '68'), so its images form ``parts`` visually
distinct modes: a ground truth for methods that model a class by several clusters (Magnet
loss, RepMet). Rule: walk the split's classes in sorted order; a super-class takes the first
unused class, then the next unused classes, in order, that share no digit position with any of
its members; classes left over when no full super-class can be formed are dropped. The
published DoubleMNIST split (64/16/20 classes) gives 20 / 5 / 6 super-classes, and the test
classes are unseen in training, as in any few-shot split. ``meta['modes']`` lists each
super-class's parts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fsbench.data.store import ArrayStore
from fsbench.errors import FsbenchError

PARTS = 3


def group_classes(names: list[str], parts: int = PARTS) -> list[list[str]]:
    """The split's class names grouped into super-classes of ``parts`` distinct classes."""
    unused = sorted(names)
    groups: list[list[str]] = []
    while unused:
        group = [unused[0]]
        for name in unused[1:]:
            if len(group) == parts:
                break
            if all(not _share_position(name, other) for other in group):
                group.append(name)
        if len(group) < parts:
            unused.remove(group[0])  # no partner left for it
            continue
        groups.append(group)
        unused = [n for n in unused if n not in group]
    return groups


def _share_position(a: str, b: str) -> bool:
    """Whether two class names have the same digit at some position ('25' and '55' do)."""
    return any(x == y for x, y in zip(a, b, strict=True))


def super_classes(store: ArrayStore, parts: int = PARTS) -> ArrayStore:
    """The split's images relabelled by super-class (images of dropped classes left out)."""
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 2:
        raise FsbenchError(f"parts must be an integer >= 2, got {parts!r}")
    groups = group_classes(store.class_names, parts)
    if len(groups) < 2:
        raise FsbenchError(
            f"{store.num_classes} classes make {len(groups)} super-class(es) of {parts}; "
            "need at least 2"
        )
    index = {name: i for i, name in enumerate(store.class_names)}
    new_label = torch.full((store.num_classes,), -1, dtype=torch.int64)
    for g, group in enumerate(groups):
        for name in group:
            new_label[index[name]] = g
    labels = new_label.to(store.device)[store.labels]
    keep = labels >= 0
    meta = {
        **store.meta,
        "super_classes": "unions of DoubleMNIST classes sharing no digit position",
        "modes": {"+".join(g): g for g in groups},
        "parts": parts,
        "label": "mnist-super (DoubleMNIST classes joined in threes)",
    }
    return ArrayStore(
        store.data[keep],
        labels[keep],
        ["+".join(g) for g in groups],
        store.device,
        meta=meta,
    )


def load_mnist_super(
    split: str, *, data_root: Path, device: torch.device, parts: int = PARTS, **options
) -> ArrayStore:
    """One split of mnist-super: the DoubleMNIST split (generated if needed) joined in threes."""
    from fsbench.data.mdmnist_source import load_mdmnist

    return super_classes(
        load_mdmnist(2, split, data_root=data_root, device=device, **options), parts
    )
