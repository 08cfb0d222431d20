"""Write the reference mnist1d's outputs for a list of argument sets into one .npz (the test oracle).

Run it where only the reference is installed (the nox session ``compat`` does this):

    python tests/mnist1d/make_oracle.py tests/mnist1d/oracle/reference.npz

It imports only the reference package, numpy and the standard library. For every case it stores the
arrays of ``make_dataset`` (``s{i}_x``, ``s{i}_y``, ...), the templates, three draws from NumPy's and
Python's global generators taken right after (the reference leaves them seeded), and, as JSON under
``cases``, each case's name and the arguments that differ from the defaults.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import warnings
from importlib.metadata import version

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

# Each case overrides some defaults; together they cover every argument that shapes the numbers.
CASES: list[tuple[str, dict]] = [
    ("defaults", {}),
    ("shuffle_seq", {"shuffle_seq": True}),
    ("seed_and_count", {"num_samples": 1234, "seed": 0, "train_split": 0.5}),
    (
        "no_padding_no_shift",
        {"padding": [0, 0], "max_translation": 1, "template_len": 20, "num_samples": 800},
    ),
    (
        "wide_padding_big_shift",
        {
            "padding": [10, 100],
            "max_translation": 200,
            "final_seq_length": 100,
            "num_samples": 1000,
        },
    ),
    (
        "noise_scales",
        {
            "corr_noise_scale": 0.0,
            "iid_noise_scale": 0.5,
            "shear_scale": 0.0,
            "scale_coeff": 0.0,
            "num_samples": 1000,
        },
    ),
    (
        "strong_shear_scale",
        {
            "shear_scale": 3.0,
            "scale_coeff": 1.5,
            "corr_noise_scale": 1.0,
            "seed": 7,
            "num_samples": 1500,
        },
    ),
    (
        "short_templates",
        {
            "template_len": 5,
            "padding": [1, 3],
            "max_translation": 3,
            "final_seq_length": 2,
            "num_samples": 600,
        },
    ),
    (
        "long_output_shuffled",
        {
            "template_len": 30,
            "padding": [20, 21],
            "final_seq_length": 200,
            "shuffle_seq": True,
            "num_samples": 2000,
            "train_split": 0.9,
        },
    ),
    (
        "odd_length",
        {"template_len": 13, "max_translation": 65537, "seed": 123456, "num_samples": 1500},
    ),
    (
        "max_seed_tiny",
        {"seed": 2**32 - 1, "num_samples": 19, "train_split": 0.3, "iid_noise_scale": 0.1},
    ),
    # Values outside the obvious ranges that the reference still turns into a dataset.
    (
        "all_train_negative_scales",
        {
            "train_split": 1.0,
            "scale_coeff": -0.4,
            "iid_noise_scale": -0.05,
            "corr_noise_scale": -0.3,
            "shear_scale": -1.0,
            "num_samples": 500,
        },
    ),
    (
        "reversed_padding_one_point",
        {
            "padding": [10, 5],
            "template_len": 0,
            "final_seq_length": 1,
            "train_split": -0.2,
            "shuffle_seq": 1,
            "num_samples": 300,
        },
    ),
    (
        "negative_high_padding_64bit_shift",
        {
            "padding": [3, -2],
            "template_len": 5,
            "max_translation": 2**40 + 3,
            "train_split": 0.0,
            "shuffle_seq": "yes",
            "num_samples": 300,
        },
    ),
    ("largest_shift_bound", {"max_translation": 2**63, "num_samples": 200, "train_split": 1.5}),
    ("empty_signals", {"final_seq_length": 0, "num_samples": 100}),
    ("nan_scale", {"scale_coeff": float("nan"), "num_samples": 100}),
    ("inf_corr_noise_no_padding", {"corr_noise_scale": float("inf"), "padding": [0, 0]}),
]


def run_case(overrides: dict) -> dict[str, np.ndarray]:
    """The reference's make_dataset for the defaults updated with ``overrides``, plus the RNG states after."""
    args = get_dataset_args()
    for key, value in overrides.items():
        setattr(args, key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the nan/inf and empty cases warn about invalid values
        data = make_dataset(args)
    arrays = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test", "t")}
    for k in ("x", "t", "y"):
        arrays[f"templates_{k}"] = np.asarray(data["templates"][k])
    arrays["numpy_after"] = np.random.rand(3)
    arrays["python_after"] = np.array([random.random() for _ in range(3)])
    return arrays


def main(argv: list[str]) -> int:
    """Generate every case and write them atomically to argv[0]."""
    if len(argv) != 1:
        print("usage: python make_oracle.py OUT.npz", file=sys.stderr)
        return 2
    out = os.path.abspath(argv[0])
    os.makedirs(os.path.dirname(out), exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for i, (name, overrides) in enumerate(CASES):
        for key, value in run_case(overrides).items():
            arrays[f"s{i}_{key}"] = value
        print(
            f"case {i} {name}: {arrays[f's{i}_x'].shape} train, {arrays[f's{i}_x_test'].shape} test"
        )
    meta = {
        "cases": [{"name": n, "overrides": o} for n, o in CASES],
        "mnist1d": version("mnist1d"),
        "numpy": np.__version__,
    }
    arrays["cases"] = np.array(json.dumps(meta))
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
