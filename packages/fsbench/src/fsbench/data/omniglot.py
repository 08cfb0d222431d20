"""Omniglot in the standard few-shot protocol, from the official zips or the small background sets.

Protocol (Vinyals et al. 2016; MAML; Prototypical Networks): each 105x105 drawing is resized to
28x28 with PIL LANCZOS and inverted (strokes bright on a dark background, like MNIST); each
rotation by 0, 90, 180, 270 degrees (counter-clockwise, exact ``torch.rot90`` of the resized image)
is a class of its own. Characters are split, never drawings: all characters are sorted by
``alphabet/character`` and permuted with ``numpy.random.RandomState(seed)``; the first 1,200 are
the training characters, the rest (423) test. Of the 1,200, the last 172 are the validation split
and the first 1,028 train, the sizes of the Vinyals split used by Prototypical Networks (4,112 /
688 / 1,692 classes after rotation); train + val are MAML's 1,200 training characters.

Sources, first found wins: ``images_background.zip`` + ``images_evaluation.zip`` (1,623
characters) in ``data_root/omniglot`` or ``omniglot_dir``; downloaded there from the official
repository when ``download=True`` and the network allows; else the small background sets
(``images_background_small1.zip``, ``..._small2.zip``: 242 distinct characters, Greek and Latin are
in both and count once) from ``omniglot_dir``, ``$FSBENCH_OMNIGLOT`` or ``../shared/data/omniglot``
beside the repository checkout. On a set with fewer characters than the full one, two thirds of
the characters (rounded) are the training characters and the rest test; the training characters
give up the same 172/1,200 fraction to val. Decoded images are cached once under
``data_root/omniglot/cache``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsbench.data.diskcache import atomic_path, fingerprint, load_arrays, save_arrays
from fsbench.data.png_decode import decode_pngs
from fsbench.data.store import ArrayStore
from fsbench.errors import FsbenchError

log = logging.getLogger("fsbench.data")

FULL_ZIPS = ("images_background", "images_evaluation")
SMALL_ZIPS = ("images_background_small1", "images_background_small2")
URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}.zip"
# MD5 of the official zips (the same values torchvision checks).
MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
FULL_CHARACTERS = 1623
TRAIN_CHARACTERS = 1200
VAL_CHARACTERS = 172
ROTATIONS = (0, 90, 180, 270)
IMAGE_SIZE = 28
RESAMPLE = "lanczos"


@dataclass
class OmniglotSource:
    """Which Omniglot set a split comes from: 'full' (official zips) or 'small' (background sets)."""

    kind: str
    zips: list[Path]


def _repo_shared_omniglot() -> Path | None:
    """``../shared/data/omniglot`` beside the repository checkout (of this file, or of the cwd)."""
    for start in (Path(__file__).resolve(), Path.cwd().resolve() / "_"):
        for parent in start.parents:
            if (parent / ".git").exists() or (parent / "noxfile.py").is_file():
                candidate = parent.parent / "shared" / "data" / "omniglot"
                if candidate.is_dir():
                    return candidate
                break
    return None


def _full_in(folder: Path) -> list[Path] | None:
    zips = [folder / f"{n}.zip" for n in FULL_ZIPS]
    return zips if all(z.is_file() for z in zips) else None


def _small_in(folder: Path) -> list[Path] | None:
    zips = [folder / f"{n}.zip" for n in SMALL_ZIPS if (folder / f"{n}.zip").is_file()]
    return zips or None


def download_full(folder: Path, progress: bool = True) -> list[Path]:
    """Download the official zips into ``folder`` (atomic, MD5-checked); FsbenchError if impossible."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in FULL_ZIPS:
        final = folder / f"{name}.zip"
        out.append(final)
        if final.is_file():
            continue
        url = URL.format(name=name)
        log.warning("downloading %s to %s", url, final)
        md5 = hashlib.md5()
        try:
            with (
                urllib.request.urlopen(url, timeout=60) as resp,
                atomic_path(final) as tmp,
            ):
                total = int(resp.headers.get("Content-Length") or 0) or None
                bar = _progress_bar(total, f"{name}.zip", progress)
                with open(tmp, "wb") as f:
                    while chunk := resp.read(1 << 20):
                        md5.update(chunk)
                        f.write(chunk)
                        bar.update(len(chunk))
                bar.close()
                if md5.hexdigest() != MD5[name]:
                    raise FsbenchError(
                        f"download of {url} is corrupt (md5 {md5.hexdigest()}, expected {MD5[name]})"
                    )
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise FsbenchError(
                f"could not download {url} ({e}); put {name}.zip in {folder} by hand"
            ) from None
    return out


