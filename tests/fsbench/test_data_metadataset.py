"""Meta-Dataset's records read without TensorFlow: framing + CRCs, Example parsing, splits, cache."""

from __future__ import annotations

import subprocess
import sys

import md_fixtures as fx
import numpy as np
import pytest
import torch
from fsbench.data import metadataset as md
from fsbench.data.registry import load_split
from fsbench.errors import FsbenchError
from PIL import Image


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return fx.write_all(tmp_path_factory.mktemp("md"))


def test_parse_example_reads_what_protobuf_wrote():
    buf = fx.example_bytes(b"\x00\xffjpeg", 12345678901, extra_float=0.25)
    ex = md.parse_example(buf)
    assert ex == {"image": [b"\x00\xffjpeg"], "label": [12345678901], "weight": [0.25]}
    neg = fx.Example()
    neg.features.feature["label"].int64_list.value.extend([-3, 0, 7])
    assert md.parse_example(neg.SerializeToString())["label"] == [-3, 0, 7]


def test_records_round_trip_and_a_corrupt_record_names_the_file(tmp_path):
    path = tmp_path / "0.tfrecords"
    recs = [b"first", b"", b"x" * 300]
    fx.write_tfrecord(path, recs)
    assert list(md.read_records(path)) == recs
    raw = bytearray(path.read_bytes())
    raw[-6] ^= 0x01  # one bit of the last record's data
    path.write_bytes(bytes(raw))
    with pytest.raises(FsbenchError, match=r"0\.tfrecords: corrupt record 2 .*data checksum"):
        list(md.read_records(path))
    raw[-6] ^= 0x01
    raw[8] ^= 0x10  # the first record's length checksum
    path.write_bytes(bytes(raw))
    with pytest.raises(FsbenchError, match="corrupt record 0 at byte 0 .*length checksum"):
        list(md.read_records(path))
    raw[8] ^= 0x10
    path.write_bytes(bytes(raw[:20]))
    with pytest.raises(FsbenchError, match="truncated"):
        list(md.read_records(path))


