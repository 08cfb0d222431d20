"""Per-class work done in worker processes: composite, digest, encode, write PNG files."""

from __future__ import annotations

import hashlib
import signal
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .composite import composite
from .png import deflate, encode_gray

# Source digits of the worker process, set once by init_worker (inherited on fork).
_DIGITS: np.ndarray | None = None


def init_worker(digits: np.ndarray, ignore_sigint: bool = True) -> None:
    """Give the process its source digits; workers leave Ctrl-C to the parent, which cleans up."""
    global _DIGITS
    _DIGITS = digits
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class ClassJob:
    """Everything needed to render one class: its draws, geometry and wanted outputs."""

    split: str
    index: int
    name: str
    src: np.ndarray
    ys: np.ndarray
    cols: np.ndarray
    height: int
    width: int
    chunk: int  # images per HDF5 chunk (and per compositing block)
    png_dir: str | None = None  # write the PNG tree files for this class here
    want_png_bytes: bool = False  # return the PNG bytes (torchmeta export)
    want_hdf5: bool = False  # return the compressed HDF5 chunks


@dataclass
class ClassResult:
    """Digests and encoded payloads of one class, returned to the parent in order."""

    split: str
    index: int
    name: str
    pixels_sha256: str
    png_sha256: str | None = None
    png_bytes: list[bytes] | None = None
    hdf5_chunks: list[bytes] = field(default_factory=list)


def png_filename(k: int, name: str) -> str:
    """File name of image K of class NAME in the reference layout."""
    return f"{k}_{name}.png"


def render_class(job: ClassJob) -> ClassResult:
    """Render one class block by block so memory stays bounded by one chunk of images."""
    assert _DIGITS is not None, "init_worker was not called"
    pixels = hashlib.sha256()
    wants_png = job.png_dir is not None or job.want_png_bytes
    png_hash = hashlib.sha256() if wants_png else None
    result = ClassResult(job.split, job.index, job.name, "")
    pngs: list[bytes] = []
    if job.png_dir is not None:
        Path(job.png_dir).mkdir(parents=True, exist_ok=True)
    count = len(job.src)
    for start in range(0, count, job.chunk):
        stop = min(start + job.chunk, count)
        sl = slice(start, stop)
        block = composite(_DIGITS, job.src[sl], job.ys[sl], job.cols[sl], job.height, job.width)
        pixels.update(block.data)
        if job.want_hdf5:
            if stop - start < job.chunk:  # direct chunk writes need whole chunks: pad with zeros
                full = np.zeros((job.chunk, job.height, job.width), dtype=np.uint8)
                full[: stop - start] = block
                block_bytes = full.data
            else:
                block_bytes = block.data
            result.hdf5_chunks.append(deflate(block_bytes))
        if wants_png:
            encoded = encode_gray(block)
            for k, data in enumerate(encoded, start):
                png_hash.update(data)
                if job.png_dir is not None:
                    with open(Path(job.png_dir) / png_filename(k, job.name), "wb") as fh:
                        fh.write(data)
            if job.want_png_bytes:
                pngs.extend(encoded)
    result.pixels_sha256 = pixels.hexdigest()
    if png_hash is not None:
        result.png_sha256 = png_hash.hexdigest()
    if job.want_png_bytes:
        result.png_bytes = pngs
    return result
