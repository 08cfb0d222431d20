"""Meta-Dataset's converted records, read without TensorFlow (dataset name ``metadataset``).

The official conversion (google-research/meta-dataset, ``dataset_conversion``) writes one folder
per source holding ``dataset_spec.json`` and one ``{class_id}.tfrecords`` file per class, each a
sequence of ``tf.train.Example`` records with an ``image`` (JPEG/PNG bytes) and a ``label``
(int64, the class id). Here:

- the TFRecord framing (uint64 length, masked CRC-32C of the length, the data, masked CRC-32C of
  the data) is read directly and both checksums are checked (google-crc32c computes CRC-32C);
- the Example protobuf is parsed by a small wire-format reader (``parse_example``): only the
  three Feature kinds an Example can hold, no generated protobuf classes;
- images are decoded with PIL, converted to RGB (Meta-Dataset's decoder gives 3 channels for
  every source) and resized to image_size x image_size (bilinear, aspect ratio not kept, as
  Meta-Dataset's ``tf.image.resize``), then cached decoded, one file per class.

Class splits come from each ``dataset_spec.json``: a flat ``DatasetSpecification`` (contiguous
class ids: TRAIN first, then VALID, then TEST), Omniglot's ``BiLevelDatasetSpecification``
(alphabets: superclasses, contiguous too) and ILSVRC's ``HierarchicalDatasetSpecification``
(WordNet sub-graphs per split; class ids from ``class_names``). MD-v2 as LITE uses it: ILSVRC
trains on all 1,000 classes (LITE ships a flat spec for it; a hierarchical spec is flattened into
TRAIN the same way) and MNIST (LITE's extra source) joins the training sources.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fsbench.data.diskcache import fingerprint, load_arrays, save_arrays
from fsbench.data.md_records import RecordImages, cached_offsets
from fsbench.data.store import ArrayStore
from fsbench.errors import FsbenchError

SOURCES = (
    "ilsvrc_2012",
    "omniglot",
    "aircraft",
    "cu_birds",
    "dtd",
    "quickdraw",
    "fungi",
    "vgg_flower",
    "traffic_sign",
    "mscoco",
)
EXTRAS = ("mnist",)  # LITE's extra training source (MD-v2)
# MD-v2 as LITE's run.py sets it: train, validation and test sources.
MD_V2 = {
    "train": (
        "ilsvrc_2012",
        "omniglot",
        "aircraft",
        "cu_birds",
        "dtd",
        "quickdraw",
        "fungi",
        "mnist",
    ),
    "val": ("omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi", "mscoco"),
    "test": (
        "omniglot",
        "aircraft",
        "cu_birds",
        "dtd",
        "quickdraw",
        "fungi",
        "traffic_sign",
        "mscoco",
    ),
}
SPEC_FILE = "dataset_spec.json"
SPLIT_KEYS = {"train": "TRAIN", "val": "VALID", "test": "TEST"}
IMAGE_SIZES = (84, 224)
MD_READ = ("stream", "memory")  # how a split's images are read (load_metadataset)

# -- TFRecord framing -----------------------------------------------------------------------


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C: rotate right by 15 bits and add 0xa282ead8 (mod 2^32)."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: Path) -> Iterator[bytes]:
    """The records of one TFRecord file, each checked against both of its CRCs.

    A short file, a bad checksum or a truncated record raises FsbenchError naming the file and
    the record's position.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FsbenchError(f"cannot read {path} ({exc.strerror or exc})") from None
    pos, k = 0, 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise FsbenchError(f"{path}: truncated record header at byte {pos} (record {k})")
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if masked_crc(header) != length_crc:
            raise FsbenchError(
                f"{path}: corrupt record {k} at byte {pos} (length checksum mismatch); "
                "convert this source again"
            )
        start, end = pos + 12, pos + 12 + length
        if end + 4 > len(data):
            raise FsbenchError(f"{path}: truncated record {k} at byte {pos}")
        body = data[start:end]
        (data_crc,) = struct.unpack("<I", data[end : end + 4])
        if masked_crc(body) != data_crc:
            raise FsbenchError(
                f"{path}: corrupt record {k} at byte {pos} (data checksum mismatch); "
                "convert this source again"
            )
        yield body
        pos, k = end + 4, k + 1


# -- tf.train.Example wire format -------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A base-128 varint at ``pos``: (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message: ints for varints, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _feature(buf: bytes) -> list:
    """A Feature: bytes_list (1), float_list (2) or int64_list (3), packed or not."""
    for number, _, value in _fields(buf):
        out: list = []
        for inner, wire, item in _fields(value):
            if inner != 1:
                continue
            if number == 1:
                out.append(bytes(item))
            elif number == 2:
                out.extend(struct.unpack(f"<{len(item) // 4}f", item))  # packed or one
            elif number == 3:
                if wire == 0:
                    out.append(item - (1 << 64) if item >= 1 << 63 else item)
                else:  # packed
                    pos = 0
                    while pos < len(item):
                        v, pos = _varint(item, pos)
                        out.append(v - (1 << 64) if v >= 1 << 63 else v)
        return out
    return []


