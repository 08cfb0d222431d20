"""Omniglot in the published few-shot protocols, from the official zips or the small background sets.

Images: each 105x105 drawing is resized to 28x28 with PIL LANCZOS and inverted (strokes bright on
a dark background); rotations are exact ``torch.rot90`` quarter turns (counter-clockwise) of the
resized image. Decoded images are cached once under ``data_root/omniglot/cache``.

Two splits of the full set (1,623 characters), chosen with the ``omniglot_split`` option:

- ``vinyals`` (Prototypical Networks): the class lists of Vinyals et al. as shipped in
  jakesnell/prototypical-networks (package data ``splits/omniglot_vinyals``): 4,112 / 688 / 1,692
  classes, each rotation of a character a class of its own; ``trainval`` = train + val.
- ``cbfinn`` (MAML): the characters, sorted, shuffled with Python ``random.Random(1)``: 1,100
  meta-train, 100 meta-val, 423 meta-test, as cbfinn/maml (which shuffles os.listdir order, which
  differs between file systems: sorting makes the rule reproducible). A class is a character; each
  sampled task turns each of its classes by a random multiple of 90 degrees (``rotate_classes``).

Any other set of characters (the two small background sets offline, or partial zips) is split by
alphabet, so that no alphabet is on two sides: alphabets sorted, permuted with
``numpy.random.RandomState(seed)``, the test split takes whole alphabets until it holds 423/1,623
of the characters, then val until 172/1,623, the rest is train. Such a split is not the published
protocol: its results are labelled "Omniglot (small background sets, alphabet-disjoint)" and get
no published number beside them, and a warning line says that the full set was not found.

Sources, first found wins: ``images_background.zip`` + ``images_evaluation.zip`` in
``data_root/omniglot`` or ``omniglot_dir``; downloaded there from the official repository when
``download=True`` and the network allows; else the small background sets
(``images_background_small1.zip``, ``..._small2.zip``: 242 distinct characters of 8 alphabets,
Greek and Latin are in both and count once) from ``omniglot_dir`` or ``$FSBENCH_OMNIGLOT``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsbench.data.diskcache import atomic_path, fingerprint, load_arrays, save_arrays
from fsbench.data.png_decode import decode_pngs
from fsbench.data.store import ArrayStore
from fsbench.data.transform import InputTransform
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
TEST_CHARACTERS = 423  # the Vinyals test split's characters (cbfinn's meta-test is as large)
VAL_CHARACTERS = 172  # the Vinyals val split's characters
CBFINN_TRAIN, CBFINN_VAL = 1100, 100
OMNIGLOT_SPLITS = ("vinyals", "cbfinn")
ROTATIONS = (0, 90, 180, 270)
IMAGE_SIZE = 28
RESAMPLE = "lanczos"


_WARNED: set[Path] = set()  # small-set folders already warned about in this process


@dataclass
class OmniglotSource:
    """Which Omniglot set a split comes from: 'full' (official zips) or 'small' (background sets)."""

    kind: str
    zips: list[Path]


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
    candidates = [user_dir, Path(env).expanduser() if env else None]
    for folder in candidates:
        if folder is not None and folder.is_dir() and (zips := _small_in(folder)):
            if folder in _WARNED:
                return OmniglotSource("small", zips)
            _WARNED.add(folder)
            log.warning(
                "the full Omniglot (images_background.zip + images_evaluation.zip) is not in %s%s; "
                "using the small background sets in %s instead: split by alphabet, NOT comparable "
                "to published numbers (--download or --dataset-dir DIR for the full set)",
                full_home,
                f" or {user_dir}" if user_dir is not None else "",
                folder,
            )
            return OmniglotSource("small", zips)
    if download_error is not None:
        raise download_error
    raise FsbenchError(
        f"Omniglot not found: put images_background.zip and images_evaluation.zip in {full_home}, "
        "pass download=True, or point omniglot_dir / $FSBENCH_OMNIGLOT at a folder holding "
        "images_background_small1.zip"
    )


def omniglot_transform(size: int = IMAGE_SIZE) -> InputTransform:
    """Omniglot's drawings to model inputs: grayscale, whole image LANCZOS to size x size, inverted."""
    return InputTransform(1, size, fit="stretch", filter=RESAMPLE, invert=True)


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
        transform=omniglot_transform(size),
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
    log.info(
        "decoding Omniglot (%s) once; cached at %s", ", ".join(z.name for z in source.zips), cache
    )
    arrays = read_zips(source.zips, size, progress)
    save_arrays(cache, fp, **arrays)
    return arrays


