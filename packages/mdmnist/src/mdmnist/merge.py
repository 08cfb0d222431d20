"""Join the shards of one run (``mdmnist --shard K/N``) into the output a single run makes.

By default everything is copied: HDF5 chunks are moved over still compressed with the same writer
as a single run, so the merged files (and ``manifest.json``) are byte-identical to the single
run's. With ``link=True`` nothing big is copied: each ``{split}.h5`` is an HDF5 virtual dataset
that reads the shards' files in place (referenced by paths relative to the output) and the PNG
files are hard links to the shards' files; the torchmeta files are still copied.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from . import __version__
from .errors import MdmnistError
from .layout import check_replaceable
from .lifecycle import remove_stale_temps
from .manifest import MANIFEST_VERSION, file_sha256, read_manifest, seal_digest, write_manifest
from .pipeline import (
    Config,
    clean_up,
    hdf5_attrs,
    make_temp,
    old_name,
    split_files,
    swap_in,
    validate,
)
from .render import png_filename
from .shards import Shard
from .splits import SPLITS
from .verify import expected_classes, manifest_shard
from .writers.hdf5 import NativeHdf5Writer, hdf5_filename, images_per_chunk
from .writers.torchmeta import TorchmetaWriter, data_filename, torchmeta_order

Tick = Callable[[int], None]  # progress callback: called with the number of classes just merged


@dataclass(frozen=True)
class ShardDir:
    """One shard's folder, its manifest and its place (K, N) in the run."""

    path: Path
    manifest: dict
    shard: Shard

    def classes(self, split: str) -> list[str]:
        """The classes of SPLIT in this shard, in generation order."""
        return self.manifest["splits"][split]["classes"]


def _load(directory: str | Path) -> ShardDir:
    """Read and check one shard folder's manifest (sealed, made with --shard, classes as expected)."""
    path = Path(directory)
    if not path.is_dir():
        raise MdmnistError(f"shard {path} is not a directory")
    manifest = read_manifest(path)
    if manifest.get("manifest_sha256") != seal_digest(manifest):
        raise MdmnistError(
            f"shard {path}: manifest.json does not match its seal (edited or corrupt)"
        )
    try:
        shard = manifest_shard(manifest)
        expected = expected_classes(manifest)
        classes_ok = all(manifest["splits"][s]["classes"] == expected[s] for s in SPLITS)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MdmnistError(f"shard {path}: malformed manifest.json ({exc})") from None
    if shard is None:
        raise MdmnistError(f"{path} is not a shard (made without --shard K/N); nothing to merge")
    if not classes_ok:
        raise MdmnistError(
            f"shard {path}: its classes are not those of shard {shard[0]}/{shard[1]}"
        )
    return ShardDir(path, manifest, shard)


# Manifest argument names as the CLI spells them, for error messages.
_OPTION_NAMES = {"seed": "random-seed", "ratios": "train-val-test-ratio", "formats": "format"}


def _settings(shard: ShardDir) -> dict:
    """What must be equal in all shards of one run: arguments, MNIST source, version, N."""
    manifest = shard.manifest
    settings = {
        _OPTION_NAMES.get(key, key.replace("_", "-")): value
        for key, value in manifest["args"].items()
    }
    settings["MNIST source"] = manifest["mnist"]
    settings["mdmnist version"] = manifest["generator"]["version"]
    settings["shard count N"] = shard.shard[1]
    return settings


def _check_same_run(shards: Sequence[ShardDir]) -> None:
    """All shards come from one run: the same settings everywhere, made by this mdmnist version."""
    first = _settings(shards[0])
    for other in shards[1:]:
        theirs = _settings(other)
        differ = [
            f"{key} ({value!r} vs {theirs.get(key)!r})"
            for key, value in first.items()
            if theirs.get(key) != value
        ]
        if differ:
            raise MdmnistError(
                f"shards of different runs: {shards[0].path} and {other.path} differ in "
                f"{', '.join(differ)}; merge only the shards of one run"
            )
    made_by = first["mdmnist version"]
    if made_by != __version__:
        raise MdmnistError(
            f"the shards were made by mdmnist {made_by}, this is {__version__}: merge them with "
            "the version that made them"
        )


def _in_order(shards: Sequence[ShardDir]) -> list[ShardDir]:
    """The shards sorted by K, refusing overlaps (a K given twice) and gaps (a K missing)."""
    by_index: dict[int, ShardDir] = {}
    for shard in shards:
        k, n = shard.shard
        if k in by_index:
            raise MdmnistError(
                f"overlapping shards: {by_index[k].path} and {shard.path} are both shard {k}/{n}"
            )
        by_index[k] = shard
    count = shards[0].shard[1]
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in by_index]
    if missing:
        raise MdmnistError(
            f"incomplete shards: shard {', '.join(missing)} missing (got "
            f"{', '.join(f'{k}/{count}' for k in sorted(by_index))}); give all {count}"
        )
    return [by_index[k] for k in range(1, count + 1)]


