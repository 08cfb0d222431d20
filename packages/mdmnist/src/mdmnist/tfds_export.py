"""TensorFlow Datasets export: an array_record dataset folder that ``tfds`` reads without TensorFlow.

``write_tfds(out_dir, name, splits, class_names, image_shape)`` writes ``out_dir/<name>/1.0.0/`` (the folder
holding ``dataset_info.json``) with one ``<name>-<split>.array_record-*`` file per split and the
features ``image`` (uint8 H x W x 1, stored as PNG) and ``label`` (a ClassLabel naming the
classes). Examples keep the order they are given in (TFDS's shuffling by key is disabled), so
``tfds.builder_from_directory(DIR).as_data_source(split)[i]`` is image i of the split.

tensorflow-datasets is an optional extra (``pip install 'mdmnist[tfds]'``); it is imported only
here, only when an export is asked for. Images are PNG-encoded with Pillow before they reach
TFDS, because TFDS's own image encoder needs TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import MdmnistError

VERSION = "1.0.0"
INSTALL = "pip install 'mdmnist[tfds]' (tensorflow-datasets>=4.9, without TensorFlow)"


def require_tfds():
    """The tensorflow_datasets module, or one MdmnistError line saying how to install it."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise MdmnistError(f"--format tfds needs tensorflow-datasets: {INSTALL} ({exc})") from None
    return tfds


def _png(image: np.ndarray) -> bytes:
    """One uint8 H x W image as PNG bytes (what TFDS stores for an Image feature)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="L").save(buf, format="PNG")
    return buf.getvalue()


Examples = Callable[[], Iterator[tuple[np.ndarray, int]]]


def write_tfds(
    out_dir: Path,
    name: str,
    splits: Mapping[str, Examples],
    class_names: Sequence[str],
    image_shape: tuple[int, int],
    description: str = "",
) -> Path:
    """Write ``splits`` ({split: a function giving its (image [H, W] uint8, label) pairs in
    order}) as a TFDS folder; returns the folder that holds ``dataset_info.json``."""
    tfds = require_tfds()
    features = tfds.features
    names = [str(c) for c in class_names]

    def examples(pairs: Examples) -> Iterator[tuple[int, dict]]:
        for i, (image, label) in enumerate(pairs()):
            yield i, {"image": _png(image), "label": int(label)}

    class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """The dataset: features and splits given above; no download step. Not registered in
        TFDS's global list, so a process can write several datasets."""

        VERSION = tfds.core.Version(VERSION)

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                description=description,
                features=features.FeaturesDict(
                    {
                        "image": features.Image(shape=(*image_shape, 1), dtype=np.uint8),
                        "label": features.ClassLabel(names=names),
                    }
                ),
                supervised_keys=("image", "label"),
                disable_shuffling=True,
            )

        def _split_generators(self, dl_manager):
            return {split: examples(pairs) for split, pairs in splits.items()}

        def _generate_examples(self):  # pragma: no cover - splits come from _split_generators
            raise NotImplementedError

    Builder.name = name  # set after the class statement: tfds derives one from the class name
    builder = Builder(data_dir=str(out_dir), file_format="array_record")
    with _quiet(tfds):
        builder.download_and_prepare(
            download_dir=str(Path(out_dir) / ".downloads"),
            download_config=tfds.download.DownloadConfig(),
        )
    _remove_empty(Path(out_dir) / ".downloads")
    return Path(out_dir) / name / VERSION


@contextlib.contextmanager
def _quiet(tfds):
    """TFDS's own progress bars and lines off while it writes (mdmnist shows its own); it
    prints about a download that never happens to stdout."""
    tfds.disable_progress_bar()
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def dataset_name(num_digit: int) -> str:
    """The TFDS name of an n-digit set: double_mnist, triple_mnist, multi_digit_mnist_n."""
    return {2: "double_mnist", 3: "triple_mnist"}.get(num_digit, f"multi_digit_mnist_{num_digit}")


def export_hdf5_splits(h5_files: Mapping[str, Path], out_dir: Path, num_digit: int) -> Path:
    """The native HDF5 files of the splits as one TFDS folder under ``out_dir``.

    Images keep the HDF5 order (class by class, as the file lists its classes); the label
    names are every split's classes, sorted, so a label means the same class in every split.
    """
    import h5py

    names: list[str] = []
    for path in h5_files.values():
        with h5py.File(path, "r") as f:
            names += [b.decode("ascii") for b in f["class_names"][...]]
            shape = tuple(f["images"].shape[2:4])
    label_of = {n: i for i, n in enumerate(sorted(names))}

    def pairs(path: Path) -> Examples:
        def read() -> Iterator[tuple[np.ndarray, int]]:
            with h5py.File(path, "r") as f:
                classes = [b.decode("ascii") for b in f["class_names"][...]]
                for c, cname in enumerate(classes):
                    for image in f["images"][c]:
                        yield image, label_of[cname]

        return read

    return write_tfds(
        out_dir,
        dataset_name(num_digit),
        {split: pairs(path) for split, path in h5_files.items()},
        sorted(names),
        shape,
        description=f"Multi-digit MNIST ({num_digit} digits) generated by mdmnist",
    )


def _remove_empty(folder: Path) -> None:
    """Remove the download folders TFDS creates (empty: nothing is downloaded)."""
    if not folder.is_dir():
        return
    for sub in sorted(folder.rglob("*"), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def read_tfds(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images [N, H, W], labels [N], class names) of one split of a folder ``write_tfds`` wrote."""
    tfds = require_tfds()
    builder = tfds.builder_from_directory(str(folder))
    source = builder.as_data_source(split)
    images = np.stack([source[i]["image"][..., 0] for i in range(len(source))])
    labels = np.array([source[i]["label"] for i in range(len(source))], dtype=np.int64)
    return images, labels, list(builder.info.features["label"].names)