def vinyals_classes(split: str) -> list[str]:
    """The class lines (``Alphabet/characterNN/rotDDD``) of one Vinyals split file."""
    text = (
        resources.files("fsbench.data")
        .joinpath("splits", "omniglot_vinyals", f"{split}.txt")
        .read_text()
    )
    return [line for line in text.splitlines() if line.strip()]


def cbfinn_split(characters: list[str]) -> dict[str, list[str]]:
    """cbfinn/maml's split of the 1,623 characters: sorted, random.Random(1).shuffle, 1,100/100/rest."""
    order = sorted(characters)
    random.Random(1).shuffle(order)
    return {
        "train": order[:CBFINN_TRAIN],
        "val": order[CBFINN_TRAIN : CBFINN_TRAIN + CBFINN_VAL],
        "test": order[CBFINN_TRAIN + CBFINN_VAL :],
    }


def alphabet_split(characters: list[str], seed: int) -> dict[str, list[str]]:
    """Split whole alphabets: test until 423/1,623 of the characters, then val until 172/1,623."""
    alphabets = sorted({c.split("/")[0] for c in characters})
    if len(alphabets) < 3:
        raise FsbenchError(
            f"an alphabet-disjoint train/val/test split needs at least 3 alphabets; these "
            f"Omniglot zips hold {len(alphabets)} ({', '.join(alphabets)})"
        )
    size = {a: sum(c.split("/")[0] == a for c in characters) for a in alphabets}
    order = [alphabets[i] for i in np.random.RandomState(seed).permutation(len(alphabets))]
    target_test = len(characters) * TEST_CHARACTERS / FULL_CHARACTERS
    target_val = len(characters) * VAL_CHARACTERS / FULL_CHARACTERS
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    held = {"val": 0, "test": 0}
    for i, alphabet in enumerate(order):
        after = len(order) - i - 1  # alphabets still to place: keep one for val and one for train
        if held["test"] < target_test and after >= 2:
            part = "test"
        elif held["val"] < target_val and after >= 1:
            part = "val"
        else:
            part = "train"
        parts[part].append(alphabet)
        if part != "train":
            held[part] += size[alphabet]
    return {
        part: sorted(c for c in characters if c.split("/")[0] in set(names))
        for part, names in parts.items()
    }


def is_full(characters: list[str]) -> bool:
    """The official 1,623 characters (every character of the Vinyals lists is there)."""
    if len(characters) != FULL_CHARACTERS:
        return False
    listed = {
        line.rsplit("/", 1)[0] for s in ("train", "val", "test") for line in vinyals_classes(s)
    }
    return listed == set(characters)


