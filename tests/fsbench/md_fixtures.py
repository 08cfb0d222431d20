"""Tiny Meta-Dataset sources in the exact on-disk format of the official conversion.

``tf.train.Example`` is encoded by the protobuf library itself (its message types built here from
the tensorflow/core/example .proto fields, without TensorFlow), and the TFRecord framing is
written with CRC-32C from google-crc32c: an encoder independent of fsbench's reader.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import google_crc32c
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from PIL import Image


def _example_class():
    """The tf.train.Example message class, from a descriptor built field by field."""
    f = descriptor_pb2.FileDescriptorProto(name="fixture_example.proto", package="fixture")
    fd = descriptor_pb2.FieldDescriptorProto
    rep, opt = fd.LABEL_REPEATED, fd.LABEL_OPTIONAL
    for name, typ, packed in (
        ("BytesList", fd.TYPE_BYTES, False),
        ("FloatList", fd.TYPE_FLOAT, True),
        ("Int64List", fd.TYPE_INT64, True),
    ):
        m = f.message_type.add(name=name)
        field = m.field.add(name="value", number=1, label=rep, type=typ)
        if packed:
            field.options.packed = True
    feat = f.message_type.add(name="Feature")
    feat.oneof_decl.add(name="kind")
    for i, (name, typ) in enumerate(
        (("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")), 1
    ):
        feat.field.add(
            name=name,
            number=i,
            label=opt,
            type=fd.TYPE_MESSAGE,
            type_name=f".fixture.{typ}",
            oneof_index=0,
        )
    feats = f.message_type.add(name="Features")
    entry = feats.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=opt, type=fd.TYPE_STRING)
    entry.field.add(
        name="value", number=2, label=opt, type=fd.TYPE_MESSAGE, type_name=".fixture.Feature"
    )
    feats.field.add(
        name="feature",
        number=1,
        label=rep,
        type=fd.TYPE_MESSAGE,
        type_name=".fixture.Features.FeatureEntry",
    )
    ex = f.message_type.add(name="Example")
    ex.field.add(
        name="features", number=1, label=opt, type=fd.TYPE_MESSAGE, type_name=".fixture.Features"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("fixture.Example"))


Example = _example_class()


def example_bytes(image: bytes, label: int, extra_float: float | None = None) -> bytes:
    """A serialized tf.train.Example with ``image`` and ``label`` (as the conversion writes)."""
    ex = Example()
    ex.features.feature["image"].bytes_list.value.append(image)
    ex.features.feature["label"].int64_list.value.append(label)
    if extra_float is not None:
        ex.features.feature["weight"].float_list.value.append(extra_float)
    return ex.SerializeToString()


def _masked(data: bytes) -> int:
    crc = int.from_bytes(google_crc32c.Checksum(data).digest(), "big")
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path: Path, records: list[bytes]) -> None:
    """TFRecord framing: length, masked crc of length, data, masked crc of data."""
    with open(path, "wb") as f:
        for r in records:
            header = struct.pack("<Q", len(r))
            f.write(header + struct.pack("<I", _masked(header)) + r)
            f.write(struct.pack("<I", _masked(r)))


def image_bytes(seed: int, size: tuple[int, int] = (20, 14), fmt: str = "PNG", gray=False):
    """A small random image (PNG is lossless, so decoding can be checked exactly)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if gray else (size[1], size[0], 3)
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue(), arr


def _write_classes(folder: Path, counts: dict[int, int], gray: bool = False) -> None:
    for cid, n in counts.items():
        recs = [example_bytes(image_bytes(cid * 1000 + k, gray=gray)[0], cid) for k in range(n)]
        write_tfrecord(folder / f"{cid}.tfrecords", recs)


def write_flat_source(root: Path, name: str, per_split=(3, 2, 2), images=6, gray=False) -> Path:
    """A DatasetSpecification source: classes 0.. split TRAIN, VALID, TEST contiguously."""
    folder = root / name
    folder.mkdir(parents=True)
    total = sum(per_split)
    counts = {c: images + (c % 3) for c in range(total)}  # a little imbalance
    _write_classes(folder, counts, gray)
    spec = {
        "name": name,
        "classes_per_split": dict(zip(("TRAIN", "VALID", "TEST"), per_split, strict=True)),
        "images_per_class": {str(c): n for c, n in counts.items()},
        "class_names": {str(c): f"{name}-class{c}" for c in counts},
        "path": str(folder),
        "file_pattern": "{}.tfrecords",
        "__class__": "DatasetSpecification",
    }
    (folder / "dataset_spec.json").write_text(json.dumps(spec, indent=2))
    return folder


