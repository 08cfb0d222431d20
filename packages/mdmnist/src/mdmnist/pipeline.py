"""The Python API: validate arguments, draw randomness in order, render in parallel, commit atomically."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .errors import MdmnistError
from .idx import MnistPool, load_mnist
from .layout import check_replaceable
from .lifecycle import missing_parents, remove_created, remove_stale_temps, temp_token
from .manifest import MANIFEST_VERSION, file_sha256, write_manifest
from .randomness import LegacyDrawStream, draw_class
from .render import ClassJob, ClassResult, init_worker, render_batch, render_class
from .shards import Shard, check_shard, shard_classes, shard_suffix
from .splits import SPLITS, class_digits, digit_index_lists, split_classes, split_counts
from .tfds_export import export_hdf5_splits, require_tfds
from .writers import FORMATS, TFDS_DIR
from .writers.hdf5 import NativeHdf5Writer, hdf5_filename, images_per_chunk
from .writers.torchmeta import TorchmetaWriter, data_filename, labels_filename

SET_NAMES = {1: "single", 2: "double", 3: "triple", 4: "quadruple", 5: "quintuple", 6: "sextuple"}
# 10**n classes: beyond 6 digits the class lists and the manifest alone would take gigabytes.
MAX_DIGITS = max(SET_NAMES)


@dataclass(frozen=True)
class Config:
    """Validated generation arguments (everything that determines the output bytes)."""

    num_digit: int
    image_size: tuple[int, int]
    num_image_per_class: int
    ratios: tuple[int, int, int]
    seed: int
    formats: tuple[str, ...]
    disjoint_sources: bool
    shard: Shard | None = None  # (K, N): make only shard K of N (see shards.py)

    def as_dict(self) -> dict:
        """JSON-ready arguments for the manifest (not the shard: the merged shards' args equal
        the whole run's; a shard's manifest records its shard separately)."""
        return {
            "num_digit": self.num_digit,
            "image_size": list(self.image_size),
            "num_image_per_class": self.num_image_per_class,
            "ratios": list(self.ratios),
            "seed": self.seed,
            "formats": list(self.formats),
            "disjoint_sources": self.disjoint_sources,
        }


def _is_int(value: object) -> bool:
    """True for real integers (numpy ones too), not bools."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def default_image_size(num_digit: int) -> tuple[int, int]:
    """64x64 for two digits (the published DoubleMNIST), 28n x 28n otherwise."""
    return (64, 64) if num_digit == 2 else (28 * num_digit, 28 * num_digit)


def _check_num_digit(num_digit: object) -> int:
    """num_digit must be an integer in 1..MAX_DIGITS."""
    if not _is_int(num_digit) or not 1 <= int(num_digit) <= MAX_DIGITS:
        raise MdmnistError(
            f"num-digit must be an integer from 1 to {MAX_DIGITS}, got {num_digit!r}"
        )
    return int(num_digit)


def _check_image_size(image_size: object, num_digit: int) -> tuple[int, int]:
    """Two integers H, W with H >= 28 and W // num_digit >= 28."""
    if image_size is None:
        return default_image_size(num_digit)
    try:
        height, width = image_size  # type: ignore[misc]
    except (TypeError, ValueError):
        raise MdmnistError(f"image-size must be two integers H W, got {image_size!r}") from None
    if not (_is_int(height) and _is_int(width)):
        raise MdmnistError(f"image-size must be two integers H W, got {image_size!r}")
    height, width = int(height), int(width)
    if height < 28 or width // num_digit < 28:
        raise MdmnistError(
            f"image-size {height} {width} is too small for {num_digit} digit(s): "
            f"need H >= 28 and W // {num_digit} >= 28 (W >= {28 * num_digit})"
        )
    return height, width


def default_output_name(
    num_digit: int,
    seed: int = 123,
    image_size: Sequence[int] | None = None,
    shard: Shard | None = None,
) -> str:
    """Directory name like the published sets: ``double_mnist_seed_123_image_size_64_64``
    (a shard adds ``_shard_K_of_N``)."""
    num_digit = _check_num_digit(num_digit)
    height, width = _check_image_size(image_size, num_digit)
    name = f"{SET_NAMES[num_digit]}_mnist_seed_{seed}_image_size_{height}_{width}"
    return name + shard_suffix(shard)