def test_masked_crc_matches_tensorflows_known_value():
    # CRC-32C("123456789") = 0xe3069283 (the standard check value), then TFRecord's mask
    crc = 0xE3069283
    assert md.masked_crc(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_md_v2_splits_sources_and_pixels(records, tmp_path):
    train = load_split("metadataset", "train", data_root=tmp_path, path=records)
    # MD-v2: ILSVRC's 13 leaves all in train (flattened), Omniglot's 11 train characters, 3 train
    # classes of each of aircraft, cu_birds, dtd, quickdraw, fungi, and MNIST's 3 (LITE's extra)
    assert train.num_classes == 13 + 11 + 5 * 3 + 3
    assert train.meta["md_sources"] == list(md.MD_V2["train"])
    assert train.example_shape == (3, 84, 84) and train.data.dtype == torch.uint8
    assert train.class_names[13] == "omniglot/char0"
    # Omniglot's two training alphabets (5 and 6 characters) as store class indices
    assert train.meta["md_superclasses"] == [list(range(13, 18)), list(range(18, 24))]
    assert train.meta["md_span_leaves"] == []  # MD-v2 samples ILSVRC without its hierarchy
    # every class holds the spec's number of images
    assert train.class_counts.tolist()[24:27] == [6, 7, 8]  # aircraft 0..2
    # pixels: the PNG decoded, RGB, bilinear-resized to 84x84
    k = train.class_names.index("aircraft/aircraft-class1")
    first = int(train.class_index[k, 0])
    _, arr = fx.image_bytes(1 * 1000 + 0)
    want = np.asarray(Image.fromarray(arr).resize((84, 84), Image.Resampling.BILINEAR))
    assert np.array_equal(train.data[first].numpy().transpose(1, 2, 0), want)
    # grayscale sources come out as 3 equal channels
    q = int(train.class_index[train.class_names.index("quickdraw/quickdraw-class0"), 0])
    assert torch.equal(train.data[q][0], train.data[q][2])
    val = load_split("metadataset", "val", data_root=tmp_path, path=records)
    assert val.meta["md_sources"] == list(md.MD_V2["val"])
    assert val.num_classes == 5 + 5 * 2 + 2  # omniglot's val alphabet, 2 each, mscoco 2
    test = load_split("metadataset", "test", data_root=tmp_path, path=records)
    assert "traffic_sign" in test.meta["md_sources"] and test.num_classes == 5 + 5 * 2 + 3 + 3


def test_md_v1_keeps_ilsvrc_hierarchy_and_sources_option(records, tmp_path):
    train = load_split(
        "metadataset",
        "train",
        data_root=tmp_path,
        path=records,
        sources="ilsvrc_2012",
        md_version="v1",
    )
    assert train.num_classes == 7
    # internal nodes n0 (all 7), na (3), nb (4), nc (2), in wn_id order
    assert sorted(map(len, train.meta["md_span_leaves"])) == [2, 3, 4, 7]
    test = load_split(
        "metadataset",
        "test",
        data_root=tmp_path,
        path=records,
        sources="ilsvrc_2012",
        md_version="v1",
    )
    assert test.num_classes == 3
    with pytest.raises(FsbenchError, match="unknown source 'imagenet'"):
        load_split("metadataset", "train", data_root=tmp_path, path=records, sources="imagenet")
    with pytest.raises(FsbenchError, match="84 or 224"):
        load_split("metadataset", "train", data_root=tmp_path, path=records, image_size=64)


def test_decoded_classes_are_cached(records, tmp_path, monkeypatch):
    kw = {"data_root": tmp_path, "path": records, "sources": "dtd", "md_read": "memory"}
    first = load_split("metadataset", "test", **kw)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(md, "read_class", no_decoding)
    again = load_split("metadataset", "test", **kw)
    assert isinstance(first.data, torch.Tensor) and first.data.is_contiguous()
    assert torch.equal(first.data, again.data) and again.data.is_contiguous()


def test_streamed_split_indexes_each_source_once_and_decodes_nothing_up_front(
    records, tmp_path, monkeypatch
):
    from fsbench.data import md_records

    kw = {"data_root": tmp_path, "path": records, "sources": "dtd,aircraft"}
    first = load_split("metadataset", "test", **kw)
    assert isinstance(first.data, md_records.RecordImages)
    assert first.data.shape == (len(first), 3, 84, 84) and first.data.dtype == torch.uint8

    def no_indexing(*args, **kwargs):
        raise AssertionError("indexed again")

    monkeypatch.setattr(md_records, "record_offsets", no_indexing)
    again = load_split("metadataset", "test", **kw)
    rows = torch.tensor([0, len(first) - 1, 2])
    assert torch.equal(first.data[rows], again.data.index_select(0, rows))
    assert torch.equal(again.data[rows][1], again.data[len(first) - 1])
    assert again.data[rows].is_contiguous()  # the layout a held split gives: same sums after
    threaded = md_records.RecordImages(
        again.data.files, again.data.record_labels, again.data.index, 84, threads=3
    )
    everything = torch.arange(len(first))
    assert torch.equal(threaded[everything], again.data.to("cpu")[everything])


def test_corrupt_record_is_one_error_line_naming_the_file(tmp_path):
    from cli_errors import assert_one_line_error
    from click.testing import CliRunner
    from fsbench.cli import main

    root = tmp_path / "records"
    fx.write_flat_source(root, "aircraft")
    bad = root / "aircraft" / "1.tfrecords"
    raw = bytearray(bad.read_bytes())
    raw[40] ^= 0xFF
    bad.write_bytes(bytes(raw))
    args = [
        "run",
        "protonet",
        "metadataset",
        "--dataset-dir",
        str(root),
        "--md-sources",
        "aircraft",
        "--out",
        str(tmp_path / "o"),
        "--data-root",
        str(tmp_path / "c"),
        "--quiet",
    ]
    for read in ("stream", "memory"):  # both check every record before a run starts
        result = CliRunner().invoke(main, [*args, "--md-read", read])
        assert_one_line_error(result, str(bad), "corrupt record")
        assert not (tmp_path / "o").exists()


def test_import_fsbench_and_reading_records_never_import_tensorflow(records, tmp_path):
    code = (
        "import sys, fsbench, fsbench.cli\n"
        "from fsbench.data.registry import load_split\n"
        f"s = load_split('metadataset', 'test', data_root={str(tmp_path)!r}, "
        f"path={str(records)!r}, sources='dtd')\n"
        "print(s.num_classes, any(m.split('.')[0] in ('tensorflow', 'tensorflow_datasets') "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"]
