"""Meta-Dataset's images read from the records when an episode draws them (``--md-read stream``).

A whole Meta-Dataset split does not fit in memory (ILSVRC's 1.28 million training images are
about 190 GB decoded at 224x224), and the official TensorFlow pipeline never holds one: it
decodes each episode's images as it draws them. ``RecordImages`` does the same behind the one
interface fsbench's stores are read through (``data[rows]``, ``data.index_select(0, rows)``,
``shape``, ``dtype``): every class file is indexed once (record offsets, cached under the data
root), and indexing reads, CRC-checks, parses and decodes only the rows asked for, on a pool of
threads (PIL releases the GIL while it decodes and resizes). Rows are numbered class by class in
record order, as ``load_metadataset`` numbers the decoded split, and each image is decoded by the
same function, so both ways give the same episodes, byte for byte.
"""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsbench.data.diskcache import fingerprint, load_arrays, save_arrays
from fsbench.errors import FsbenchError

# Images decoded inline below this many rows (a pool's overhead is not worth it).
_POOL_MIN_ROWS = 8


def decode_threads() -> int:
    """Threads that decode a stream's images: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def record_offsets(path: Path) -> np.ndarray:
    """(start, length) of every record's data in a TFRecord file, [n, 2] int64, read once in
    order with both checksums of every record checked: a corrupt source fails before a run
    starts, not hours into one (``cached_offsets`` keeps the result)."""
    from fsbench.data.metadataset import masked_crc

    out: list[tuple[int, int]] = []
    pos = 0
    with open(path, "rb") as f:
        while head := f.read(12):
            if len(head) < 12:
                raise FsbenchError(f"{path}: truncated record header at byte {pos}")
            if masked_crc(head[:8]) != struct.unpack("<I", head[8:])[0]:
                raise FsbenchError(
                    f"{path}: corrupt record {len(out)} at byte {pos} (length checksum mismatch)"
                )
            (length,) = struct.unpack("<Q", head[:8])
            body = f.read(length + 4)
            if len(body) < length + 4:
                raise FsbenchError(f"{path}: truncated record {len(out)}")
            if masked_crc(body[:length]) != struct.unpack("<I", body[length:])[0]:
                raise FsbenchError(
                    f"{path}: corrupt record {len(out)} (data checksum mismatch); convert this "
                    "source again"
                )
            out.append((pos + 12, length))
            pos += 16 + length
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def cached_offsets(files: list[Path], cache: Path | None) -> list[np.ndarray]:
    """``record_offsets`` of every file, read from ``cache`` (one .npz) when the files are the
    same as when it was written (names, sizes, mtimes), else indexed and cached."""
    key = fingerprint(files)
    hit = load_arrays(cache, key) if cache is not None else None
    if hit is not None and len(hit["counts"]) == len(files):
        bounds = np.cumsum(hit["counts"])[:-1]
        return list(np.split(hit["offsets"], bounds))
    index = [record_offsets(p) for p in files]
    if cache is not None:
        counts = np.array([len(i) for i in index], dtype=np.int64)
        save_arrays(cache, key, counts=counts, offsets=np.concatenate(index))
    return index


class RecordImages:
    """A split's images as uint8 [N, 3, S, S] rows that are read from the records when indexed.

    ``files[k]`` is class k's TFRecord file, ``labels[k]`` the label its records carry (the
    source's class id), ``index[k]`` its records' (start, length); rows are class 0's records in
    order, then class 1's, and so on. Indexing with an int, a slice or an integer tensor/array
    returns a uint8 tensor on ``device``.
    """

    def __init__(
        self,
        files: list[Path],
        labels: list[int],
        index: list[np.ndarray],
        image_size: int,
        device: torch.device | str = "cpu",
        threads: int | None = None,
    ) -> None:
        self.files = list(files)
        self.record_labels = list(labels)
        self.index = index
        self.image_size = int(image_size)
        self.device = torch.device(device)
        self.threads = threads or decode_threads()
        counts = np.array([len(i) for i in index], dtype=np.int64)
        self.ends = np.cumsum(counts)
        self.starts = self.ends - counts
        self.shape = torch.Size(
            (int(self.ends[-1]) if len(counts) else 0, 3, image_size, image_size)
        )
        self.dtype = torch.uint8
        self.ndim = 4
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.shape[0])

    def __repr__(self) -> str:
        return f"RecordImages({len(self)} images of {len(self.files)} classes, {self.image_size}px)"

    def __getstate__(self) -> dict[str, Any]:  # a pool does not pickle (DataLoader workers)
        return {**self.__dict__, "_pool": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def to(self, device: torch.device | str) -> RecordImages:
        """The same rows, returned on ``device``."""
        return RecordImages(
            self.files, self.record_labels, self.index, self.image_size, device, self.threads
        )

    def row_classes(self) -> torch.Tensor:
        """Each row's class k (0..C-1), [N] int64: the store's labels."""
        counts = torch.as_tensor(self.ends - self.starts)
        return torch.repeat_interleave(torch.arange(len(counts)), counts)

    def read(self, row: int) -> np.ndarray:
        """Row ``row``, checked and decoded: uint8 [3, S, S]."""
        from fsbench.data.metadataset import decode_image, masked_crc, parse_example

        k = int(np.searchsorted(self.ends, row, side="right"))
        position = row - int(self.starts[k])
        path = self.files[k]
        start, length = (int(v) for v in self.index[k][position])
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(length + 4)
        if (
            len(body) < length + 4
            or masked_crc(body[:length]) != struct.unpack("<I", body[length:])[0]
        ):
            raise FsbenchError(
                f"{path}: corrupt record {position} (data checksum mismatch); convert this "
                "source again"
            )
        try:
            ex = parse_example(body[:length])
        except (ValueError, UnicodeDecodeError) as exc:
            raise FsbenchError(
                f"{path}: record {position} is not a tf.train.Example ({exc})"
            ) from None
        if not ex.get("image") or not ex.get("label"):
            raise FsbenchError(f"{path}: record {position} has no image or no label feature")
        if int(ex["label"][0]) != self.record_labels[k]:
            raise FsbenchError(
                f"{path}: record {position} has label {ex['label'][0]}, not {self.record_labels[k]}"
            )
        return decode_image(ex["image"][0], self.image_size, f"{path} record {position}")

    def _rows(self, idx: Any) -> np.ndarray:
        """The row numbers ``idx`` selects (int, slice, tensor, array or list), checked."""
        n = len(self)
        if isinstance(idx, slice):
            return np.arange(n)[idx]
        if isinstance(idx, torch.Tensor):
            idx = idx.detach().cpu().numpy()
        rows = np.asarray(idx)
        if rows.dtype == bool or not np.issubdtype(rows.dtype, np.integer):
            raise TypeError(f"RecordImages is indexed by integers or a slice, not {rows.dtype}")
        rows = np.where(rows < 0, rows + n, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} images")
        return rows

    def _decode(self, rows: np.ndarray) -> list[np.ndarray]:
        flat = [int(r) for r in rows.reshape(-1)]
        if len(flat) < _POOL_MIN_ROWS or self.threads == 1:
            return [self.read(r) for r in flat]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="md-decode")
        return list(self._pool.map(self.read, flat))

    def __getitem__(self, idx: Any) -> torch.Tensor:
        rows = self._rows(idx)
        s = self.image_size
        if rows.ndim == 0:
            return torch.from_numpy(self.read(int(rows)).copy()).to(self.device)
        images = self._decode(rows)
        # C order (stack would keep the decoder's channels-last strides, and convolutions sum
        # in another order on them): the layout indexing a held split gives
        out = np.empty((len(images), 3, s, s), dtype=np.uint8)
        for i, image in enumerate(images):
            out[i] = image
        return torch.from_numpy(out.reshape(*rows.shape, 3, s, s)).to(self.device)

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        """``self[index]`` for dim 0 (the one form fsbench's samplers use)."""
        if dim != 0:
            raise ValueError("RecordImages selects rows only (dim 0)")
        return self[index]
