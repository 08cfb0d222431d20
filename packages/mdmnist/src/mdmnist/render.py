"""Per-class work done in worker processes: composite, digest, encode, write PNG files."""

from __future__ import annotations

import hashlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .composite import composite
from .lifecycle import STOP_SIGNALS, die_with_parent
from .png import deflate, encode_gray

# Source digits of the worker process, set once by init_worker (inherited on fork).
_DIGITS: np.ndarray | None = None


def init_worker(digits: np.ndarray, in_process: bool = False, parent_pid: int = 0) -> None:
    """Give the process its source digits. A worker process leaves Ctrl-C to its parent (which
    cleans up), stops at once on SIGTERM/SIGHUP and ends by itself when the parent dies."""
    global _DIGITS
    _DIGITS = digits
    if in_process:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)  # not the parent's handler, inherited through fork
    if parent_pid:
        die_with_parent(parent_pid)


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


FILE_THREADS = 4  # file creation waits on the disk and releases the GIL: overlap a few


def write_file(path: str, data: bytes) -> None:
    """Create PATH (it must not exist yet) holding DATA."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # less the umask
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def render_class(job: ClassJob) -> ClassResult:
    """Render one class block by block so memory stays bounded by one chunk of images."""
    assert _DIGITS is not None, "init_worker was not called"
    pixels = hashlib.sha256()
    wants_png = job.png_dir is not None or job.want_png_bytes
    png_hash = hashlib.sha256() if wants_png else None
    result = ClassResult(job.split, job.index, job.name, "")
    pngs: list[bytes] = []
    files = None
    if job.png_dir is not None:
        Path(job.png_dir).mkdir(parents=True, exist_ok=True)
        files = ThreadPoolExecutor(FILE_THREADS)
    try:
        _render_blocks(job, result, pixels, png_hash, pngs, files)
    finally:
        if files is not None:
            files.shutdown(wait=True)
    result.pixels_sha256 = pixels.hexdigest()
    if png_hash is not None:
        result.png_sha256 = png_hash.hexdigest()
    if job.want_png_bytes:
        result.png_bytes = pngs
    return result


def render_batch(jobs: list[ClassJob]) -> list[ClassResult]:
    """Render several (small) classes in one trip to a worker process."""
    return [render_class(job) for job in jobs]


def _render_blocks(job, result, pixels, png_hash, pngs, files) -> None:
    """Composite, digest and encode the class block by block (at most job.chunk images at once)."""
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
        if png_hash is not None:
            encoded = encode_gray(block)
            for data in encoded:
                png_hash.update(data)
            if files is not None:
                paths = [
                    os.path.join(job.png_dir, png_filename(k, job.name)) for k in range(start, stop)
                ]
                list(files.map(write_file, paths, encoded))  # re-raises any OSError here
            if job.want_png_bytes:
                pngs.extend(encoded)