def _check_files(shard: ShardDir) -> None:
    """Every file the shard's manifest records is present and unchanged (one read each)."""
    for name, digest in sorted(shard.manifest.get("files", {}).items()):
        path = shard.path / name
        if not path.is_file():
            raise MdmnistError(f"shard {shard.path}: {name} is missing")
        if file_sha256(path) != digest:
            raise MdmnistError(
                f"shard {shard.path}: {name} differs from its manifest.json (damaged or changed); "
                "make that shard again"
            )


def _check_output(out: Path, shards: Sequence[ShardDir], overwrite: bool) -> None:
    """OUT may be replaced (same rule as generation) and is neither a shard nor around one."""
    target = out.absolute().resolve()
    for shard in shards:
        folder = shard.path.absolute().resolve()
        if target == folder or folder in target.parents or target in folder.parents:
            raise MdmnistError(
                f"output {out} overlaps shard {shard.path}; choose an --output outside the shards"
            )
    remove_stale_temps(out)  # left by killed runs (their pids are gone)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise MdmnistError(f"output {out} already exists; pass --overwrite to replace it")
    check_replaceable(out)


def _config(manifest: dict) -> Config:
    """The whole run's validated arguments, from a shard's manifest."""
    args = manifest["args"]
    if "tfds" in args["formats"]:
        raise MdmnistError(
            "merge does not join TensorFlow Datasets exports (--format tfds): generate the "
            "shards with --format hdf5 and merge those, or make the tfds set in one run"
        )
    return validate(
        args["num_digit"],
        args["image_size"],
        args["num_image_per_class"],
        args["ratios"],
        args["seed"],
        args["formats"],
        1,
        args["disjoint_sources"],
    )


def _copy_hdf5(
    tmp: Path, split: str, config: Config, shards: Sequence[ShardDir], tick: Tick
) -> None:
    """SPLIT's HDF5 file as a single run writes it: the shards' compressed chunks, in order."""
    height, width = config.image_size
    count = config.num_image_per_class
    chunk = images_per_chunk(count, height, width)
    classes = [name for shard in shards for name in shard.classes(split)]
    attrs = hdf5_attrs(config, split)
    writer = NativeHdf5Writer(
        tmp / hdf5_filename(split), classes, count, height, width, chunk, attrs
    )
    try:
        index = 0
        for shard in shards:
            with h5py.File(shard.path / hdf5_filename(split), "r") as f:
                images = f["images"].id
                for i in range(len(shard.classes(split))):
                    starts = range(0, count, chunk)
                    chunks = [images.read_direct_chunk((i, s, 0, 0))[1] for s in starts]
                    writer.write_class(index, chunks)
                    index += 1
                    tick(1)
    finally:
        writer.close()


def _relative_source(out: Path, source: Path) -> str:
    """Path of SOURCE relative to the output folder OUT (HDF5 resolves it from the file's folder)."""
    folder = out.absolute().parent.resolve() / out.name
    return os.path.relpath(source.absolute().resolve(), folder)


def _link_hdf5(
    tmp: Path, out: Path, split: str, config: Config, shards: Sequence[ShardDir], tick: Tick
) -> dict[str, str]:
    """SPLIT's HDF5 file as a virtual dataset over the shards' files; returns {source: sha256}."""
    height, width = config.image_size
    count = config.num_image_per_class
    name = hdf5_filename(split)
    classes = [c for shard in shards for c in shard.classes(split)]
    layout = h5py.VirtualLayout(shape=(len(classes), count, height, width), dtype=np.uint8)
    sources = {}
    start = 0
    for shard in shards:
        size = len(shard.classes(split))
        source = _relative_source(out, shard.path / name)
        layout[start : start + size] = h5py.VirtualSource(
            source, "images", shape=(size, count, height, width)
        )
        sources[source] = shard.manifest["files"][name]
        start += size
        tick(size)
    with h5py.File(tmp / name, "w") as f:
        names = np.array(classes, dtype=f"S{config.num_digit}")
        f.create_dataset("class_names", data=names, track_times=False)
        f.create_virtual_dataset("images", layout, fillvalue=0)
        for key, value in hdf5_attrs(config, split).items():
            f.attrs[key] = value
    return sources