def _progress_bar(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not enabled)


def find_source(
    data_root: Path, omniglot_dir: str | Path | None, download: bool, progress: bool = True
) -> OmniglotSource:
    """The Omniglot zips to use, by the order of precedence in this module's docstring."""
    full_home = data_root / "omniglot"
    user_dir = Path(omniglot_dir).expanduser() if omniglot_dir is not None else None
    if user_dir is not None and not user_dir.is_dir():
        raise FsbenchError(f"omniglot_dir {user_dir} is not a folder")
    for folder in (full_home, user_dir):
        if folder is not None and (zips := _full_in(folder)):
            return OmniglotSource("full", zips)
    download_error = None
    if download:
        try:
            return OmniglotSource("full", download_full(full_home, progress))
        except FsbenchError as e:
            download_error = e
            log.warning("%s; falling back to the small background sets", e)
    env = os.environ.get("FSBENCH_OMNIGLOT")
    candidates = [user_dir, Path(env).expanduser() if env else None, _repo_shared_omniglot()]
    for folder in candidates:
        if folder is not None and folder.is_dir() and (zips := _small_in(folder)):
            return OmniglotSource("small", zips)
    if download_error is not None:
        raise download_error
    raise FsbenchError(
        f"Omniglot not found: put images_background.zip and images_evaluation.zip in {full_home}, "
        "pass download=True, or point omniglot_dir / $FSBENCH_OMNIGLOT at a folder holding "
        "images_background_small1.zip"
    )


def read_zips(
    zips: list[Path], size: int = IMAGE_SIZE, progress: bool = False
) -> dict[str, np.ndarray]:
    """Decode every drawing of ``zips`` (``<set>/<Alphabet>/<character>/<drawing>.png``).

    Returns images [N, size, size] uint8 (inverted), char [N] index into characters, and
    characters (sorted ``Alphabet/character`` names). A drawing present in two zips counts once.
    """
    members: dict[tuple[str, str], tuple[str, bytes]] = {}
    for zpath in zips:
        try:
            with zipfile.ZipFile(zpath) as zf:
                for info in zf.infolist():
                    parts = info.filename.split("/")
                    if info.is_dir() or len(parts) != 4 or not parts[3].lower().endswith(".png"):
                        continue
                    key = (f"{parts[1]}/{parts[2]}", parts[3])
                    if key not in members:
                        members[key] = (f"{zpath}:{info.filename}", zf.read(info))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
            raise FsbenchError(f"{zpath}: corrupt or truncated zip file ({e})") from None
        except Exception as e:  # zlib.error and friends from a damaged member
            raise FsbenchError(f"{zpath}: cannot read ({type(e).__name__}: {e})") from None
    if not members:
        raise FsbenchError(
            f"{', '.join(map(str, zips))}: no drawings found; expected "
            "<set>/<Alphabet>/<character>/<drawing>.png inside"
        )
    keys = sorted(members)
    characters = sorted({k[0] for k in keys})
    index = {c: i for i, c in enumerate(characters)}
    images = decode_pngs(
        [members[k] for k in keys],
        (size, size),
        resample=RESAMPLE,
        invert=True,
        progress="decoding Omniglot" if progress else None,
    )
    char = np.array([index[k[0]] for k in keys], dtype=np.int32)
    return {"images": images, "char": char, "characters": np.array(characters)}


