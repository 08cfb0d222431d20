"""Oxford Flowers-102 and Oxford-IIIT Pets from their public releases; every split has every class.

Neither can be downloaded here: fsbench reads the files as the Visual Geometry Group distributes
them, from ``path`` (``--dataset-dir``), else ``data_root/flowers102`` / ``data_root/oxford-pets``.

Flowers-102 (https://www.robots.ox.ac.uk/~vgg/data/flowers/102/): ``jpg/image_00001.jpg`` ...
(``102flowers.tgz`` extracted, or the ``.tgz`` itself), ``imagelabels.mat`` (``labels``: the
class 1..102 of image k at position k) and ``setid.mat`` (``trnid``, ``valid``, ``tstid``: 1-based
image numbers). The splits are the official ones: train = trnid (1,020 images), val = valid
(1,020), test = tstid (6,149), each with all 102 classes. The release names no classes, so the
class names are the official label numbers "1" .. "102".

Oxford-IIIT Pets (https://www.robots.ox.ac.uk/~vgg/data/pets/): ``images/<Breed>_<n>.jpg``
(``images.tar.gz`` extracted, or the archive itself) and ``annotations/trainval.txt`` and
``annotations/test.txt`` (or ``annotations.tar.gz``), lines ``Image CLASS-ID SPECIES BREED-ID``
with CLASS-ID 1..37 (``#`` lines are comments). test = test.txt (3,669 images). The release has
no val split, so train and val are taken from trainval.txt by a fixed rule: within each class, in
the file's order, every 5th image (the 5th, 10th, 15th, ...) goes to val, the others to train
(about four fifths / one fifth of trainval.txt's 3,680). Class names are the breeds as the image files spell them (``Abyssinian``,
``american_bulldog``: capitalised names are cats), ordered by CLASS-ID.

Images: decoded once with PIL, converted to RGB (grayscale, CMYK, palette and RGBA files alike;
alpha is dropped), then the centred square of side min(width, height) is resized to
``image_size`` x ``image_size`` with PIL's antialiased bilinear filter (= shorter side to
``image_size``, then a centre crop). Large JPEGs are decoded at a reduced DCT scale first, never
below twice ``image_size`` on the shorter side (PIL's ``draft``). Each split is stored as uint8
[N, 3, S, S], grouped by class (within a class: Flowers by image number, Pets in its list's
order), and cached under ``data_root/<dataset>/cache`` keyed by the source folder,
``image_size`` and the files' names, sizes and modification times, so the second load only reads
the cache.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from fsbench.data.diskcache import fingerprint, load_arrays, save_arrays
from fsbench.data.images import ImageData, check_image_size, decode_all
from fsbench.data.store import ArrayStore
from fsbench.data.transform import photo_transform
from fsbench.errors import FsbenchError

FLOWERS_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
DEFAULT_IMAGE_SIZE = 84
PETS_VAL_EVERY = 5  # within a class of trainval.txt, images 5, 10, 15, ... (1-based) are val
SPLITS = ("train", "val", "test")
CACHE_VERSION = "oxford-1"  # bump when decoding changes, so old caches are rebuilt

# An image to decode: a file, or the bytes of an archive member.


@dataclass(frozen=True)
class SplitList:
    """One split as its release lists it: image file names and class ids 0..C-1, class-grouped."""

    files: list[str]
    labels: np.ndarray


@dataclass(frozen=True)
class Catalogue:
    """What a release's lists say: the three splits, the class names, the split rule in words."""

    splits: dict[str, SplitList]
    class_names: list[str]
    split_rule: str
    list_files: list[Path]  # the files the lists were read from (part of the cache key)


@dataclass(frozen=True)
class ImageSource:
    """Where a release's images are: a folder of files, or a .tgz with them under ``member_dir``."""

    folder: Path | None
    archive: Path | None
    member_dir: str

    @property
    def where(self) -> Path:
        """The folder or archive, for messages and the cache key."""
        return self.folder if self.folder is not None else self.archive  # type: ignore[return-value]


