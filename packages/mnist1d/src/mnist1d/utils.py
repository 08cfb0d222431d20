"""Small helpers the reference exposes from ``mnist1d.utils``: seeding, pickling, ObjectView, plotting."""

from __future__ import annotations

import pickle
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PICKLE_PROTOCOL = 3  # the protocol the reference writes its dataset pickles with


class ObjectView:
    """Attribute access to a dict (``args.num_samples``); the dict itself is ``vars(view)``."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__ = d

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"ObjectView({items})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectView) and self.__dict__ == other.__dict__

    __hash__ = None  # mutable, like the dict it wraps


def set_seed(seed: int | None) -> None:
    """Seed Python's and NumPy's global generators, as the reference does before generating."""
    random.seed(seed)
    np.random.seed(seed)


def to_pickle(thing: Any, path: str) -> None:
    """Pickle ``thing`` to ``path`` (protocol 3, like the reference)."""
    with open(path, "wb") as handle:
        pickle.dump(thing, handle, protocol=PICKLE_PROTOCOL)


def from_pickle(path: str) -> Any:
    """Unpickle ``path``: only call this on files you trust, unpickling can run code."""
    with open(path, "rb") as handle:
        return pickle.load(handle)


def plot_signals(
    xs: Sequence[np.ndarray],
    t: np.ndarray,
    labels: Sequence[Any] | None = None,
    args: Any = None,
    ratio: float = 2.6,
    do_transform: bool = False,
    dark_mode: bool = False,
    zoom: float = 1,
) -> Any:
    """Draw ten signals side by side, upright like digits (the reference's notebook figure)."""
    import matplotlib.pyplot as plt

    from mnist1d.transform import transform

    cols = 10
    fig = plt.figure(figsize=[cols * 1.5, 1.5 * ratio], dpi=60)
    for ix in range(cols):
        ax = fig.add_subplot(1, cols, ix + 1)
        x, tt = np.asarray(xs[ix]), np.asarray(t)
        if do_transform:
            if args is None:
                raise ValueError("plot_signals: do_transform=True needs args")
            x, tt = transform(x, tt, args)
        if dark_mode:
            ax.plot(x, tt, "wo", linewidth=6)
            ax.set_facecolor("k")
        else:
            ax.plot(x, tt, "k-", linewidth=2)
        if labels is not None:
            ax.set_title(f"label={labels[ix]}", fontsize=22)
        ax.set_xlim(-zoom, zoom)
        ax.set_ylim(-zoom, zoom)
        ax.invert_yaxis()
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0, hspace=0)
    fig.tight_layout()
    return fig


def as_mapping(args: Any) -> Mapping[str, Any]:
    """The attributes of an args object (ObjectView, namespace) or the dict itself."""
    if isinstance(args, Mapping):
        return args
    try:
        return vars(args)
    except TypeError:
        raise TypeError(
            f"args must be a dict or an object with attributes, got {type(args).__name__}"
        ) from None
