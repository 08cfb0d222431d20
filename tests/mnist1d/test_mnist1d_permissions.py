"""Output files get the permissions the umask gives (0644 under umask 022), as open() would."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from mnist1d.cli import main


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request: pytest.FixtureRequest):
    """Run the test under this umask, then restore the old one."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


@pytest.mark.parametrize("name", ["d.npz", "d.h5", "d.pkl"])
def test_make_respects_the_umask(tmp_path: Path, umask: int, name: str) -> None:
    out = tmp_path / name
    result = CliRunner().invoke(main, ["make", "--num-samples", "100", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
