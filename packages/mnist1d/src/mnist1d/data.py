"""The reference's public API: ``get_dataset_args``, ``get_templates``, ``make_dataset``, ``get_dataset``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mnist1d.arguments import DEFAULTS, check_args
from mnist1d.generator import generate
from mnist1d.utils import ObjectView

# The ten digit templates (12 points each), before whitening: published constants of MNIST-1D.
_DIGITS = (
    (5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5),
    (5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5),
    (5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5),
    (5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5),
    (5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5),
    (5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5),
    (5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5),
    (5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5),
)


def get_dataset_args(as_dict: bool = False) -> ObjectView | dict[str, Any]:
    """The default dataset arguments, as an ObjectView (attribute access) or, with as_dict, a dict."""
    d = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULTS.items()}
    return d if as_dict else ObjectView(d)


def get_templates() -> dict[str, np.ndarray]:
    """The ten 1-D digit templates: whitened, starting and ending at 0, scaled by 1/6 (x, t, y)."""
    x = np.array(_DIGITS, dtype=np.float64)
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]
    return {
        "x": x / 6.0,
        "t": np.linspace(-5, 5, x.shape[1]) / 6.0,
        "y": np.arange(len(_DIGITS)),
    }


def make_dataset(
    args: Any = None,
    template: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Generate MNIST-1D: the same arrays as the reference's ``make_dataset`` for the same args.

    ``args`` is an ObjectView/namespace or a dict (missing keys take the defaults); bad values raise
    ValueError naming the argument. ``progress``, if given, is called with the number of samples
    finished after each chunk. Like the reference, this seeds Python's ``random`` and leaves NumPy's
    global generator where the reference would leave it.
    """
    templates = get_templates() if template is None else template
    checked = check_args(get_dataset_args() if args is None else args, len(templates["y"]))
    return generate(checked, templates, progress=progress)


def get_dataset(
    args: Any = None,
    path: str | os.PathLike[str] | None = None,
    verbose: bool = True,
    download: bool = False,
    regenerate: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Load the dataset from ``path`` if you gave one and it exists, else generate it (and save it there).

    Unlike the reference, nothing is downloaded unless ``download=True`` and no file is read or written
    unless you pass ``path``. A ``.pkl`` file is unpickled only because you named it: pass only files
    you trust. ``.npz`` and ``.h5`` files (see ``mnist1d make``) load without unpickling.
    """
    from mnist1d.storage import download_file, load_dataset, save_dataset

    if download and regenerate:
        raise ValueError(
            "download and regenerate cannot both be True: download the original or generate"
        )
    if args is None:
        args = get_dataset_args()
    if download:
        url = getattr(args, "url", None) or DEFAULTS["url"]
        target = os.fspath(path) if path is not None else "./mnist1d_data.pkl"
        if os.path.exists(target):
            _say(verbose, f"File {target} already exists. Skipping download.")
        else:
            _say(verbose, f"Downloading MNIST1D dataset from {url}")
            download_file(url, target)
            _say(verbose, f"Saving to {target}")
        data, _ = load_dataset(target, allow_pickle=True)
        return data
    if path is not None and not regenerate and os.path.exists(path):
        data, _ = load_dataset(path, allow_pickle=True)
        _say(verbose, f"Successfully loaded data from {path}")
        return data
    dataset = make_dataset(args, **kwargs)
    if path is not None:
        save_dataset(dataset, path, args=check_args(args).to_dict(), overwrite=True)
        _say(verbose, f"Saved dataset to {path}")
    return dataset


def _say(verbose: bool, message: str) -> None:
    """Print a status line when verbose (the reference's chatty get_dataset)."""
    if verbose:
        print(message)
