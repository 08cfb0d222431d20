"""On-disk formats: the PNG tree (written by workers), native HDF5 and the torchmeta and TensorFlow Datasets
exports."""

from __future__ import annotations

FORMATS = ("png", "hdf5", "torchmeta", "tfds")
TFDS_DIR = "tfds"  # the TFDS export sits in OUT/tfds/<name>/<version>/
