"""Read MNIST-shaped IDX files (gzipped or raw), check their headers, sizes and checksums."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import MdmnistError

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
DIGIT_SIZE = 28

# sha256 of the decompressed canonical MNIST files (see the package README).
MNIST_SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


@dataclass(frozen=True)
class MnistPool:
    """The source pool: training images followed by test images, in file order."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) uint8
    num_train: int
    origin: str  # "embedded" or "user"
    sha256: dict[str, str] = field(default_factory=dict)


def embedded_dir() -> Path:
    """Directory of the MNIST files shipped inside the package."""
    return Path(str(resources.files("mdmnist") / "mnist"))


def _find(directory: Path, name: str) -> Path:
    """Locate NAME or NAME.gz in DIRECTORY."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise MdmnistError(f"mnist-path {directory} has no {name} or {name}.gz")


def read_bytes(path: Path) -> bytes:
    """Whole decompressed content of an IDX file; gzip is detected by its magic bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=fh) as gz:
                    return gz.read()
            return fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise MdmnistError(
            f"corrupt or truncated MNIST file {path} (gzip checksum/stream: {exc})"
        ) from None
    except OSError as exc:
        raise MdmnistError(f"cannot read MNIST file {path}: {exc.strerror or exc}") from None


def parse_idx(data: bytes, path: Path, magic: int, ndim: int) -> np.ndarray:
    """Check an IDX header (magic, dims) and the file size, return the uint8 array (a view)."""
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MdmnistError(
            f"MNIST file {path} is truncated: {len(data)} bytes, header needs {header}"
        )
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise MdmnistError(f"MNIST file {path} has magic {found}, expected {magic}")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [DIGIT_SIZE, DIGIT_SIZE]:
        raise MdmnistError(f"MNIST file {path} holds {dims[1]}x{dims[2]} images, expected 28x28")
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise MdmnistError(
            f"MNIST file {path} has {len(data)} bytes, its header {dims} implies {expected} (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _load(directory: Path, expected_sha256: dict[str, str] | None, origin: str) -> MnistPool:
    """Read the four files of DIRECTORY into a pool, checking headers, sizes and checksums."""
    arrays: dict[str, np.ndarray] = {}
    digests: dict[str, str] = {}
    for name in FILES:
        path = _find(directory, name)
        data = read_bytes(path)
        digest = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and digest != expected_sha256[name]:
            raise MdmnistError(
                f"MNIST file {path} fails its sha256 checksum ({digest[:12]}... != {expected_sha256[name][:12]}...)"
            )
        digests[name] = digest
        is_images = "images" in name
        arrays[name] = parse_idx(
            data, path, IMAGE_MAGIC if is_images else LABEL_MAGIC, 3 if is_images else 1
        )
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        if len(arrays[images]) != len(arrays[labels]):
            raise MdmnistError(
                f"{images} has {len(arrays[images])} images but {labels} has {len(arrays[labels])} labels"
            )
        lab = arrays[labels]
        if lab.size and int(lab.max()) > 9:
            raise MdmnistError(f"{labels} holds label {int(lab.max())}; labels must be 0..9")
    pool_images = np.concatenate([arrays[TRAIN_IMAGES], arrays[TEST_IMAGES]])
    pool_labels = np.concatenate([arrays[TRAIN_LABELS], arrays[TEST_LABELS]])
    return MnistPool(pool_images, pool_labels, len(arrays[TRAIN_IMAGES]), origin, digests)


@lru_cache(maxsize=2)
def _load_cached(directory: str, embedded: bool) -> MnistPool:
    """Process-wide cache: the embedded set is read, decompressed and checked once."""
    if embedded:
        return _load(Path(directory), MNIST_SHA256, "embedded")
    return _load(Path(directory), None, "user")


def load_mnist(mnist_path: str | Path | None = None) -> MnistPool:
    """The embedded MNIST (sha256-verified) or the IDX files of MNIST_PATH (header/size checked)."""
    if mnist_path is None:
        return _load_cached(str(embedded_dir()), True)
    directory = Path(mnist_path)
    if not directory.is_dir():
        raise MdmnistError(f"mnist-path {directory} is not a directory")
    # Not cached: user files may change between calls.
    return _load(directory, None, "user")