def validate(
    num_digit: int,
    image_size: Sequence[int] | None,
    num_image_per_class: int,
    ratios: Sequence[int],
    seed: int,
    formats: Sequence[str],
    workers: int,
    disjoint_sources: bool,
    shard: object = None,
) -> Config:
    """Check every argument, raising MdmnistError with one line naming it and what is allowed."""
    num_digit = _check_num_digit(num_digit)
    size = _check_image_size(image_size, num_digit)
    if not _is_int(num_image_per_class) or num_image_per_class < 1:
        raise MdmnistError(
            f"num-image-per-class must be a positive integer, got {num_image_per_class!r}"
        )
    if (
        isinstance(ratios, str | bytes)
        or not isinstance(ratios, Sequence)
        or len(ratios) != 3
        or not all(_is_int(r) and r > 0 for r in ratios)
    ):
        raise MdmnistError(f"train-val-test-ratio must be three positive integers, got {ratios!r}")
    ratios = tuple(int(r) for r in ratios)
    counts = split_counts(num_digit, ratios)
    for split, count in zip(SPLITS, counts, strict=True):
        if count < 1:
            raise MdmnistError(
                f"train-val-test-ratio {' '.join(map(str, ratios))} leaves the {split} split "
                f"without classes for {num_digit} digit(s)"
            )
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise MdmnistError(f"random-seed must be an integer in [0, 2**32), got {seed!r}")
    if isinstance(formats, str):
        formats = (formats,)
    chosen = tuple(dict.fromkeys(formats))
    bad = [f for f in chosen if f not in FORMATS]
    if not chosen or bad:
        raise MdmnistError(
            f"format must be one or more of {', '.join(FORMATS)}, got {', '.join(map(str, bad)) or 'none'}"
        )
    if "tfds" in chosen:
        require_tfds()  # before any work: one line saying how to install the extra
    if not _is_int(workers) or workers < 1:
        raise MdmnistError(f"workers must be a positive integer, got {workers!r}")
    return Config(
        num_digit,
        size,
        int(num_image_per_class),
        ratios,
        int(seed),
        chosen,
        bool(disjoint_sources),
        check_shard(shard, num_digit, ratios),
    )


def hdf5_attrs(config: Config, split: str) -> dict:
    """Attributes of SPLIT's native HDF5 file (a merge writes the same ones as a whole run)."""
    attrs = {
        "num_digit": config.num_digit,
        "seed": config.seed,
        "image_size": list(config.image_size),
        "num_image_per_class": config.num_image_per_class,
        "ratios": list(config.ratios),
        "disjoint_sources": config.disjoint_sources,
        "mdmnist_version": __version__,
        "split": split,
    }
    if config.shard is not None:
        attrs["shard"] = list(config.shard)
    return attrs


def _jobs(
    config: Config,
    pool: MnistPool,
    splits: dict[str, list[str]],
    chosen: dict[str, list[str]],
    tmp: Path,
) -> Iterator[ClassJob]:
    """Jobs for the CHOSEN classes; every class of SPLITS is drawn here, in the reference's
    order, so a class gets the same draws whichever classes (shard) are chosen."""
    height, width = config.image_size
    count = config.num_image_per_class
    stream = LegacyDrawStream(config.seed)
    chunk = images_per_chunk(count, height, width)
    for split in SPLITS:
        lists = digit_index_lists(pool, split, config.disjoint_sources)
        wanted = {name: index for index, name in enumerate(chosen[split])}
        for name in splits[split]:
            src, ys, cols = draw_class(stream, lists, class_digits(name), count, height, width)
            if name not in wanted:
                continue  # another shard's class: its draws only advance the stream
            yield ClassJob(
                split=split,
                index=wanted[name],
                name=name,
                src=src,
                ys=ys,
                cols=cols,
                height=height,
                width=width,
                chunk=chunk,
                png_dir=str(tmp / split / name) if "png" in config.formats else None,
                want_png_bytes="torchmeta" in config.formats,
                want_hdf5=_needs_hdf5(config.formats),
            )


BATCH_IMAGES = 512  # small classes travel to the workers in batches of about this many images


