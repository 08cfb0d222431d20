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

# Legacy NumPy seeding accepts 0 <= seed < 2**32; choice(n) is randint(0, n), whose int64 bound allows
# n <= 2**63.
_MAX_SEED = 2**32 - 1
_MAX_TRANSLATION = 2**63


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

    @property
    def pad_range(self) -> tuple[int, int]:
        """Smallest and largest padding ``low + int(rand() * (high - low + 1))`` can give."""
        return pad_range(*self.padding)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict in the reference's key order (padding as a list)."""
        d = {k: getattr(self, k) for k in DATASET_ARGS}
        d["padding"] = list(self.padding)
        return d


def pad_range(low: int, high: int) -> tuple[int, int]:
    """Smallest and largest of ``low + int(u * (high - low + 1))`` over u in [0, 1).

    int() truncates towards zero, so when low > high the padding falls from low down to high + 2.
    """
    width = high - low + 1
    return (low, high) if width > 0 else (low + min(0, width + 1), low)


def _int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (bools count, as in the reference) within [minimum, maximum]."""
    if minimum is None:
        allowed = "an integer"
    elif maximum is None:
        allowed = f"an integer >= {minimum}"
    else:
        allowed = f"an integer in [{minimum}, {maximum}]"
    if not isinstance(value, numbers.Integral):
        raise ArgumentError(name, f"must be {allowed} (got {value!r})")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ArgumentError(name, f"must be {allowed} (got {value})")
    return value


def _real(name: str, value: Any, finite: bool = False) -> float:
    """A real number of any sign (the reference multiplies by it); with FINITE no nan or inf."""
    ok = isinstance(value, numbers.Real) and (not finite or math.isfinite(value))
    if not ok:
        kind = "a finite number" if finite else "a number"
        raise ArgumentError(name, f"must be {kind} (got {value!r})")
    return float(value)


def _truth(name: str, value: Any) -> bool:
    """The truth value of ``value``, as the reference's ``if args.shuffle_seq:`` takes it."""
    try:
        return bool(value)
    except Exception:  # e.g. an array with several elements has no truth value
        raise ArgumentError(name, f"must be true or false (got {value!r})") from None


def _padding(value: Any) -> tuple[int, int]:
    """Two integers whose padding draws are never negative (the reference's np.zeros would fail)."""
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ArgumentError(
            "padding", f"must be two integers [low, high] (got {value!r})"
        ) from None
    low, high = _int("padding", low), _int("padding", high)
    smallest = pad_range(low, high)[0]
    if smallest < 0:
        raise ArgumentError(
            "padding",
            f"[{low}, {high}] can draw a negative padding ({smallest}): "
            "need low >= 0 and high >= -2",
        )
    return low, high


def check_args(args: Any, num_classes: int = 10) -> DatasetArgs:
    """Validate an args object or dict (missing keys take the defaults); raise ArgumentError if bad.

    Every value the reference turns into a dataset is accepted with the same result; what is refused
    is what makes the reference fail (at once, or at the first unlucky draw).
    """
    given = as_mapping(args)
    merged = {k: given.get(k, DEFAULTS[k]) for k in DATASET_ARGS}
    low, high = _padding(merged["padding"])
    template_len = _int("template_len", merged["template_len"])
    if template_len + high < 2:
        raise ArgumentError(
            "template_len", f"plus padding high must be >= 2 (got {template_len} + {high})"
        )
    seed = merged["seed"]
    return DatasetArgs(
        num_samples=_int("num_samples", merged["num_samples"], num_classes),
        train_split=_real("train_split", merged["train_split"], finite=True),
        template_len=template_len,
        padding=(low, high),
        scale_coeff=_real("scale_coeff", merged["scale_coeff"]),
        max_translation=_int("max_translation", merged["max_translation"], 1, _MAX_TRANSLATION),
        corr_noise_scale=_real("corr_noise_scale", merged["corr_noise_scale"]),
        iid_noise_scale=_real("iid_noise_scale", merged["iid_noise_scale"]),
        shear_scale=_real("shear_scale", merged["shear_scale"]),
        shuffle_seq=_truth("shuffle_seq", merged["shuffle_seq"]),
        final_seq_length=_int("final_seq_length", merged["final_seq_length"], 0),
        seed=None if seed is None else _int("seed", seed, 0, _MAX_SEED),
    )
