"""MNIST-1D splits (and the spatially shuffled variant) as float32 [N, 40] stores.

train / test = the default dataset's 4,000 training and 1,000 test signals (Greydanus 2020,
``make_dataset(get_dataset_args())``), untouched. The shuffled variant is
``make_dataset(shuffle_seq=True)``, as the reference notebook made it: the same signals with one
permutation of the 40 positions drawn after the batch shuffle, train and test alike.

val is not part of either: 1,000 fresh signals, the test part of the same generator run with the
next seed (``seed + 1``; normalised by that run's own mean and std, as the generator does), with
the shuffled variant's permutation applied for mnist1d-shuffled. The reference has no validation
split; it is here for monitoring and model selection, never for the published protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsbench.data.diskcache import load_arrays, save_arrays
from fsbench.data.store import ArrayStore
from fsbench.errors import FsbenchError

CLASS_NAMES = [str(d) for d in range(10)]
KEYS = ("x", "y", "x_test", "y_test")


def _mnist1d_version() -> str:
    try:
        import mnist1d
    except ImportError as e:
        raise FsbenchError(
            f"the mnist1d package is needed for this dataset ({e}): pip install mnist1d-fast"
        ) from None
    return str(getattr(mnist1d, "__version__", "unknown"))


def _generate(**changes: Any) -> dict[str, np.ndarray]:
    """make_dataset(get_dataset_args() with ``changes``): x, y, x_test, y_test as arrays."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for key, value in changes.items():
        setattr(args, key, value)
    d = make_dataset(args)
    return {k: np.asarray(d[k]) for k in KEYS}


def _cached(data_root: Path, label: str, **changes: Any) -> tuple[dict[str, np.ndarray], str]:
    """One generator run, generated once and cached under ``data_root/mnist1d``."""
    tag = f"mnist1d {_mnist1d_version()} default args" + "".join(
        f", {k}={v}" for k, v in sorted(changes.items())
    )
    cache = data_root / "mnist1d" / f"mnist1d-{label}.npz"
    hit = load_arrays(cache, tag)
    if hit is not None:
        return hit, tag
    arrays = _generate(**changes)
    save_arrays(cache, tag, **arrays)
    return arrays, tag


def permutation_of(plain: np.ndarray, shuffled: np.ndarray) -> np.ndarray:
    """The permutation p with shuffled[:, j] == plain[:, p[j]] (up to float rounding).

    The generator normalises after permuting, so columns agree to ~1e-15, not bit for bit;
    each shuffled column is matched to its nearest plain column and the match is checked.
    """
    dist = ((shuffled.T[:, None, :] - plain.T[None, :, :]) ** 2).sum(-1)
    perm = dist.argmin(1)
    if sorted(perm.tolist()) != list(range(plain.shape[1])) or dist.min(1).max() > 1e-12:
        raise FsbenchError("mnist1d's shuffled dataset is not a permutation of the plain one")
    return perm


def load_mnist1d(
    split: str, *, shuffled: bool, data_root: Path, device: torch.device, seed: int = 0
) -> ArrayStore:
    """One split of MNIST-1D, float32 signals [N, 40] and labels 0..9, on ``device``."""
    from mnist1d.data import get_dataset_args

    base_seed = int(get_dataset_args().seed)
    plain, tag = _cached(data_root, "default")
    arrays, tag = _cached(data_root, "shuffled", shuffle_seq=True) if shuffled else (plain, tag)
    meta: dict[str, Any] = {"source": tag}
    if split == "train":
        x, y = arrays["x"], arrays["y"]
        meta["split_rule"] = "the 4,000 training signals (published protocol)"
    elif split == "test":
        x, y = arrays["x_test"], arrays["y_test"]
        meta["split_rule"] = "the 1,000 test signals (published protocol)"
    else:
        fresh, fresh_tag = _cached(data_root, "val", seed=base_seed + 1)
        x, y = fresh["x_test"], fresh["y_test"]
        meta["source"] = fresh_tag
        meta["split_rule"] = (
            f"1,000 fresh signals: the test part of the generator run with seed {base_seed + 1}, "
            "disjoint from train and test"
        )
        if shuffled:
            perm = permutation_of(plain["x"], arrays["x"])
            x = x[:, perm]
            meta["permutation"] = perm.tolist()
    if shuffled:
        meta["shuffle"] = "mnist1d make_dataset(shuffle_seq=True): one permutation of 40 positions"
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(y):
        raise FsbenchError(f"mnist1d returned signals of shape {list(x.shape)}; expected [N, 40]")
    data = torch.from_numpy(np.ascontiguousarray(x))
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return ArrayStore(data, labels, CLASS_NAMES, device, meta=meta)
