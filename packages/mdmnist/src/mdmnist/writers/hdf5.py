"""Native HDF5: one file per split with all images as one chunked, deflate-compressed uint8 array."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

# Chunks sized for random access by a few-shot sampler: reading one image inflates one chunk, so
# a chunk holds at most CHUNK_IMAGES images and about CHUNK_BYTES of raw pixels (it fits h5py's
# default 1 MiB chunk cache). See the README for the layout and the reading cost.
CHUNK_IMAGES = 32
CHUNK_BYTES = 256 << 10


def hdf5_filename(split: str) -> str:
    """File name of SPLIT's native HDF5 file."""
    return f"{split}.h5"


def images_per_chunk(count: int, height: int, width: int) -> int:
    """Images of one class per HDF5 chunk: CHUNK_IMAGES, fewer for big images or small classes."""
    return max(1, min(count, CHUNK_IMAGES, CHUNK_BYTES // (height * width)))


class NativeHdf5Writer:
    """Writes ``images`` [classes, per_class, H, W] and ``class_names`` S{n} for one split."""

    def __init__(
        self,
        path: Path,
        class_names: Sequence[str],
        count: int,
        height: int,
        width: int,
        chunk: int,
        attrs: dict,
    ) -> None:
        self.chunk = chunk
        self.file = h5py.File(path, "w")
        num_digit = len(class_names[0])
        self.file.create_dataset(
            "class_names", data=np.array(class_names, dtype=f"S{num_digit}"), track_times=False
        )
        # Chunks are deflated by the workers and stored as-is with write_direct_chunk; any
        # HDF5 reader inflates them with the standard gzip filter declared here.
        self.images = self.file.create_dataset(
            "images",
            shape=(len(class_names), count, height, width),
            dtype=np.uint8,
            chunks=(1, chunk, height, width),
            compression="gzip",
            compression_opts=1,
            track_times=False,
        )
        for key, value in attrs.items():
            self.file.attrs[key] = value

    def write_class(self, index: int, chunks: Sequence[bytes]) -> None:
        """Store the pre-compressed chunks of class number INDEX."""
        for j, data in enumerate(chunks):
            self.images.id.write_direct_chunk((index, j * self.chunk, 0, 0), data, 0)

    def close(self) -> None:
        """Flush and close the file."""
        self.file.close()


def load_split(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Whole split in memory: images [classes, per_class, H, W] uint8 and the class names."""
    with h5py.File(path, "r") as f:
        images = f["images"][...]
        names = [b.decode("ascii") for b in f["class_names"][...]]
    return images, names