def _batches(jobs: Iterator[ClassJob]) -> Iterator[list[ClassJob]]:
    """Consecutive jobs grouped so each batch holds at least BATCH_IMAGES images (or one class)."""
    batch: list[ClassJob] = []
    images = 0
    for job in jobs:
        batch.append(job)
        images += len(job.src)
        if images >= BATCH_IMAGES:
            yield batch
            batch, images = [], 0
    if batch:
        yield batch


def _results(jobs: Iterator[ClassJob], pool: MnistPool, workers: int) -> Iterator[ClassResult]:
    """Render jobs in order; with several workers keep a bounded window of batches in flight."""
    if workers == 1:
        init_worker(pool.images, in_process=True)
        for job in jobs:
            yield render_class(job)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    initargs = (pool.images, False, os.getpid())
    with cf.ProcessPoolExecutor(workers, context, init_worker, initargs) as executor:
        pending: collections.deque[cf.Future] = collections.deque()
        try:
            for batch in _batches(jobs):
                pending.append(executor.submit(render_batch, batch))
                if len(pending) >= 2 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BaseException:
            for future in pending:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)
            raise


def _render_all(config: Config, pool: MnistPool, workers: int, tmp: Path, progress: bool) -> dict:
    """Write every format into TMP; return the manifest's split and file sections."""
    from tqdm import tqdm

    height, width = config.image_size
    count = config.num_image_per_class
    every = split_classes(config.num_digit, config.ratios, config.seed)
    splits = shard_classes(every, config.shard)
    chunk = images_per_chunk(count, height, width)
    if "png" in config.formats:
        for split in SPLITS:
            (tmp / split).mkdir()
    writers: dict[str, tuple[NativeHdf5Writer | None, TorchmetaWriter | None]] = {}
    split_info: dict[str, dict] = {
        s: {"classes": splits[s], "pixels_sha256": {}, "png_sha256": {}} for s in SPLITS
    }
    total = sum(len(v) for v in splits.values()) * count
    bar = tqdm(total=total, unit="img", disable=not progress, desc="mdmnist", smoothing=0.1)
    results = _results(_jobs(config, pool, every, splits, tmp), pool, workers)
    try:
        for result in results:
            split = result.split
            if split not in writers:
                for done in writers.values():
                    _close(done)
                hdf5 = torchmeta = None
                if _needs_hdf5(config.formats):
                    hdf5 = NativeHdf5Writer(
                        tmp / hdf5_filename(split),
                        splits[split],
                        count,
                        height,
                        width,
                        chunk,
                        hdf5_attrs(config, split),
                    )
                if "torchmeta" in config.formats:
                    torchmeta = TorchmetaWriter(tmp, split, splits[split])
                writers = {split: (hdf5, torchmeta)}
            hdf5, torchmeta = writers[split]
            if hdf5 is not None:
                hdf5.write_class(result.index, result.hdf5_chunks)
            if torchmeta is not None:
                torchmeta.write_class(result.name, result.png_bytes or [])
            info = split_info[split]
            info["pixels_sha256"][result.name] = result.pixels_sha256
            if result.png_sha256 is not None:
                info["png_sha256"][result.name] = result.png_sha256
            bar.update(count)
        for done in writers.values():
            _close(done)
        writers = {}
    finally:
        results.close()
        for done in writers.values():
            _close(done, quiet=True)
        bar.close()
    if "tfds" in config.formats:
        _export_tfds(config, tmp)
    files = {}
    for split in SPLITS:
        for name in split_files(config.formats, split):
            files[name] = file_sha256(tmp / name)
    for path in sorted((tmp / TFDS_DIR).rglob("*")):
        if path.is_file():
            files[path.relative_to(tmp).as_posix()] = file_sha256(path)
    for info in split_info.values():
        if not info["png_sha256"]:
            del info["png_sha256"]
    return {"splits": split_info, "files": files}


def _needs_hdf5(formats: Sequence[str]) -> bool:
    """The native HDF5 is written when asked for, and as the source of a TFDS export."""
    return "hdf5" in formats or "tfds" in formats


