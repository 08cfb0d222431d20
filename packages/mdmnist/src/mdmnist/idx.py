"""Read MNIST-shaped IDX files (gzipped or raw), check their headers, sizes and checksums."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from zlib_ng import zlib_ng

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


# sha256 of the gzip files shipped in the package. When a shipped file still has its digest, its
# content is the canonical file above (inflation is deterministic and checked by gzip's CRC-32),
# so the 55 MB need not be hashed again on every run; otherwise the content itself is checked.
EMBEDDED_GZ_SHA256 = {
    TRAIN_IMAGES: "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    TEST_IMAGES: "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b",
    TEST_LABELS: "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c",
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


def _gunzip(data: bytes) -> bytes:
    """Inflate every gzip member of DATA with zlib-ng (twice as fast as the standard library);
    each member's CRC-32 and length are checked."""
    parts = []
    while data:
        member = zlib_ng.decompressobj(31)  # 31: gzip header and trailer
        parts.append(member.decompress(data))
        if not member.eof:
            raise EOFError("the compressed stream ends before its end-of-stream marker")
        data = member.unused_data
    return b"".join(parts)


def _read(path: Path) -> tuple[bytes, bytes]:
    """(the file's bytes, its decompressed content); gzip is detected by its magic bytes."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        return raw, _gunzip(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (EOFError, zlib_ng.error) as exc:
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


def _content_sha256(name: str, raw: bytes, data: bytes, embedded: bool) -> str:
    """sha256 of DATA, NAME's content; for a shipped file that is unchanged, known already."""
    if embedded and hashlib.sha256(raw).hexdigest() == EMBEDDED_GZ_SHA256[name]:
        return MNIST_SHA256[name]
    return hashlib.sha256(data).hexdigest()


def _load(directory: Path, embedded: bool) -> MnistPool:
    """Read the four files of DIRECTORY into a pool, checking headers, sizes and (for the
    embedded set) checksums."""
    arrays: dict[str, np.ndarray] = {}
    digests: dict[str, str] = {}
    for name in FILES:
        path = _find(directory, name)
        raw, data = _read(path)
        digest = _content_sha256(name, raw, data, embedded)
        if embedded and digest != MNIST_SHA256[name]:
            raise MdmnistError(
                f"MNIST file {path} fails its sha256 checksum ({digest[:12]}... != {MNIST_SHA256[name][:12]}...)"
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
    origin = "embedded" if embedded else "user"
    return MnistPool(pool_images, pool_labels, len(arrays[TRAIN_IMAGES]), origin, digests)


@lru_cache(maxsize=2)
def _load_cached(directory: str, embedded: bool) -> MnistPool:
    """Process-wide cache: the embedded set is read, decompressed and checked once."""
    return _load(Path(directory), embedded)


def load_mnist(mnist_path: str | Path | None = None) -> MnistPool:
    """The embedded MNIST (sha256-verified) or the IDX files of MNIST_PATH (header/size checked)."""
    if mnist_path is None:
        return _load_cached(str(embedded_dir()), True)
    directory = Path(mnist_path)
    if not directory.is_dir():
        raise MdmnistError(f"mnist-path {directory} is not a directory")
    # Not cached: user files may change between calls.
    return _load(directory, False)
