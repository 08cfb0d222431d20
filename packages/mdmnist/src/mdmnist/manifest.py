"""``manifest.json``: arguments, versions, source checksums and digests of everything written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import MdmnistError

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def seal_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its seal: any edit of a value shows."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def write_manifest(directory: Path, manifest: dict) -> None:
    """Write the sealed manifest (stable key order, no timestamps: same inputs, same bytes)."""
    sealed = dict(manifest, manifest_sha256=seal_digest(manifest))
    with open(directory / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(sealed, fh, indent=1, sort_keys=True)
        fh.write("\n")


def read_manifest(directory: Path) -> dict:
    """The manifest of a generated dataset directory."""
    path = directory / MANIFEST
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise MdmnistError(f"{directory} has no {MANIFEST}: not an mdmnist output") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MdmnistError(f"{path} is unreadable or corrupt: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("manifest_version") != MANIFEST_VERSION:
        raise MdmnistError(f"{path} is not an mdmnist manifest (version {MANIFEST_VERSION})")
    return manifest
