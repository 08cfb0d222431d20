"""Dataset arguments: the reference's defaults and the checks that turn bad values into one clear error."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from mnist1d.utils import as_mapping

URL = "https://github.com/greydanus/mnist1d/raw/master/mnist1d_data.pkl"

# Same names, values and order as the reference's get_dataset_args().
DEFAULTS: dict[str, Any] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
    "url": URL,
}

# The arguments that shape the generated numbers (everything but the download url).
DATASET_ARGS = tuple(k for k in DEFAULTS if k != "url")

# Legacy NumPy seeding accepts 0 <= seed < 2**32; randint's 32-bit path covers max_translation <= 2**32.
_MAX_SEED = 2**32 - 1
_MAX_TRANSLATION = 2**32


class ArgumentError(ValueError):
    """A dataset argument outside what is allowed; ``name`` is the argument, ``detail`` what is allowed."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"{name} {detail}")


@dataclass(frozen=True)
class DatasetArgs:
    """Checked, typed dataset arguments (what the generator actually uses)."""

    num_samples: int
    train_split: float
    template_len: int
    padding: tuple[int, int]
    scale_coeff: float
    max_translation: int
    corr_noise_scale: float
    iid_noise_scale: float
    shear_scale: float
    shuffle_seq: bool
    final_seq_length: int
    seed: int | None

    @property
    def dilated_len(self) -> int:
        """Length of the signal between padding and subsampling (template_len + padding high)."""
        return self.template_len + self.padding[1]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict in the reference's key order (padding as a list)."""
        d = {k: getattr(self, k) for k in DATASET_ARGS}
        d["padding"] = list(self.padding)
        return d


def _int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """An integer (not bool) within [minimum, maximum]."""
    allowed = (
        f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(name, f"must be {allowed} (got {value!r})")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise ArgumentError(name, f"must be {allowed} (got {value})")
    return value


def _float(name: str, value: Any, minimum: float = 0.0) -> float:
    """A finite real number >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ArgumentError(name, f"must be a finite number >= {minimum:g} (got {value!r})")
    if value < minimum:
        raise ArgumentError(name, f"must be a finite number >= {minimum:g} (got {value!r})")
    return float(value)


def check_args(args: Any, num_classes: int = 10) -> DatasetArgs:
    """Validate an args object or dict (missing keys take the defaults); raise ArgumentError if bad."""
    given = as_mapping(args)
    merged = {k: given.get(k, DEFAULTS[k]) for k in DATASET_ARGS}

    num_samples = _int("num_samples", merged["num_samples"], num_classes)
    split = merged["train_split"]
    if isinstance(split, bool) or not isinstance(split, numbers.Real) or not 0 < split < 1:
        raise ArgumentError(
            "train_split", f"must be a number strictly between 0 and 1 (got {split!r})"
        )
    template_len = _int("template_len", merged["template_len"], 1)

    padding = merged["padding"]
    try:
        low, high = padding
    except (TypeError, ValueError):
        raise ArgumentError(
            "padding", f"must be two integers [low, high] (got {padding!r})"
        ) from None
    low = _int("padding", low, 0)
    high = _int("padding", high, 0)
    if low > high:
        raise ArgumentError("padding", f"must have low <= high (got [{low}, {high}])")

    if template_len + high < 2:
        raise ArgumentError(
            "template_len", f"plus padding high must be >= 2 (got {template_len} + {high})"
        )

    max_translation = _int("max_translation", merged["max_translation"], 1, _MAX_TRANSLATION)
    final_seq_length = _int("final_seq_length", merged["final_seq_length"], 2)
    seed = merged["seed"]
    if seed is not None:
        seed = _int("seed", seed, 0, _MAX_SEED)
    shuffle_seq = merged["shuffle_seq"]
    if not isinstance(shuffle_seq, bool | int) or shuffle_seq not in (0, 1):
        raise ArgumentError("shuffle_seq", f"must be True or False (got {shuffle_seq!r})")

    return DatasetArgs(
        num_samples=num_samples,
        train_split=float(split),
        template_len=template_len,
        padding=(low, high),
        scale_coeff=_float("scale_coeff", merged["scale_coeff"]),
        max_translation=max_translation,
        corr_noise_scale=_float("corr_noise_scale", merged["corr_noise_scale"]),
        iid_noise_scale=_float("iid_noise_scale", merged["iid_noise_scale"]),
        shear_scale=_float("shear_scale", merged["shear_scale"]),
        shuffle_seq=bool(shuffle_seq),
        final_seq_length=final_seq_length,
        seed=seed,
    )
