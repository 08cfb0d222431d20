"""MNIST-1D splits (and the spatially shuffled variant) as float32 [N, 40] stores.

train = the default dataset's 4,000 training signals, test = its 1,000 test signals: the published
protocol, untouched. val = the last 500 test signals (a subset of test, for monitoring only; the
MNIST-1D papers have no validation split and shrinking train would move the published numbers).
The shuffled variant applies ONE permutation of the 40 positions, drawn from
``numpy.random.RandomState(seed)``, to every split alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsbench.data.diskcache import load_arrays, save_arrays
from fsbench.data.store import ArrayStore
from fsbench.errors import FsbenchError

VAL_SIZE = 500
CLASS_NAMES = [str(d) for d in range(10)]


def _generate() -> dict[str, np.ndarray]:
    """The default MNIST-1D dataset (x, y, x_test, y_test) from mnist1d's reference-compatible API."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        raise FsbenchError(f"the mnist1d package is needed for this dataset: {e}") from None
    d = make_dataset(get_dataset_args())
    return {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}


def _dataset(data_root: Path) -> tuple[dict[str, np.ndarray], str]:
    """The default dataset, generated once and cached under ``data_root/mnist1d``."""
    try:
        import mnist1d

        version = str(getattr(mnist1d, "__version__", "unknown"))
    except ImportError as e:
        raise FsbenchError(f"the mnist1d package is needed for this dataset: {e}") from None
    cache = data_root / "mnist1d" / "mnist1d-default.npz"
    tag = f"mnist1d {version} default args"
    hit = load_arrays(cache, tag)
    if hit is not None:
        return hit, tag
    arrays = _generate()
    save_arrays(cache, tag, **arrays)
    return arrays, tag


def permutation(seed: int) -> np.ndarray:
    """The fixed permutation of the 40 positions used by mnist1d-shuffled for this seed."""
    return np.random.RandomState(seed).permutation(40)


def load_mnist1d(
    split: str, *, shuffled: bool, data_root: Path, device: torch.device, seed: int = 0
) -> ArrayStore:
    """One split of MNIST-1D, float32 signals [N, 40] and labels 0..9, on ``device``."""
    arrays, tag = _dataset(data_root)
    if split == "train":
        x, y, rule = arrays["x"], arrays["y"], "the 4,000 training signals (published protocol)"
    elif split == "test":
        x, y, rule = (
            arrays["x_test"],
            arrays["y_test"],
            "the 1,000 test signals (published protocol)",
        )
    else:
        x, y = arrays["x_test"][-VAL_SIZE:], arrays["y_test"][-VAL_SIZE:]
        rule = f"the last {VAL_SIZE} test signals: a subset of test, for monitoring only"
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(y):
        raise FsbenchError(f"mnist1d returned signals of shape {list(x.shape)}; expected [N, 40]")
    meta: dict[str, Any] = {"source": tag, "split_rule": rule}
    if shuffled:
        perm = permutation(seed)
        x = x[:, perm]
        meta["permutation_seed"] = seed
        meta["permutation"] = perm.tolist()
    data = torch.from_numpy(np.ascontiguousarray(x))
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return ArrayStore(data, labels, CLASS_NAMES, device, meta=meta)