def _export_tfds(config: Config, tmp: Path) -> None:
    """TMP/tfds from the split HDF5 files (removed after, unless HDF5 was asked for too)."""
    h5_files = {split: tmp / hdf5_filename(split) for split in SPLITS}
    export_hdf5_splits(h5_files, tmp / TFDS_DIR, config.num_digit)
    if "hdf5" not in config.formats:
        for path in h5_files.values():
            path.unlink()


def _close(pair: tuple, quiet: bool = False) -> None:
    """Close the writers of one split (quietly when already failing)."""
    for writer in pair:
        if writer is None:
            continue
        try:
            writer.close()
        except Exception:
            if not quiet:
                raise


def swap_in(tmp: Path, out: Path, old: Path) -> None:
    """Rename the finished TMP to OUT; an existing OUT is moved to OLD first and back on failure."""
    replacing = out.exists() or out.is_symlink()
    if replacing:
        check_replaceable(out)  # again: files may have appeared while we were working
        out.rename(old)  # overwrite: swap in the new output, then drop the old one
    try:
        tmp.rename(out)
    except OSError:
        if replacing:
            old.rename(out)
        raise


def make_temp(out: Path) -> tuple[Path, list[Path]]:
    """Create the hidden temp folder beside OUT; return it and the parent folders created for it."""
    parent = out.absolute().parent
    created = missing_parents(parent)
    tmp = parent / f".{out.name}.tmp-{temp_token()}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        remove_created(created)
        raise MdmnistError(f"cannot write output {out}: {exc.strerror or exc}") from None
    return tmp, created


def old_name(tmp: Path) -> Path:
    """Where swap_in moves an existing output aside: the temp name with .old- for .tmp-."""
    return tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))


def clean_up(tmp: Path, old: Path, created: list[Path], done: bool) -> None:
    """Remove the temp folder and the moved-aside old output; after a failure also the parents
    this run created."""
    for leftover in (tmp, old):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.exists() or leftover.is_symlink():
            leftover.unlink()
    if not done:
        remove_created(created)


def split_files(formats: Sequence[str], split: str) -> list[str]:
    """Names of SPLIT's files that the manifest's ``files`` section records."""
    names = []
    if "hdf5" in formats:
        names.append(hdf5_filename(split))
    if "torchmeta" in formats:
        names += [data_filename(split), labels_filename(split)]
    return names


def generate(
    num_digit: int = 2,
    image_size: tuple[int, int] | None = None,
    num_image_per_class: int = 1000,
    ratios: tuple[int, int, int] = (64, 16, 20),
    seed: int = 123,
    output: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    workers: int = 1,
    overwrite: bool = False,
    mnist_path: str | Path | None = None,
    disjoint_sources: bool = False,
    progress: bool = True,
    shard: Shard | str | None = None,
) -> Path:
    """Generate a multi-digit MNIST dataset (or shard K/N of one) and return its directory
    (written atomically)."""
    config = validate(
        num_digit,
        image_size,
        num_image_per_class,
        ratios,
        seed,
        formats,
        workers,
        disjoint_sources,
        shard,
    )
    out = Path(
        output
        if output is not None
        else default_output_name(config.num_digit, config.seed, config.image_size, config.shard)
    )
    remove_stale_temps(out)  # left by killed runs (their pids are gone)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise MdmnistError(f"output {out} already exists; pass --overwrite to replace it")
    check_replaceable(out)
    pool = load_mnist(mnist_path)
    for split in SPLITS:  # fail early, before any work, if a digit has no source image
        digit_index_lists(pool, split, config.disjoint_sources)
    tmp, created = make_temp(out)
    old = old_name(tmp)
    done = False
    try:
        sections = _render_all(config, pool, workers, tmp, progress)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "generator": {"name": "mdmnist", "version": __version__},
            "args": config.as_dict(),
            "mnist": {"origin": pool.origin, "sha256": pool.sha256},
            **sections,
        }
        if config.shard is not None:
            manifest["shard"] = {"index": config.shard[0], "count": config.shard[1]}
        write_manifest(tmp, manifest)
        swap_in(tmp, out, old)
        done = True
    except OSError as exc:
        raise MdmnistError(f"cannot write output {out}: {exc.strerror or exc}") from None
    finally:
        clean_up(tmp, old, created, done)
    return out