def decoded(
    source: OmniglotSource, data_root: Path, size: int = IMAGE_SIZE, progress: bool = False
) -> dict[str, np.ndarray]:
    """``read_zips`` of the source, cached under ``data_root/omniglot/cache`` after the first call."""
    fp = fingerprint(source.zips) + f"-{size}-{RESAMPLE}-inv"
    cache = data_root / "omniglot" / "cache" / f"{source.kind}-{size}px.npz"
    hit = load_arrays(cache, fp)
    if hit is not None:
        return hit
    log.warning(
        "decoding Omniglot (%s) once; cached at %s", ", ".join(z.name for z in source.zips), cache
    )
    arrays = read_zips(source.zips, size, progress)
    save_arrays(cache, fp, **arrays)
    return arrays


def character_split(num_characters: int, seed: int) -> dict[str, np.ndarray]:
    """Character indices of train / val / test (see the module docstring for the rule)."""
    perm = np.random.RandomState(seed).permutation(num_characters)
    if num_characters >= FULL_CHARACTERS:
        n_trainval = TRAIN_CHARACTERS
    else:
        n_trainval = round(num_characters * 2 / 3)
    n_val = round(n_trainval * VAL_CHARACTERS / TRAIN_CHARACTERS)
    n_train = n_trainval - n_val
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train:n_trainval]),
        "test": np.sort(perm[n_trainval:]),
    }


def load_omniglot(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    seed: int = 0,
    omniglot_dir: str | Path | None = None,
    download: bool = False,
    progress: bool = True,
) -> ArrayStore:
    """One Omniglot split: uint8 [N, 1, 28, 28], one class per (character, rotation)."""
    source = find_source(data_root, omniglot_dir, download, progress)
    arrays = decoded(source, data_root, progress=progress)
    characters = [str(c) for c in arrays["characters"]]
    images, char = arrays["images"], arrays["char"].astype(np.int64)
    if images.ndim != 3 or images.shape[0] != char.shape[0]:
        raise FsbenchError(
            f"Omniglot cache under {data_root / 'omniglot'} is inconsistent; delete it"
        )
    splits = character_split(len(characters), seed)
    chosen = splits[split]
    if len(chosen) == 0:
        raise FsbenchError(
            f"the Omniglot {split} split is empty for this source ({len(characters)} characters)"
        )
    local = np.full(len(characters), -1, dtype=np.int64)
    local[chosen] = np.arange(len(chosen))
    keep = local[char] >= 0
    imgs = torch.from_numpy(images[keep])
    lab = torch.from_numpy(local[char][keep])
    nrot = len(ROTATIONS)
    data = torch.cat([torch.rot90(imgs, k, dims=(1, 2)) for k in range(nrot)]).unsqueeze(1)
    labels = torch.cat([lab * nrot + k for k in range(nrot)])
    names = [f"{characters[c]}/rot{deg:03d}" for c in chosen for deg in ROTATIONS]
    meta = {
        "source": [str(z) for z in source.zips],
        "omniglot_set": "full official (background + evaluation, 1,623 characters)"
        if source.kind == "full"
        else "small background sets (offline fallback, not the full benchmark)",
        "total_characters": len(characters),
        "split_characters": {k: int(len(v)) for k, v in splits.items()},
        "split_rule": "characters permuted with numpy RandomState(seed); first "
        + (f"{TRAIN_CHARACTERS}" if len(characters) >= FULL_CHARACTERS else "two thirds (rounded)")
        + f" are training characters, of which the last {VAL_CHARACTERS}/{TRAIN_CHARACTERS} "
        "fraction is val; the rest test",
        "split_seed": seed,
        "rotations": list(ROTATIONS),
        "preprocessing": f"resized to {IMAGE_SIZE}x{IMAGE_SIZE} with PIL LANCZOS, inverted "
        "(strokes 255 on 0), rotations by torch.rot90 counter-clockwise",
    }
    return ArrayStore(data, labels, names, device, meta=meta)
