"""What an mdmnist output directory may hold, so that --overwrite and verify can spot foreign files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import MdmnistError
from .manifest import MANIFEST, MANIFEST_VERSION
from .render import png_filename
from .splits import SPLITS
from .writers import TFDS_DIR

SHOWN = 5  # foreign paths named in one error line; the rest are counted


def _entries(folder: Path) -> dict[str, os.DirEntry]:
    """The entries of FOLDER by name (empty when it cannot be listed)."""
    try:
        with os.scandir(folder) as it:
            return {entry.name: entry for entry in it}
    except OSError:
        return {}


def _is_plain_dir(entry: os.DirEntry) -> bool:
    """A real directory, not a link to one (a link's target is not ours to judge)."""
    return entry.is_dir(follow_symlinks=False)


def _is_plain_file(entry: os.DirEntry) -> bool:
    """A regular file, not a link."""
    return entry.is_file(follow_symlinks=False)


def _stray_pngs(folder: Path, prefix: str, wanted: set[str]) -> list[str]:
    """Entries of one class folder that are not its expected PNG files."""
    return [
        f"{prefix}/{name}" + ("/" if _is_plain_dir(entry) else "")
        for name, entry in sorted(_entries(folder).items())
        if name not in wanted or not _is_plain_file(entry)
    ]


def _stray_in_split(root: Path, split: str, classes: list[str], count: int) -> list[str]:
    """Entries of a PNG split folder that are not its class folders or their PNG files."""
    strays = []
    known = set(classes)
    for name, entry in sorted(_entries(root / split).items()):
        if name not in known or not _is_plain_dir(entry):
            strays.append(f"{split}/{name}" + ("/" if _is_plain_dir(entry) else ""))
            continue
        wanted = {png_filename(k, name) for k in range(count)}
        strays += _stray_pngs(root / split / name, f"{split}/{name}", wanted)
    return strays


def stray_paths(root: Path, manifest: dict) -> list[str]:
    """Paths under ROOT (relative, folders ending in '/') that MANIFEST does not account for."""
    args = manifest.get("args", {})
    png = "png" in args.get("formats", [])
    files = {MANIFEST, *manifest.get("files", {})}
    strays = []
    for name, entry in sorted(_entries(root).items()):
        if name in files and _is_plain_file(entry):
            continue
        if name == TFDS_DIR and "tfds" in args.get("formats", []) and _is_plain_dir(entry):
            strays += _stray_in_tfds(root, files)
            continue
        if png and name in SPLITS and _is_plain_dir(entry):
            classes = manifest.get("splits", {}).get(name, {}).get("classes", [])
            strays += _stray_in_split(root, name, classes, args.get("num_image_per_class", 0))
            continue
        strays.append(name + ("/" if _is_plain_dir(entry) else ""))
    return strays


def _stray_in_tfds(root: Path, files: set[str]) -> list[str]:
    """Files under the TFDS export that the manifest does not list (its folders are fine)."""
    return [
        path.relative_to(root).as_posix()
        for path in sorted((root / TFDS_DIR).rglob("*"))
        if not path.is_dir() and path.relative_to(root).as_posix() not in files
    ]


def _mdmnist_manifest(root: Path) -> dict | None:
    """ROOT's manifest when ROOT is an mdmnist output, else None (no manifest, or not ours)."""
    try:
        with open(root / MANIFEST, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("manifest_version") != MANIFEST_VERSION:
        return None
    generator = manifest.get("generator")
    if not isinstance(generator, dict) or generator.get("name") != "mdmnist":
        return None
    return manifest


def name_some(paths: list[str]) -> str:
    """The first few PATHS, and how many more there are."""
    shown = ", ".join(paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def foreign_files(out: Path) -> list[str]:
    """What --overwrite would destroy that mdmnist did not write: [] for an empty folder or our output."""
    if not out.is_dir() or out.is_symlink():
        return [out.name]
    manifest = _mdmnist_manifest(out)
    if manifest is None:
        entries = sorted(_entries(out).items())
        return [name + ("/" if _is_plain_dir(entry) else "") for name, entry in entries]
    return stray_paths(out, manifest)


def check_replaceable(out: Path) -> None:
    """Refuse (MdmnistError) to replace OUT when it holds anything mdmnist did not write."""
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir() or out.is_symlink():
        raise MdmnistError(
            f"output {out} exists and is not a folder; --overwrite replaces only an empty folder "
            "or an mdmnist output, so it was left untouched"
        )
    foreign = foreign_files(out)
    if foreign:
        raise MdmnistError(
            f"output {out} holds files that mdmnist did not write ({name_some(foreign)}); "
            "--overwrite replaces only an empty folder or an mdmnist output, so nothing was "
            "touched: move them away or choose another --output"
        )
