"""Every output file and folder gets the permissions the umask gives (0644/0755 under 022)."""

from __future__ import annotations

import os
import stat

import mdmnist
import pytest


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = mdmnist.generate(
            num_digit=1,
            num_image_per_class=2,
            output=tmp_path / "out",
            formats=("png", "hdf5", "torchmeta"),
            workers=2,
            progress=False,
        )
    finally:
        os.umask(old)
    paths = [out, *out.rglob("*")]
    modes = {stat.S_IMODE(p.stat().st_mode) for p in paths if p.is_file()}
    assert modes == {0o666 & ~umask}
    dirs = {stat.S_IMODE(p.stat().st_mode) for p in paths if p.is_dir()}
    assert dirs == {0o777 & ~umask}
