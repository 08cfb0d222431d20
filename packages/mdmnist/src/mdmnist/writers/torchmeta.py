"""torchmeta export: ``{split}_data.hdf5`` (group ``datasets``, PNG bytes per class) and labels JSON.

Matches what torchmeta's DoubleMNIST/TripleMNIST download step builds from the published PNG
tree: labels sorted, and the images of a class in the sorted order of their file names
(``glob`` + ``sort``: 0, 1, 10, 100, ... ), each stored as a variable-length uint8 array.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ..render import png_filename


def data_filename(split: str) -> str:
    """File name of SPLIT's torchmeta data file."""
    return f"{split}_data.hdf5"


def labels_filename(split: str) -> str:
    """File name of SPLIT's torchmeta labels file."""
    return f"{split}_labels.json"


def torchmeta_order(count: int, name: str) -> list[int]:
    """Image numbers k in the order torchmeta stores them (sorted file names)."""
    return sorted(range(count), key=lambda k: png_filename(k, name))


class TorchmetaWriter:
    """Writes one split's torchmeta files; classes may arrive in any order."""

    def __init__(self, out_dir: Path, split: str, class_names: Sequence[str]) -> None:
        self.out_dir = out_dir
        self.split = split
        self.labels = sorted(class_names)
        self.file = h5py.File(out_dir / data_filename(split), "w")
        self.group = self.file.create_group("datasets")
        self.vlen = h5py.vlen_dtype(np.uint8)

    def write_class(self, name: str, pngs: Sequence[bytes]) -> None:
        """Store the PNG files of class NAME (given in image order k)."""
        order = torchmeta_order(len(pngs), name)
        data = np.empty(len(pngs), dtype=object)
        for i, k in enumerate(order):
            data[i] = np.frombuffer(pngs[k], dtype=np.uint8)
        dset = self.group.create_dataset(name, (len(pngs),), dtype=self.vlen, track_times=False)
        if len(pngs) == 1 or len({len(png) for png in pngs}) == 1:
            # h5py cannot store a one-element object array into vlen, and turns arrays of equal
            # lengths into one 2-D array that does not fit: store those image by image.
            for i, array in enumerate(data):
                dset[i] = array
        else:
            dset[...] = data

    def close(self) -> None:
        """Close the data file and write the labels JSON as torchmeta does (json.dump)."""
        self.file.close()
        with open(self.out_dir / labels_filename(self.split), "w") as fh:
            json.dump(self.labels, fh)
