"""Pictures of a dataset: a few signals per class beside each class's template."""

from __future__ import annotations

from typing import Any

import numpy as np


def dataset_figure(data: dict[str, Any], per_class: int = 4, seed: int = 0) -> Any:
    """A matplotlib Figure: one column per class, the template on top, ``per_class`` signals below."""
    from matplotlib.figure import Figure  # no pyplot: works headless and leaves the backend alone

    templates = data["templates"]
    classes = np.asarray(templates["y"])
    xs, ys, t = np.asarray(data["x"]), np.asarray(data["y"]), np.asarray(data["t"])
    rows = per_class + 1
    fig = Figure(figsize=(1.4 * len(classes), 1.6 * rows), dpi=100)
    axes = fig.subplots(rows, len(classes), squeeze=False)
    rng = np.random.default_rng(seed)
    for col, label in enumerate(classes.tolist()):
        ax = axes[0, col]
        ax.plot(templates["x"][col], templates["t"], "C3-", linewidth=2)
        ax.set_title(f"class {label}", fontsize=10)
        ax.invert_yaxis()
        members = np.flatnonzero(ys == label)
        picks = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for row in range(1, rows):
            ax = axes[row, col]
            if row - 1 < len(picks):
                ax.plot(xs[picks[row - 1]], t, "k-", linewidth=1)
                ax.invert_yaxis()
            else:
                ax.set_axis_off()
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("template", fontsize=9)
    if rows > 1:
        axes[1, 0].set_ylabel("samples", fontsize=9)
    fig.suptitle(f"MNIST-1D: {len(xs)} training signals of length {xs.shape[1]}", fontsize=11)
    fig.tight_layout()
    return fig