def _copy_torchmeta(
    tmp: Path, split: str, config: Config, shards: Sequence[ShardDir], tick: Tick
) -> None:
    """SPLIT's torchmeta files as a single run writes them: classes stored in generation order."""
    count = config.num_image_per_class
    classes = [name for shard in shards for name in shard.classes(split)]
    writer = TorchmetaWriter(tmp, split, classes)
    try:
        for shard in shards:
            with h5py.File(shard.path / data_filename(split), "r") as f:
                group = f["datasets"]
                for name in shard.classes(split):
                    stored = group[name][...]
                    pngs = [b""] * count
                    for i, k in enumerate(torchmeta_order(count, name)):
                        pngs[k] = stored[i].tobytes()
                    writer.write_class(name, pngs)
                    tick(1)
    finally:
        writer.close()


def _copy_png(
    tmp: Path, split: str, config: Config, shards: Sequence[ShardDir], link: bool, tick: Tick
) -> None:
    """SPLIT's PNG class folders, file by file: copies (with the umask's permissions), or with
    LINK hard links to the shards' files (no data copied; same filesystem only)."""
    count = config.num_image_per_class
    place = os.link if link else shutil.copyfile
    (tmp / split).mkdir()
    for shard in shards:
        for name in shard.classes(split):
            source, target = shard.path / split / name, tmp / split / name
            target.mkdir()
            for k in range(count):
                place(source / png_filename(k, name), target / png_filename(k, name))
            tick(1)


def _merged_splits(shards: Sequence[ShardDir]) -> dict:
    """The manifest's ``splits`` section of the whole run, joined from the shards'."""
    merged = {}
    for split in SPLITS:
        parts = [shard.manifest["splits"][split] for shard in shards]
        info: dict = {"classes": [c for part in parts for c in part["classes"]]}
        for key in ("pixels_sha256", "png_sha256"):
            if key in parts[0]:
                info[key] = {name: d for part in parts for name, d in part[key].items()}
        merged[split] = info
    return merged


def _write_all(
    tmp: Path, out: Path, config: Config, shards: Sequence[ShardDir], link: bool, tick: Tick
) -> dict:
    """Write every format into TMP; return the merged manifest."""
    links = {}
    for split in SPLITS:
        if "png" in config.formats:
            _copy_png(tmp, split, config, shards, link, tick)
        if "hdf5" in config.formats and link:
            links[hdf5_filename(split)] = _link_hdf5(tmp, out, split, config, shards, tick)
        elif "hdf5" in config.formats:
            _copy_hdf5(tmp, split, config, shards, tick)
        if "torchmeta" in config.formats:
            _copy_torchmeta(tmp, split, config, shards, tick)
    first = shards[0].manifest
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "generator": first["generator"],
        "args": first["args"],
        "mnist": first["mnist"],
        "splits": _merged_splits(shards),
        "files": {
            name: file_sha256(tmp / name)
            for split in SPLITS
            for name in split_files(config.formats, split)
        },
    }
    if links:
        manifest["links"] = links
    return manifest


def _no_progress(steps: int) -> None:
    """Progress callback that shows nothing."""


@dataclass(frozen=True)
class MergePlan:
    """A checked merge: the shards in order, the whole run's arguments, where the output goes."""

    shards: list[ShardDir]
    config: Config
    out: Path
    link: bool

    def steps(self) -> int:
        """Progress steps of the merge: one per class and format."""
        classes = sum(len(shard.classes(s)) for shard in self.shards for s in SPLITS)
        return classes * len(self.config.formats)


def plan_merge(
    directories: Sequence[str | Path],
    output: str | Path,
    link: bool = False,
    overwrite: bool = False,
) -> MergePlan:
    """Check everything before any work: one run's complete shards, unchanged, and a free output."""
    if not directories:
        raise MdmnistError("merge needs the folders of all shards of one run")
    shards = [_load(d) for d in directories]
    _check_same_run(shards)
    shards = _in_order(shards)
    config = _config(shards[0].manifest)
    out = Path(output)
    _check_output(out, shards, overwrite)
    for shard in shards:
        _check_files(shard)
    return MergePlan(shards, config, out, link)


def run_merge(plan: MergePlan, progress: Tick | None = None) -> Path:
    """Write the merged output into a temp folder and swap it in (nothing is left on failure)."""
    out = plan.out
    tmp, created = make_temp(out)
    old = old_name(tmp)
    done = False
    try:
        tick = progress or _no_progress
        manifest = _write_all(tmp, out, plan.config, plan.shards, plan.link, tick)
        write_manifest(tmp, manifest)
        swap_in(tmp, out, old)
        done = True
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise MdmnistError(f"cannot merge into {out}: {exc.strerror or exc}{where}") from None
    finally:
        clean_up(tmp, old, created, done)
    return out


def merge(
    directories: Sequence[str | Path],
    output: str | Path,
    link: bool = False,
    overwrite: bool = False,
    progress: Tick | None = None,
) -> Path:
    """Join all N shards of one run into OUTPUT (written atomically) and return its path."""
    return run_merge(plan_merge(directories, output, link, overwrite), progress)
