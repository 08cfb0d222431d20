"""Dataset names, aliases, data root, option checking and describe_split of the data registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fsbench.data import (
    ALIASES,
    DATASETS,
    ArrayStore,
    default_data_root,
    describe_split,
    load_split,
    resolve_dataset,
)
from fsbench.data.diskcache import fingerprint, load_arrays, save_arrays
from fsbench.data.png_decode import decode_pngs
from fsbench.errors import FsbenchError


def test_canonical_names_and_aliases():
    assert list(DATASETS) == [
        "doublemnist",
        "triplemnist",
        "mnist1d",
        "mnist1d-shuffled",
        "omniglot",
        "miniimagenet",
        "fc100",
        "fashionmnist",
        "flowers102",
        "pets",
        "mnist-super",
        "tfds",
        "folder",
        "metadataset",
    ]
    assert ALIASES == {
        "doubled": "doublemnist",
        "tripled": "triplemnist",
        "mini": "miniimagenet",
        "mini-imagenet": "miniimagenet",
        "fashion": "fashionmnist",
        "fashion-mnist": "fashionmnist",
        "flowers": "flowers102",
        "oxford-flowers": "flowers102",
        "oxford-pets": "pets",
        "oxford-iiit-pets": "pets",
        "imagefolder": "folder",
    }
    for name in DATASETS:
        assert resolve_dataset(name) == name
    assert resolve_dataset("doubled") == "doublemnist"
    assert resolve_dataset("Tripled") == "triplemnist"
    assert resolve_dataset(" Omniglot ") == "omniglot"


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(FsbenchError) as info:
        resolve_dataset("cifar")
    msg = str(info.value)
    assert msg.startswith("unknown dataset 'cifar'; choose from: doublemnist (doubled)")
    for name in DATASETS:
        assert name in msg
    assert "\n" not in msg
    with pytest.raises(FsbenchError, match="unknown dataset"):
        load_split("cifar", "train")


def test_default_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FSBENCH_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("FSBENCH_DATA")
    assert default_data_root() == Path("~/.cache/fsbench").expanduser()


def test_bad_split_option_seed_and_device_are_clear_errors():
    with pytest.raises(FsbenchError, match="unknown split 'dev'; choose from: train, val, test"):
        load_split("mnist1d", "dev")
    with pytest.raises(FsbenchError, match="unknown option 'shots' for dataset omniglot"):
        load_split("omniglot", "train", shots=3)
    with pytest.raises(FsbenchError, match="allowed options: none"):
        load_split("mnist1d", "train", source="png")
    with pytest.raises(FsbenchError, match="seed"):
        load_split("mnist1d", "train", seed=-1)
    with pytest.raises(FsbenchError, match="--device"):
        load_split("mnist1d", "train", device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(FsbenchError, match="no CUDA device"):
        load_split("mnist1d", "train", device="cuda")


def test_describe_split_is_json_able_and_checks_its_arguments():
    store = load_split("mnist1d", "test")
    facts = describe_split("mnist1d", "test", store)
    json.dumps(facts)
    assert facts["dataset"] == "mnist1d" and facts["split"] == "test"
    assert facts["classes"] == 10 and facts["examples"] == 1000
    assert facts["example_shape"] == [40] and facts["dtype"] == "float32"
    with pytest.raises(ValueError):
        describe_split("mnist1d", "train", store)
    bare = ArrayStore(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]))
    assert describe_split("omniglot", "val", bare)["classes"] == 2


def test_disk_cache_roundtrip_and_staleness(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    fp = fingerprint([src])
    cache = tmp_path / "c" / "x.npz"
    save_arrays(cache, fp, a=np.arange(5), names=np.array(["x", "y"]))
    hit = load_arrays(cache, fp)
    assert hit is not None and hit["a"].tolist() == [0, 1, 2, 3, 4]
    assert load_arrays(cache, "other") is None
    cache.write_bytes(b"garbage")  # a damaged cache is ignored, never trusted
    assert load_arrays(cache, fp) is None
    assert not list(cache.parent.glob(".*tmp*")), "temporary files left behind"


def test_decode_pngs_rejects_mixed_sizes_and_bad_bytes(tmp_path):
    import io

    from PIL import Image

    def png(h: int, w: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.zeros((h, w), np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    out = decode_pngs([("a", png(4, 5)), ("b", png(4, 5))])
    assert out.shape == (2, 4, 5)
    with pytest.raises(FsbenchError, match="image b is 3x5"):
        decode_pngs([("a", png(4, 5)), ("b", png(3, 5))])
    with pytest.raises(FsbenchError, match="cannot decode image bad"):
        decode_pngs([("a", png(4, 5)), ("bad", b"not a png")], (4, 4))
    assert decode_pngs([("a", png(8, 8))], (4, 4), invert=True).tolist() == [[[255] * 4] * 4]