@dataclass(frozen=True)
class Release:
    """The facts that differ between the two datasets."""

    label: str  # as tables print it
    dirname: str  # its folder under the data root
    url: str
    needs: str  # what to put in the folder, in words


FLOWERS = Release(
    "Oxford Flowers-102",
    "flowers102",
    FLOWERS_URL,
    "jpg/ (from 102flowers.tgz, or the .tgz itself), imagelabels.mat and setid.mat",
)
PETS = Release(
    "Oxford-IIIT Pets",
    "oxford-pets",
    PETS_URL,
    "images/ (from images.tar.gz) and annotations/ with trainval.txt and test.txt (from "
    "annotations.tar.gz; either archive may stay packed)",
)


# ---------------------------------------------------------------------------- finding the files


def dataset_folder(release: Release, path: str | Path | None, data_root: Path) -> Path:
    """The user's folder (``path``), else ``data_root/<dirname>``; FsbenchError saying what to put where."""
    folder = Path(path).expanduser() if path is not None else data_root / release.dirname
    if not folder.is_dir():
        missing(release, folder)
    return folder


def missing(release: Release, folder: Path, detail: str = "") -> NoReturn:
    """Raise the one-line FsbenchError that says which files go where, and where they come from."""
    found = f" ({detail})" if detail else ""
    raise FsbenchError(
        f"{release.label} not found in {folder}{found}: put there {release.needs}, as "
        f"{release.url} distributes them, or pass --dataset-dir DIR (nothing is downloaded)"
    )


def image_source(release: Release, folder: Path, subdir: str, archive: str) -> ImageSource:
    """The extracted ``subdir/`` if present, else the packed ``archive`` beside the lists."""
    if (folder / subdir).is_dir():
        return ImageSource(folder / subdir, None, subdir)
    if (folder / archive).is_file():
        return ImageSource(None, folder / archive, subdir)
    missing(release, folder, f"no {subdir}/ folder or {archive}")


# ---------------------------------------------------------------------------- Flowers-102 lists


def _mat_vector(path: Path, key: str) -> np.ndarray:
    """The integer vector stored under ``key`` in a MATLAB file (any shape, flattened), as int64."""
    import scipy.io  # only Flowers-102 needs it

    try:
        content = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError, zipfile.BadZipFile, NotImplementedError) as e:
        raise FsbenchError(f"{path}: not a readable MATLAB file ({e})") from None
    if key not in content:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise FsbenchError(f"{path}: has no variable {key!r} (it has {', '.join(keys) or 'none'})")
    values = np.asarray(content[key]).ravel()
    if values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)):
        raise FsbenchError(f"{path}: {key} must hold numbers, is {values.dtype}")
    if not np.array_equal(values, np.round(values)):
        raise FsbenchError(f"{path}: {key} must hold whole numbers")
    return values.astype(np.int64)


def flowers_catalogue(folder: Path) -> Catalogue:
    """The official splits of Flowers-102 read from ``imagelabels.mat`` and ``setid.mat``."""
    label_file, setid_file = folder / "imagelabels.mat", folder / "setid.mat"
    for f in (label_file, setid_file):
        if not f.is_file():
            missing(FLOWERS, folder, f"no {f.name}")
    per_image = _mat_vector(label_file, "labels")  # per_image[k - 1]: the class of image k
    if len(per_image) == 0 or per_image.min() < 1:
        raise FsbenchError(f"{label_file}: labels must be class numbers >= 1")
    numbers = np.unique(per_image)  # the class numbers in use (1..102 in the release)
    index = {int(n): i for i, n in enumerate(numbers)}
    splits: dict[str, SplitList] = {}
    seen: dict[int, str] = {}
    for split, key in zip(SPLITS, ("trnid", "valid", "tstid"), strict=True):
        ids = _mat_vector(setid_file, key)
        if len(ids) == 0 or ids.min() < 1 or ids.max() > len(per_image):
            raise FsbenchError(
                f"{setid_file}: {key} must hold image numbers 1..{len(per_image)} (the length of "
                f"imagelabels.mat's labels)"
            )
        for i in ids.tolist():
            if i in seen:
                raise FsbenchError(f"{setid_file}: image {i} is listed twice ({seen[i]}, {key})")
            seen[i] = key
        classes = np.array([index[int(n)] for n in per_image[ids - 1]], dtype=np.int64)
        order = np.lexsort((ids, classes))  # grouped by class, image number within a class
        files = [f"image_{i:05d}.jpg" for i in ids[order].tolist()]
        splits[split] = SplitList(files, classes[order])
    names = [str(int(n)) for n in numbers]
    rule = (
        f"the official setid.mat splits: train = trnid ({len(splits['train'].files):,} images), "
        f"val = valid ({len(splits['val'].files):,}), test = tstid "
        f"({len(splits['test'].files):,}); all {len(names)} classes in every split"
    )
    _check_every_class(FLOWERS, splits, names, setid_file)
    return Catalogue(splits, names, rule, [label_file, setid_file])


