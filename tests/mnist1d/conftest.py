"""Fixtures for the mnist1d tests: the reference oracle (skipped, or failed when required, if absent)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
DEFAULT_ORACLE = HERE / "oracle" / "reference.npz"
ARRAY_KEYS = ("x", "y", "x_test", "y_test", "t")


@dataclass
class OracleCase:
    """One argument set of the oracle: its name, overrides of the defaults, and the reference arrays."""

    index: int
    name: str
    overrides: dict
    arrays: dict[str, np.ndarray]


def oracle_path() -> Path:
    """Where the oracle is: $MNIST1D_ORACLE, else tests/mnist1d/oracle/reference.npz."""
    return Path(os.environ.get("MNIST1D_ORACLE", DEFAULT_ORACLE))


def _missing_oracle() -> None:
    """Skip with how to make the oracle, or fail when MNIST1D_REQUIRE_ORACLE=1."""
    path = oracle_path()
    msg = (
        f"reference oracle {path} not found; make it with the reference installed: "
        f"python tests/mnist1d/make_oracle.py {path}  (or: nox -s compat)"
    )
    if os.environ.get("MNIST1D_REQUIRE_ORACLE") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def load_oracle() -> list[OracleCase] | None:
    """All cases of the oracle file, or None if there is no file."""
    path = oracle_path()
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["cases"]))
        cases = []
        for i, case in enumerate(meta["cases"]):
            prefix = f"s{i}_"
            arrays = {k[len(prefix) :]: z[k] for k in z.files if k.startswith(prefix)}
            cases.append(OracleCase(i, case["name"], case["overrides"], arrays))
    return cases


_CASES = load_oracle()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``oracle_case`` over every case in the oracle file (one skipping case without it)."""
    if "oracle_case" in metafunc.fixturenames:
        if _CASES is None:
            metafunc.parametrize("oracle_case", [None], ids=["no-oracle"], indirect=True)
        else:
            metafunc.parametrize("oracle_case", _CASES, ids=[c.name for c in _CASES], indirect=True)


@pytest.fixture
def oracle_case(request: pytest.FixtureRequest) -> OracleCase:
    """One oracle case (see pytest_generate_tests)."""
    if request.param is None:
        _missing_oracle()
    return request.param


@pytest.fixture
def oracle_cases() -> list[OracleCase]:
    """Every oracle case."""
    if _CASES is None:
        _missing_oracle()
    return _CASES


@pytest.fixture
def oracle_defaults(oracle_cases: list[OracleCase]) -> OracleCase:
    """The oracle case made with the default arguments."""
    return next(c for c in oracle_cases if c.name == "defaults" and not c.overrides)
