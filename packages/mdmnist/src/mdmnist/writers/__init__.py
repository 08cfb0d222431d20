"""On-disk formats: the PNG tree (written by workers), native HDF5 and the torchmeta export."""

from __future__ import annotations

FORMATS = ("png", "hdf5", "torchmeta")