# ---------------------------------------------------------------------------- Pets lists


def parse_pets_list(text: str, name: str) -> list[tuple[str, int]]:
    """(image name, CLASS-ID) of each line ``Image CLASS-ID SPECIES BREED-ID``; ``#`` lines skipped."""
    rows: list[tuple[str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        try:
            class_id = int(fields[1]) if len(fields) >= 2 else 0
        except ValueError:
            class_id = 0
        if class_id < 1:
            raise FsbenchError(
                f"{name} line {number}: expected 'Image CLASS-ID SPECIES BREED-ID' with CLASS-ID "
                f">= 1, got {line!r}"
            )
        rows.append((fields[0], class_id))
    return rows


def breed_of(image: str) -> str:
    """The breed an image name spells: ``american_bulldog_12`` -> ``american_bulldog``."""
    return image.rsplit("_", 1)[0]


def pets_val_mask(labels: np.ndarray, every: int = PETS_VAL_EVERY) -> np.ndarray:
    """True for the images that go to val: within each class, in order, every ``every``-th one."""
    rank = np.zeros(len(labels), dtype=np.int64)
    counts: dict[int, int] = {}
    for i, c in enumerate(labels.tolist()):
        rank[i] = counts.get(c, 0)
        counts[c] = rank[i] + 1
    return rank % every == every - 1


def _pets_lists(folder: Path) -> tuple[dict[str, str], list[Path]]:
    """The texts of trainval.txt and test.txt, from ``annotations/`` or ``annotations.tar.gz``."""
    names = ("trainval.txt", "test.txt")
    extracted = folder / "annotations"
    if extracted.is_dir():
        paths = [extracted / n for n in names]
        for p in paths:
            if not p.is_file():
                missing(PETS, folder, f"no annotations/{p.name}")
        return {
            n: p.read_text(encoding="utf-8", errors="replace")
            for n, p in zip(names, paths, strict=True)
        }, paths
    archive = folder / "annotations.tar.gz"
    if not archive.is_file():
        missing(PETS, folder, "no annotations/ folder or annotations.tar.gz")
    wanted = {f"annotations/{n}": n for n in names}
    texts = {
        wanted[member]: data.decode("utf-8", errors="replace")
        for member, data in _archive_members(archive, set(wanted))
    }
    for n in names:
        if n not in texts:
            raise FsbenchError(f"{archive}: has no annotations/{n}")
    return texts, [archive]


def pets_catalogue(folder: Path) -> Catalogue:
    """Pets' splits: test = test.txt; train / val from trainval.txt by ``pets_val_mask``."""
    texts, list_files = _pets_lists(folder)
    rows = {n: parse_pets_list(t, f"annotations/{n}") for n, t in texts.items()}
    breeds: dict[int, str] = {}
    listed: dict[str, str] = {}
    for name, entries in rows.items():
        for image, class_id in entries:
            breed = breeds.setdefault(class_id, breed_of(image))
            if breed != breed_of(image):
                raise FsbenchError(
                    f"annotations/{name}: CLASS-ID {class_id} names both {breed} and "
                    f"{breed_of(image)} ({image})"
                )
            if image in listed:
                raise FsbenchError(f"{image} is listed twice (annotations/{listed[image]}, {name})")
            listed[image] = name
    ids = sorted(breeds)
    index = {c: i for i, c in enumerate(ids)}
    names = [breeds[c] for c in ids]

    def split_list(entries: list[tuple[str, int]]) -> SplitList:
        labels = np.array([index[c] for _, c in entries], dtype=np.int64)
        order = np.argsort(labels, kind="stable")  # grouped by class, file order within a class
        return SplitList([f"{entries[i][0]}.jpg" for i in order.tolist()], labels[order])

    trainval = rows["trainval.txt"]
    val = pets_val_mask(np.array([c for _, c in trainval], dtype=np.int64))
    splits = {
        "train": split_list([e for e, v in zip(trainval, val, strict=True) if not v]),
        "val": split_list([e for e, v in zip(trainval, val, strict=True) if v]),
        "test": split_list(rows["test.txt"]),
    }
    rule = (
        f"test = annotations/test.txt ({len(splits['test'].files):,} images); train and val "
        f"from trainval.txt: within each class, in file order, every {PETS_VAL_EVERY}th image "
        f"({PETS_VAL_EVERY}th, {2 * PETS_VAL_EVERY}th, ...) is val ({len(splits['val'].files):,}), "
        f"the rest train ({len(splits['train'].files):,}); all {len(names)} classes in every split"
    )
    _check_every_class(PETS, splits, names, folder / "annotations")
    return Catalogue(splits, names, rule, list_files)


def _check_every_class(
    release: Release, splits: dict[str, SplitList], names: list[str], where: Path
) -> None:
    """FsbenchError unless every split holds every class (these datasets' splits share them)."""
    for split, listing in splits.items():
        absent = sorted(set(range(len(names))) - set(listing.labels.tolist()))
        if absent:
            raise FsbenchError(
                f"{release.label}: the {split} split of {where} has no image of class "
                f"{names[absent[0]]}"
                + (f" (nor of {len(absent) - 1} more)" if len(absent) > 1 else "")
                + "; every split must hold every class"
            )


# ---------------------------------------------------------------------------- decoding


def _archive_members(archive: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of the members of a .tar(.gz) named in ``wanted``, in archive order."""
    try:
        with tarfile.open(archive, "r|*") as tar:  # streamed: one pass, no index of members
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and name in wanted:
                    f = tar.extractfile(member)
                    if f is not None:
                        yield name, f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise FsbenchError(f"{archive}: not a readable tar archive ({e})") from None


def _image_stream(source: ImageSource, files: list[str]) -> Iterator[tuple[int, str, ImageData]]:
    """(position, name for messages, data) of every file of a split, from a folder or an archive."""
    if source.folder is not None:
        paths = [source.folder / f for f in files]
        for i, p in enumerate(paths):
            yield i, str(p), p
        return
    assert source.archive is not None
    position = {f"{source.member_dir}/{f}": i for i, f in enumerate(files)}
    found = 0
    for member, data in _archive_members(source.archive, set(position)):
        found += 1
        yield position[member], f"{source.archive}:{member}", data
    if found < len(files):
        raise FsbenchError(
            f"{source.archive}: {len(files) - found} of the split's {len(files)} images are not "
            f"in the archive (looked for {source.member_dir}/<name>)"
        )


# ---------------------------------------------------------------------------- caching


def _split_fingerprint(catalogue: Catalogue, source: ImageSource, split: str, size: int) -> str:
    """What a cached split depends on: the decoding, the size, the list and the source files."""
    listing = catalogue.splits[split]
    h = hashlib.sha1(f"{CACHE_VERSION}\0{size}\0{split}\0".encode())
    h.update("\n".join(listing.files).encode())
    h.update(listing.labels.tobytes())
    h.update("\n".join(catalogue.class_names).encode())
    files = list(catalogue.list_files)
    if source.folder is not None:
        files += [source.folder / f for f in listing.files]
    else:
        files.append(source.where)
    return f"{h.hexdigest()}-{fingerprint(files)}"


def _check_present(release: Release, source: ImageSource, files: list[str]) -> None:
    """FsbenchError naming a missing image (folders only: an archive is checked as it is read)."""
    if source.folder is None:
        return
    absent = [f for f in files if not (source.folder / f).is_file()]
    if absent:
        raise FsbenchError(
            f"{release.label}: {len(absent)} listed images are missing from {source.folder}, "
            f"e.g. {absent[0]}"
        )


def split_images(
    release: Release,
    catalogue: Catalogue,
    source: ImageSource,
    split: str,
    *,
    size: int,
    data_root: Path,
    progress: bool,
) -> np.ndarray:
    """One split's images as uint8 [N, 3, size, size]: from the cache, else decoded and cached."""
    files = catalogue.splits[split].files
    _check_present(release, source, files)
    where = hashlib.sha1(str(source.where.resolve()).encode()).hexdigest()[:10]
    cache = data_root / release.dirname / "cache" / f"{split}-{size}px-{where}.npz"
    key = _split_fingerprint(catalogue, source, split, size)
    hit = load_arrays(cache, key)
    if hit is not None and hit.get("images", np.empty(0)).shape == (len(files), 3, size, size):
        return hit["images"]
    images = decode_all(
        _image_stream(source, files),
        len(files),
        size,
        progress=f"decoding {release.label} {split}" if progress else None,
    )
    save_arrays(cache, key, images=images)
    return images


# ---------------------------------------------------------------------------- loaders


def _store(
    release: Release,
    catalogue: Catalogue,
    source: ImageSource,
    folder: Path,
    split: str,
    *,
    size: int,
    data_root: Path,
    device: torch.device,
    progress: bool,
) -> ArrayStore:
    """The ArrayStore of one split, with the provenance ``describe_split`` reports."""
    images = split_images(
        release, catalogue, source, split, size=size, data_root=data_root, progress=progress
    )
    meta = {
        "label": release.label,
        "source": str(folder),
        "split_rule": catalogue.split_rule,
        "same_classes": True,
        "preprocessing": f"{size}x{size} RGB: shorter side to {size}, centre crop (PIL bilinear, "
        "antialiased); grayscale, CMYK and RGBA converted to RGB",
        "transform": photo_transform(size, 3).to_dict(),
    }
    return ArrayStore(
        torch.from_numpy(images),
        torch.from_numpy(catalogue.splits[split].labels.copy()),
        catalogue.class_names,
        device,
        meta=meta,
    )


def load_flowers102(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    path: str | Path | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    progress: bool = True,
) -> ArrayStore:
    """One official split of Flowers-102: uint8 [N, 3, S, S], 102 classes named "1".."102"."""
    size = check_image_size(image_size)
    folder = dataset_folder(FLOWERS, path, data_root)
    source = image_source(FLOWERS, folder, "jpg", "102flowers.tgz")
    catalogue = flowers_catalogue(folder)
    store = _store(
        FLOWERS,
        catalogue,
        source,
        folder,
        split,
        size=size,
        data_root=data_root,
        device=device,
        progress=progress,
    )
    store.meta["class_names"] = "the official label numbers (the release names no classes)"
    return store


def load_pets(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    path: str | Path | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    progress: bool = True,
) -> ArrayStore:
    """One split of Oxford-IIIT Pets: uint8 [N, 3, S, S], 37 breeds ordered by CLASS-ID."""
    size = check_image_size(image_size)
    folder = dataset_folder(PETS, path, data_root)
    source = image_source(PETS, folder, "images", "images.tar.gz")
    catalogue = pets_catalogue(folder)
    return _store(
        PETS,
        catalogue,
        source,
        folder,
        split,
        size=size,
        data_root=data_root,
        device=device,
        progress=progress,
    )
