"""Same inputs, same bytes: every output file is identical for 1 and 2 workers and across runs."""

from __future__ import annotations

import mdmnist


def _tree(root):
    """Relative path -> bytes of every file under ROOT."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_workers_do_not_change_a_single_byte(tmp_path):
    kwargs = dict(
        num_digit=2,
        num_image_per_class=7,
        seed=31,
        formats=("png", "hdf5", "torchmeta"),
        progress=False,
    )
    one = _tree(mdmnist.generate(output=tmp_path / "w1", workers=1, **kwargs))
    two = _tree(mdmnist.generate(output=tmp_path / "w2", workers=2, **kwargs))
    assert len(one) == 100 * 7 + 3 * 3 + 1  # PNGs, 3 files per split, manifest
    assert one.keys() == two.keys()
    differing = [name for name in one if one[name] != two[name]]
    assert differing == []


def test_seed_changes_the_images(tmp_path):
    a = mdmnist.generate(
        num_digit=1,
        num_image_per_class=3,
        seed=1,
        output=tmp_path / "a",
        formats=("hdf5",),
        progress=False,
    )
    b = mdmnist.generate(
        num_digit=1,
        num_image_per_class=3,
        seed=2,
        output=tmp_path / "b",
        formats=("hdf5",),
        progress=False,
    )
    assert (a / "train.h5").read_bytes() != (b / "train.h5").read_bytes()


def test_zlib_ng_writes_the_bytes_of_the_standard_zlib(tmp_path, monkeypatch):
    """Deflate runs on zlib-ng for speed; its level-1 run-length streams (PNG and HDF5 chunks)
    are byte for byte those of CPython's zlib, so the files are what they were before."""
    import zlib

    import mdmnist.png

    kwargs = dict(
        num_digit=2,
        num_image_per_class=40,  # two HDF5 chunks per class, one of them padded
        seed=5,
        formats=("png", "hdf5", "torchmeta"),
        workers=1,
        progress=False,
    )
    fast = _tree(mdmnist.generate(output=tmp_path / "ng", **kwargs))
    monkeypatch.setattr(mdmnist.png, "zlib_ng", zlib)
    standard = _tree(mdmnist.generate(output=tmp_path / "std", **kwargs))
    assert fast.keys() == standard.keys()
    assert [name for name in fast if fast[name] != standard[name]] == []
