"""Size and time of a run before it starts, so that a 10-million-image set is never made by accident.

The figures are rough (within about 25 %): calibrated on DoubleMNIST and TripleMNIST runs of the
CLI with two workers on a 2-core machine (see the README). Deflated images cost about 173 bytes per
digit plus a little per background pixel; a PNG file adds its header and row filter bytes, and on
disk each file takes at least one 4 KiB block.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .shards import Shard, block
from .splits import split_counts

BYTES_PER_DIGIT = 173  # deflated (zlib level 1, RLE) bytes of one 28x28 digit
BYTES_PER_PIXEL = 1 / 200  # deflated bytes of one black background pixel
PNG_OVERHEAD = 140  # signature, IHDR, IDAT/IEND framing, one filter byte per row (compressed)
BLOCK = 4096  # smallest allocation of a file on common filesystems
SECONDS_PER_PIXEL = 3e-9  # compositing, hashing and deflating (zlib-ng), per worker
SECONDS_PER_FILE = 100e-6  # creating one PNG file, per worker
SECONDS_PER_TORCHMETA_IMAGE = 60e-6  # storing one PNG in the torchmeta HDF5 (main process)
SECONDS_PER_TFDS_IMAGE = 150e-6  # reading back, PNG-encoding and storing one image for TFDS
SECONDS_PER_CLASS = 0.3e-3  # drawing, dispatching and storing one class (main process)

MAX_IMAGES = 2_000_000  # above this (or MAX_BYTES, or the free space) the CLI asks for --yes
MAX_BYTES = 20 << 30


@dataclass(frozen=True)
class Estimate:
    """Expected images, bytes on disk per format, and wall time of one generation run."""

    num_digit: int
    classes: int
    images: int
    image_size: tuple[int, int]
    bytes_on_disk: dict[str, int]
    seconds: float
    workers: int

    def describe(self) -> str:
        """One line for the user: what will be made, how big, how long."""
        height, width = self.image_size
        sizes = ", ".join(f"{fmt} {_human(b)}" for fmt, b in self.bytes_on_disk.items())
        return (
            f"mdmnist: {self.num_digit} digit(s), {self.classes:,} classes, {self.images:,} "
            f"images of {height}x{width}; on disk about {sizes}; about "
            f"{_minutes(self.seconds)} with {self.workers} worker(s)"
        )

    def total_bytes(self) -> int:
        """Bytes on disk of all requested formats together."""
        return sum(self.bytes_on_disk.values())

    def refusal(self, free_bytes: int | None) -> str | None:
        """Why this run is too big to start without --yes, or None."""
        if self.images > MAX_IMAGES:
            return f"this run makes {self.images:,} images (more than {MAX_IMAGES:,})"
        if self.total_bytes() > MAX_BYTES:
            return f"this run writes about {_human(self.total_bytes())} (more than {_human(MAX_BYTES)})"
        if free_bytes is not None and self.total_bytes() > free_bytes:
            return (
                f"this run writes about {_human(self.total_bytes())} but only "
                f"{_human(free_bytes)} is free there"
            )
        return None


def _human(num_bytes: float) -> str:
    """Bytes as KiB/MiB/GiB/TiB with three significant digits."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024:
            return f"{num_bytes:.3g} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.3g} TiB"


def _minutes(seconds: float) -> str:
    """A duration in words: seconds under two minutes, else minutes or hours."""
    if seconds < 120:
        return f"{max(1, round(seconds))} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _image_bytes(num_digit: int, height: int, width: int) -> float:
    """Deflated bytes of one image (the HDF5 payload)."""
    return BYTES_PER_DIGIT * num_digit + BYTES_PER_PIXEL * height * width


def estimate(
    num_digit: int,
    image_size: tuple[int, int],
    per_class: int,
    ratios: tuple[int, int, int],
    formats: tuple[str, ...],
    workers: int,
    shard: Shard | None = None,
) -> Estimate:
    """Expected size and time of a run (or of shard K/N of it) with these (validated) arguments."""
    height, width = image_size
    counts = split_counts(num_digit, ratios)
    if shard is not None:
        counts = tuple(stop - start for start, stop in (block(c, shard) for c in counts))
    classes = sum(counts)
    images = classes * per_class
    deflated = _image_bytes(num_digit, height, width)
    png = deflated + PNG_OVERHEAD
    on_disk = {
        "png": images * max(BLOCK, png),
        "hdf5": images * deflated,
        "torchmeta": images * png,
        "tfds": images * png,
    }
    bytes_on_disk = {fmt: int(on_disk[fmt]) for fmt in formats}
    encodings = ("hdf5" in formats or "tfds" in formats) + (
        "png" in formats or "torchmeta" in formats
    )
    parallel = images * SECONDS_PER_PIXEL * height * width * encodings
    if "png" in formats:
        parallel += images * SECONDS_PER_FILE
    serial = classes * SECONDS_PER_CLASS
    if "torchmeta" in formats:
        serial += images * SECONDS_PER_TORCHMETA_IMAGE
    if "tfds" in formats:
        serial += images * SECONDS_PER_TFDS_IMAGE
    seconds = 1.0 + serial + parallel / max(1, workers)
    return Estimate(num_digit, classes, images, image_size, bytes_on_disk, seconds, workers)


def free_bytes(out: Path) -> int | None:
    """Free bytes on the filesystem that will hold OUT (its nearest existing ancestor)."""
    folder = out.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