def parse_example(buf: bytes) -> dict[str, list]:
    """A serialized ``tf.train.Example`` as {feature name: list of bytes, floats or ints}."""
    features: dict[str, list] = {}
    for number, _, value in _fields(buf):
        if number != 1:  # Example.features
            continue
        for entry_number, _, entry in _fields(value):
            if entry_number != 1:  # Features.feature (a map entry)
                continue
            key, feat = "", b""
            for n, _, v in _fields(entry):
                if n == 1:
                    key = bytes(v).decode()
                elif n == 2:
                    feat = v
            features[key] = _feature(feat)
    return features


# -- dataset_spec.json -----------------------------------------------------------------------


@dataclass
class SourceSpec:
    """One source's classes: names, image counts, split membership and its hierarchy, if any.

    ``split_classes[split]`` lists absolute class ids; ``superclasses[split]`` (Omniglot) lists
    each alphabet's class ids; ``span_leaves[split]`` (ILSVRC) lists, for every internal node of
    the split's WordNet sub-graph, the class ids of the leaves below it.
    """

    name: str
    kind: str  # flat | bilevel | hierarchical
    class_names: dict[int, str]
    images_per_class: dict[int, int]
    split_classes: dict[str, list[int]]
    file_pattern: str = "{}.tfrecords"
    superclasses: dict[str, list[list[int]]] = field(default_factory=dict)
    span_leaves: dict[str, list[list[int]]] = field(default_factory=dict)


def _contiguous(counts: dict[str, int]) -> dict[str, list[int]]:
    """TRAIN, VALID, TEST as consecutive id ranges (Meta-Dataset's ``get_classes``)."""
    out, offset = {}, 0
    for split, key in SPLIT_KEYS.items():
        n = int(counts.get(key, 0))
        out[split] = list(range(offset, offset + n))
        offset += n
    return out


def _graph_leaves(nodes: list[dict]) -> tuple[list[str], dict[str, list[str]]]:
    """(leaf ids, for each internal node the sorted leaf ids below it) of one split's sub-graph."""
    children = {n["wn_id"]: list(n.get("children_ids", [])) for n in nodes}
    below: dict[str, set[str]] = {}

    def leaves_of(wn: str) -> set[str]:
        if wn not in below:
            kids = [c for c in children.get(wn, []) if c in children]
            below[wn] = {wn} if not kids else set().union(*(leaves_of(c) for c in kids))
        return below[wn]

    for wn in children:
        leaves_of(wn)
    leaves = sorted(w for w, kids in children.items() if not [c for c in kids if c in children])
    internal = {w: sorted(below[w]) for w in sorted(children) if w not in set(leaves)}
    return leaves, internal