def _classes(
    split: str, characters: list[str], full: bool, mode: str, seed: int
) -> tuple[list[tuple[str, int]], str]:
    """The classes of a split as (character, quarter turns), and the rule that chose them."""
    if mode not in OMNIGLOT_SPLITS:
        raise FsbenchError(
            f"omniglot_split must be one of {', '.join(OMNIGLOT_SPLITS)}, got {mode!r}"
        )
    rotations = mode == "vinyals"  # each rotation a class; cbfinn rotates per task instead
    if full and mode == "vinyals":
        lines = vinyals_classes(split)
        classes = [(ln.rsplit("/", 1)[0], int(ln.rsplit("/rot", 1)[1]) // 90) for ln in lines]
        return (
            classes,
            "Vinyals et al. class lists (jakesnell/prototypical-networks splits/vinyals)",
        )
    if full:
        chars = cbfinn_split(characters)[split]
        rule = (
            "cbfinn/maml: characters sorted, shuffled with random.Random(1); 1,100 meta-train, "
            "100 meta-val, 423 meta-test"
        )
    else:
        chars = alphabet_split(characters, seed)[split]
        rule = (
            "alphabet-disjoint: alphabets permuted with numpy RandomState(seed); test takes whole "
            "alphabets up to 423/1,623 of the characters, val up to 172/1,623, the rest train"
        )
    if rotations:
        return [(c, k) for c in chars for k in range(len(ROTATIONS))], rule
    return [(c, 0) for c in chars], rule


def load_omniglot(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    seed: int = 0,
    omniglot_dir: str | Path | None = None,
    download: bool = False,
    progress: bool = True,
    omniglot_split: str = "vinyals",
) -> ArrayStore:
    """One Omniglot split: uint8 [N, 1, 28, 28]; a class per (character, rotation) or character."""
    source = find_source(data_root, omniglot_dir, download, progress)
    arrays = decoded(source, data_root, progress=progress)
    characters = [str(c) for c in arrays["characters"]]
    images, char = arrays["images"], arrays["char"].astype(np.int64)
    if images.ndim != 3 or images.shape[0] != char.shape[0]:
        raise FsbenchError(
            f"Omniglot cache under {data_root / 'omniglot'} is inconsistent; delete it"
        )
    full = source.kind == "full" and is_full(characters)
    classes, rule = _classes(split, characters, full, omniglot_split, seed)
    if not classes:
        raise FsbenchError(
            f"the Omniglot {split} split is empty for this source ({len(characters)} characters)"
        )
    index = {c: i for i, c in enumerate(characters)}
    missing = sorted({c for c, _ in classes if c not in index})
    if missing:
        raise FsbenchError(
            f"Omniglot zips lack {len(missing)} listed characters, e.g. {missing[0]}"
        )
    order = np.argsort(char, kind="stable")
    starts = np.searchsorted(char[order], np.arange(len(characters)))
    ends = np.searchsorted(char[order], np.arange(len(characters)), side="right")
    parts, labels = [], []
    for label, (name, turns) in enumerate(classes):
        c = index[name]
        imgs = torch.from_numpy(images[order[starts[c] : ends[c]]])
        parts.append(torch.rot90(imgs, turns, dims=(1, 2)) if turns else imgs)
        labels.append(torch.full((len(imgs),), label, dtype=torch.int64))
    data = torch.cat(parts).unsqueeze(1)
    per_task_rotation = omniglot_split == "cbfinn"
    names = [f"{c}/rot{ROTATIONS[k]:03d}" if not per_task_rotation else c for c, k in classes]
    alphabets = sorted({c.split("/")[0] for c, _ in classes})
    meta: dict = {
        "source": [str(z) for z in source.zips],
        "omniglot_set": "full official (background + evaluation, 1,623 characters)"
        if full
        else (
            "small background sets (offline fallback, not the full benchmark)"
            if source.kind == "small"
            else f"partial set of {len(characters)} characters (not the full benchmark)"
        ),
        "omniglot_split": omniglot_split
        if full
        else f"alphabet-disjoint ({omniglot_split} classes)",
        "split_rule": rule,
        "split_seed": seed if not full else None,
        "characters": len({c for c, _ in classes}),
        "total_characters": len(characters),
        "alphabets": alphabets,
        "rotations": "a random multiple of 90 degrees per class and task (cbfinn/maml)"
        if per_task_rotation
        else "each of 0/90/180/270 degrees is a class of its own",
        "preprocessing": f"resized to {IMAGE_SIZE}x{IMAGE_SIZE} with PIL LANCZOS, inverted "
        "(strokes 255 on 0), rotations by torch.rot90 counter-clockwise",
        "transform": omniglot_transform().to_dict(),
    }
    if not full:
        title = (
            "Omniglot (small background sets, alphabet-disjoint)"
            if source.kind == "small"
            else f"Omniglot ({len(characters)} characters, alphabet-disjoint)"
        )
        meta.update(
            comparable=False,
            label=title,
            not_comparable="not the full Omniglot: published numbers use 1,623 characters and "
            "the published split",
        )
    return ArrayStore(
        data, torch.cat(labels), names, device, meta=meta, rotate_classes=per_task_rotation
    )