def write_omniglot(root: Path, per_super=(5, 6, 5, 5), supers_split=(2, 1, 1), images=4) -> Path:
    """A BiLevelDatasetSpecification source (alphabets as superclasses), grayscale images."""
    folder = root / "omniglot"
    folder.mkdir(parents=True)
    total = sum(per_super)
    counts = {c: images for c in range(total)}
    _write_classes(folder, counts, gray=True)
    spec = {
        "name": "omniglot",
        "superclasses_per_split": dict(zip(("TRAIN", "VALID", "TEST"), supers_split, strict=True)),
        "classes_per_superclass": {str(i): n for i, n in enumerate(per_super)},
        "images_per_class": {str(c): n for c, n in counts.items()},
        "superclass_names": {str(i): f"alphabet{i}" for i in range(len(per_super))},
        "class_names": {str(c): f"char{c}" for c in counts},
        "path": str(folder),
        "file_pattern": "{}.tfrecords",
        "__class__": "BiLevelDatasetSpecification",
    }
    (folder / "dataset_spec.json").write_text(json.dumps(spec, indent=2))
    return folder


# A tiny WordNet-like DAG per split: root -> {a, b}; a -> leaves; b -> leaves and a sub-node.
HIER = {
    "TRAIN": {
        "n0": ["na", "nb"],
        "na": ["l1", "l2", "l3"],
        "nb": ["l4", "l5", "nc"],
        "nc": ["l6", "l7"],
    },
    "VALID": {"v0": ["v1", "v2", "v3"]},
    "TEST": {"t0": ["t1", "t2", "t3"]},
}


def write_ilsvrc(root: Path, images=5) -> Path:
    """A HierarchicalDatasetSpecification source (class ids from class_names: leaf wn_ids)."""
    folder = root / "ilsvrc_2012"
    folder.mkdir(parents=True)
    subgraphs, leaves_by_split = {}, {}
    for split, edges in HIER.items():
        nodes = set(edges) | {c for kids in edges.values() for c in kids}
        parents = {n: [p for p, kids in edges.items() if n in kids] for n in nodes}
        subgraphs[split] = [
            {"wn_id": n, "words": n, "children_ids": edges.get(n, []), "parents_ids": parents[n]}
            for n in sorted(nodes)
        ]
        leaves_by_split[split] = sorted(n for n in nodes if n not in edges)
    leaves = [w for s in ("TRAIN", "VALID", "TEST") for w in leaves_by_split[s]]
    class_names = {str(i): w for i, w in enumerate(leaves)}
    counts = {i: images for i in range(len(leaves))}
    _write_classes(folder, counts)
    ipc = {s: {w: images for w in leaves_by_split[s]} for s in HIER}
    for s, edges in HIER.items():  # internal nodes count their leaves' images, as the spec does
        for n in edges:
            ipc[s][n] = images * 2
    spec = {
        "name": "ilsvrc_2012",
        "split_subgraphs": subgraphs,
        "images_per_class": ipc,
        "class_names": class_names,
        "path": str(folder),
        "file_pattern": "{}.tfrecords",
        "__class__": "HierarchicalDatasetSpecification",
    }
    (folder / "dataset_spec.json").write_text(json.dumps(spec, indent=2))
    return folder


def write_all(root: Path) -> Path:
    """All ten MD sources and MNIST, tiny: flat ones plus Omniglot and ILSVRC's hierarchies."""
    write_ilsvrc(root)
    write_omniglot(root)
    for name in ("aircraft", "cu_birds", "dtd", "quickdraw", "fungi", "vgg_flower"):
        write_flat_source(root, name, gray=name == "quickdraw")
    write_flat_source(root, "traffic_sign", per_split=(0, 0, 3))
    write_flat_source(root, "mscoco", per_split=(0, 2, 3))
    write_flat_source(root, "mnist", per_split=(3, 0, 0))
    return root