def load_spec(folder: Path, *, flatten_hierarchy: bool = False) -> SourceSpec:
    """The dataset_spec.json of one converted source folder, as a SourceSpec.

    ``flatten_hierarchy`` (MD-v2's ILSVRC): every leaf class of every split goes to train.
    """
    path = Path(folder) / SPEC_FILE
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise FsbenchError(
            f"cannot read {path} ({exc.strerror or exc}); --dataset-dir must hold "
            "one folder per converted Meta-Dataset source"
        ) from None
    except ValueError as exc:
        raise FsbenchError(f"{path} is not valid JSON ({exc})") from None
    try:
        kind_name = raw["__class__"]
        names = {int(k): str(v) for k, v in raw["class_names"].items()}
        pattern = str(raw.get("file_pattern", "{}.tfrecords"))
        if kind_name == "DatasetSpecification":
            counts = {int(k): int(v) for k, v in raw["images_per_class"].items()}
            return SourceSpec(
                raw["name"], "flat", names, counts, _contiguous(raw["classes_per_split"]), pattern
            )
        if kind_name == "BiLevelDatasetSpecification":
            counts = {int(k): int(v) for k, v in raw["images_per_class"].items()}
            per_super = {int(k): int(v) for k, v in raw["classes_per_superclass"].items()}
            super_ranges = _contiguous(raw["superclasses_per_split"])
            split_classes, supers = {}, {}
            for split, sup_ids in super_ranges.items():
                groups = []
                for s in sup_ids:
                    first = sum(per_super[i] for i in range(s))
                    groups.append(list(range(first, first + per_super[s])))
                supers[split] = groups
                split_classes[split] = [c for g in groups for c in g]
            return SourceSpec(
                raw["name"], "bilevel", names, counts, split_classes, pattern, superclasses=supers
            )
        if kind_name == "HierarchicalDatasetSpecification":
            ids = {wn: i for i, wn in names.items()}
            counts, split_classes, spans = {}, {}, {}
            for split, key in SPLIT_KEYS.items():
                leaves, internal = _graph_leaves(raw["split_subgraphs"].get(key, []))
                for wn in leaves:
                    counts[ids[wn]] = int(raw["images_per_class"][key][wn])
                split_classes[split] = sorted(ids[wn] for wn in leaves)
                spans[split] = [sorted(ids[w] for w in lv) for lv in internal.values()]
            if flatten_hierarchy:
                every = sorted(c for s in split_classes.values() for c in s)
                split_classes = {"train": every, "val": [], "test": []}
                spans = {}
            return SourceSpec(
                raw["name"],
                "hierarchical",
                names,
                counts,
                split_classes,
                pattern,
                span_leaves=spans,
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise FsbenchError(f"{path}: not a Meta-Dataset dataset_spec.json ({exc!r})") from None
    raise FsbenchError(f"{path}: unknown specification class {kind_name!r}")


# -- decoding and caching --------------------------------------------------------------------


def decode_image(data: bytes, size: int, where: str) -> np.ndarray:
    """JPEG/PNG bytes as uint8 [3, size, size] (RGB, bilinear resize)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FsbenchError(f"{where}: cannot decode the image ({exc})") from None


def read_class(folder: Path, spec: SourceSpec, class_id: int, size: int) -> np.ndarray:
    """All images of one class as uint8 [n, 3, size, size], their labels checked."""
    path = Path(folder) / spec.file_pattern.format(class_id)
    if not path.is_file():
        raise FsbenchError(f"{path} is missing: the {spec.name} records are incomplete")
    images = []
    for k, record in enumerate(read_records(path)):
        try:
            ex = parse_example(record)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FsbenchError(f"{path}: record {k} is not a tf.train.Example ({exc})") from None
        if not ex.get("image") or not ex.get("label"):
            raise FsbenchError(f"{path}: record {k} has no image or no label feature")
        if int(ex["label"][0]) != class_id:
            raise FsbenchError(f"{path}: record {k} has label {ex['label'][0]}, not {class_id}")
        images.append(decode_image(ex["image"][0], size, f"{path} record {k}"))
    if not images:
        raise FsbenchError(f"{path} holds no records")
    return np.stack(images)


def cached_class(
    folder: Path, spec: SourceSpec, class_id: int, size: int, cache_root: Path
) -> np.ndarray:
    """``read_class``, decoded once and then loaded from ``cache_root`` (one .npz per class)."""
    path = Path(folder) / spec.file_pattern.format(class_id)
    key = fingerprint([path]) + f"-{size}"
    cache = cache_root / spec.name / str(size) / f"{class_id}.npz"
    hit = load_arrays(cache, key)
    if hit is not None:
        return hit["images"]
    images = read_class(folder, spec, class_id, size)
    save_arrays(cache, key, images=images)
    return images


def source_folder(root: Path, source: str) -> Path:
    """``root/source``, checked."""
    folder = Path(root).expanduser() / source
    if not (folder / SPEC_FILE).is_file():
        raise FsbenchError(
            f"--dataset-dir {root}: no {source}/{SPEC_FILE} (convert {source} with "
            "Meta-Dataset's dataset_conversion, or leave it out with --md-sources)"
        )
    return folder


def parse_sources(sources: str | list[str] | tuple[str, ...] | None, split: str) -> list[str]:
    """The sources of a split: MD-v2's lists by default, or the user's (comma separated)."""
    if sources is None or sources == "" or sources == "md-v2":
        return list(
            MD_V2["val" if split == "val" else split] if split != "trainval" else MD_V2["train"]
        )
    names = [s.strip() for s in sources.split(",")] if isinstance(sources, str) else list(sources)
    for s in names:
        if s not in SOURCES + EXTRAS:
            raise FsbenchError(
                f"--md-sources: unknown source {s!r}; choose from {', '.join(SOURCES + EXTRAS)}"
            )
    return names


@dataclass
class SplitLayout:
    """The classes of one split over the chosen sources, numbered source by source.

    ``classes[k]`` is (source folder, its spec, the class id) of store class k; the hierarchy
    lists hold store class indices.
    """

    root: Path
    sources: list[str]
    classes: list[tuple[Path, SourceSpec, int]]
    names: list[str]
    class_source: list[int]
    superclasses: list[list[int]]
    span_leaves: list[list[int]]

    def meta(self) -> dict[str, Any]:
        """What the episode sampler needs, JSON-able, for ``ArrayStore.meta``."""
        return {
            "md_sources": self.sources,
            "md_class_source": self.class_source,
            "md_superclasses": self.superclasses,
            "md_span_leaves": self.span_leaves,
        }


def split_layout(
    path: str | Path | None, split: str, sources: str | None = None, md_version: str = "v2"
) -> SplitLayout:
    """Which classes of which sources make up ``split``, checked (no record is read)."""
    if path is None:
        raise FsbenchError(
            "the metadataset dataset needs --dataset-dir DIR (the converted records)"
        )
    if md_version not in ("v1", "v2"):
        raise FsbenchError(f"--md-version {md_version!r}: choose v1 or v2")
    if split == "trainval":
        raise FsbenchError("metadataset has no trainval split: Meta-Dataset trains on train")
    root = Path(path).expanduser()
    chosen = parse_sources(sources, split)
    layout = SplitLayout(root, chosen, [], [], [], [], [])
    for si, source in enumerate(chosen):
        folder = source_folder(root, source)
        spec = load_spec(folder, flatten_hierarchy=md_version == "v2")
        ids = spec.split_classes.get(split, [])
        local = {cid: len(layout.names) + i for i, cid in enumerate(ids)}
        for cid in ids:
            layout.classes.append((folder, spec, cid))
            layout.names.append(f"{source}/{spec.class_names.get(cid, cid)}")
            layout.class_source.append(si)
        layout.superclasses += [[local[c] for c in g] for g in spec.superclasses.get(split, [])]
        layout.span_leaves += [[local[c] for c in g] for g in spec.span_leaves.get(split, [])]
    if not layout.names:
        raise FsbenchError(f"metadataset: none of {', '.join(chosen)} has {split} classes")
    return layout


def load_metadataset(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    path: str | Path | None = None,
    sources: str | None = None,
    image_size: int = 84,
    md_version: str = "v2",
    md_read: str = "stream",
    progress: bool = True,
) -> ArrayStore:
    """One split of Meta-Dataset (the given sources, MD-v2's by default) as an ArrayStore.

    Classes are numbered source by source in each source's class-id order; ``meta`` carries what
    the episode sampler needs (each class's source, Omniglot's alphabets, ILSVRC's sub-graphs) as
    lists of store class indices. ``md_version`` "v2" (LITE's) puts all of a hierarchical
    source's classes (ILSVRC) in train; "v1" keeps its sub-graph splits and hierarchy.
    ``md_read`` "stream" reads each image from the records when an episode draws it
    (``RecordImages``: any split on any machine); "memory" decodes every class of the split once
    (cached under the data root) and holds them decoded: faster episodes where the split fits in
    memory. Both give the same rows, so the same episodes.
    """
    if image_size not in IMAGE_SIZES:
        raise FsbenchError(f"--image-size {image_size}: Meta-Dataset here is read at 84 or 224")
    if md_read not in MD_READ:
        raise FsbenchError(f"--md-read {md_read!r}: choose {' or '.join(MD_READ)}")
    layout = split_layout(path, split, sources, md_version)
    cache_root = Path(data_root) / "metadataset-cache"
    data: torch.Tensor | RecordImages
    if md_read == "stream":
        data = record_images(layout, image_size, cache_root)
        labels = data.row_classes()
    else:
        decoded, per_class = [], []
        for k, (folder, spec, cid) in enumerate(layout.classes):
            images = cached_class(folder, spec, cid, image_size, cache_root)
            decoded.append(images)
            per_class.append(np.full(len(images), k, dtype=np.int64))
        data = torch.from_numpy(np.ascontiguousarray(np.concatenate(decoded)))
        labels = torch.from_numpy(np.concatenate(per_class))
    meta = {
        "source": str(layout.root),
        "format": "Meta-Dataset TFRecords (read without TensorFlow)",
        **layout.meta(),
        "image_size": image_size,
        "comparable": False,
        "not_comparable": "a Meta-Dataset split read by fsbench; compare only like with like",
        "label": "Meta-Dataset",
    }
    return ArrayStore(data, labels, layout.names, device, meta=meta)


def record_images(layout: SplitLayout, image_size: int, cache_root: Path) -> RecordImages:
    """The split's images as ``RecordImages`` (each source's record offsets cached once)."""
    index: list[np.ndarray] = []
    files: list[Path] = []
    ids: list[int] = []
    for source in layout.sources:
        mine = [(f, s, c) for f, s, c in layout.classes if f.name == source]
        paths = [f / s.file_pattern.format(c) for f, s, c in mine]
        for p in paths:
            if not p.is_file():
                raise FsbenchError(f"{p} is missing: the {source} records are incomplete")
        cache = cache_root / source / f"offsets-{len(paths)}.npz"
        index += cached_offsets(paths, cache)
        files += paths
        ids += [c for _, _, c in mine]
    for p, offsets in zip(files, index, strict=True):
        if len(offsets) == 0:
            raise FsbenchError(f"{p} holds no records")
    return RecordImages(files, ids, index, image_size)
