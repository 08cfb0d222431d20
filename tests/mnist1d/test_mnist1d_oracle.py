"""make_dataset against the reference's own outputs (the oracle written by make_oracle.py)."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from mnist1d.arguments import DATASET_ARGS
from mnist1d.cli import main
from mnist1d.data import get_dataset_args, make_dataset
from mnist1d.storage import load_dataset

TOLERANCE = 1e-9


def assert_matches(ours: dict, reference: dict[str, np.ndarray]) -> None:
    """Same shapes and dtypes, labels identical, values within 1e-9 of the reference."""
    for key in ("x", "x_test", "t"):
        assert ours[key].shape == reference[key].shape, key
        assert ours[key].dtype == reference[key].dtype, key
        # nan where the reference has nan (non-finite arguments), within TOLERANCE elsewhere
        np.testing.assert_allclose(ours[key], reference[key], rtol=0, atol=TOLERANCE, err_msg=key)
    for key in ("y", "y_test"):
        assert ours[key].dtype == reference[key].dtype, key
        np.testing.assert_array_equal(ours[key], reference[key], err_msg=key)
    for key in ("x", "t", "y"):
        np.testing.assert_array_equal(
            np.asarray(ours["templates"][key]), reference[f"templates_{key}"]
        )


def test_make_dataset_matches_reference(oracle_case) -> None:
    args = get_dataset_args()
    for key, value in oracle_case.overrides.items():
        setattr(args, key, value)
    ours = make_dataset(args)
    assert list(ours) == ["x", "x_test", "y", "y_test", "t", "templates"]
    assert_matches(ours, oracle_case.arrays)


def test_global_generators_left_like_reference(oracle_case) -> None:
    """Code that draws from np.random / random after make_dataset sees the reference's numbers."""
    args = get_dataset_args()
    for key, value in oracle_case.overrides.items():
        setattr(args, key, value)
    make_dataset(args)
    np.testing.assert_array_equal(np.random.rand(3), oracle_case.arrays["numpy_after"])
    np.testing.assert_array_equal(
        [random.random() for _ in range(3)], oracle_case.arrays["python_after"]
    )


def test_oracle_covers_every_argument(oracle_cases) -> None:
    overridden = {key for case in oracle_cases for key in case.overrides}
    assert set(DATASET_ARGS) <= overridden
    assert any(not case.overrides for case in oracle_cases)
    assert len(oracle_cases) >= 10


def test_cli_make_pickle_matches_reference(oracle_defaults, tmp_path: Path) -> None:
    out = tmp_path / "mnist1d_data.pkl"
    result = CliRunner().invoke(main, ["make", "--output", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, "rb") as fh:
        data = pickle.load(fh)
    assert list(data) == ["x", "x_test", "y", "y_test", "t", "templates"]
    assert sorted(data["templates"]) == ["t", "x", "y"]
    assert_matches(data, oracle_defaults.arrays)


def test_cli_make_npz_matches_reference(oracle_defaults, tmp_path: Path) -> None:
    out = tmp_path / "mnist1d_data.npz"
    result = CliRunner().invoke(main, ["make", "--output", str(out)])
    assert result.exit_code == 0, result.output
    data, args = load_dataset(out)
    assert args == {k: v for k, v in get_dataset_args(as_dict=True).items() if k != "url"}
    assert_matches(data, oracle_defaults.arrays)
