"""Omniglot: real zip layout, rotations as classes, 28x28, character split, sources and bad zips."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import urllib.error
import zipfile
from pathlib import Path

import pytest
import torch
from fsbench.data import describe_split, load_split
from fsbench.data import omniglot as og
from fsbench.errors import FsbenchError

SPLITS = ("train", "val", "test")


def characters(store) -> set[str]:
    return {n.rsplit("/", 1)[0] for n in store.class_names}


def alphabets(store) -> set[str]:
    return {n.split("/", 1)[0] for n in store.class_names}


def test_partial_zips_are_split_by_alphabet_and_not_comparable(omniglot_fixture_dir):
    stores = {s: load_split("omniglot", s, omniglot_dir=omniglot_fixture_dir) for s in SPLITS}
    # 15 characters of 3 alphabets (4, 5, 6): not the full set, so split by whole alphabets
    groups = [alphabets(stores[s]) for s in SPLITS]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 3
    chars = [characters(stores[s]) for s in SPLITS]
    assert not (chars[0] & chars[1] or chars[0] & chars[2] or chars[1] & chars[2])
    assert len(set().union(*chars)) == 15
    for store in stores.values():
        assert store.num_classes == 4 * len(characters(store))  # vinyals: rotations are classes
        assert store.example_shape == (1, 28, 28) and store.data.dtype == torch.uint8
        assert store.class_counts.tolist() == [20] * store.num_classes
        assert [n.rsplit("/", 1)[1] for n in store.class_names[:4]] == [
            "rot000",
            "rot090",
            "rot180",
            "rot270",
        ]
    facts = describe_split("omniglot", "test", stores["test"])
    json.dumps(facts)
    assert facts["alphabets"] == sorted(groups[2])
    assert facts["comparable"] is False and "alphabet-disjoint" in facts["label"]
    assert facts["omniglot_set"].startswith("partial set of 15 characters")


def test_rotations_are_exact_quarter_turns_and_strokes_are_bright(omniglot_fixture_dir):
    store = load_split("omniglot", "train", omniglot_dir=omniglot_fixture_dir)
    for char in range(3):
        base = store.data[store.labels == 4 * char]
        for k in range(1, 4):
            rotated = store.data[store.labels == 4 * char + k]
            assert torch.equal(rotated, torch.rot90(base, k, dims=(2, 3)))
            assert not torch.equal(rotated, base)
    img = store.data[0, 0]
    assert img[0, 0] == 0 and img[-1, -1] == 0, "background must be dark after inversion"
    assert img.max() > 200, "strokes must be bright after inversion"


def test_split_is_deterministic_and_follows_the_seed(omniglot_fixture_dir):
    a = load_split("omniglot", "test", omniglot_dir=omniglot_fixture_dir)
    b = load_split("omniglot", "test", omniglot_dir=omniglot_fixture_dir)
    c = load_split("omniglot", "test", omniglot_dir=omniglot_fixture_dir, seed=3)
    assert a.class_names == b.class_names and torch.equal(a.data, b.data)
    assert a.class_names != c.class_names


def test_full_set_vinyals_split_equals_the_published_lists(omniglot_full_dir, tmp_path):
    stores = {
        s: load_split("omniglot", s, omniglot_dir=omniglot_full_dir, data_root=tmp_path)
        for s in (*SPLITS, "trainval")
    }
    for split, store in stores.items():
        assert store.class_names == og.vinyals_classes(split), split
        facts = describe_split("omniglot", split, store)
        assert "comparable" not in facts and facts["omniglot_set"].startswith("full official")
        assert facts["alphabets"] == sorted({n.split("/")[0] for n in store.class_names})
    assert [stores[s].num_classes for s in (*SPLITS, "trainval")] == [4112, 688, 1692, 4800]
    # each class is its character turned by its rotation
    test = stores["test"]
    turned = test.data[test.labels == 1]  # Gurmukhi/character42/rot090
    assert torch.equal(turned, torch.rot90(test.data[test.labels == 0], 1, dims=(2, 3)))
    # the only alphabet on two sides of the published split: Gurmukhi (train 01-41, test 42-45)
    assert alphabets(stores["train"]) & alphabets(stores["test"]) == {"Gurmukhi"}
    assert not alphabets(stores["val"]) & (alphabets(stores["train"]) | alphabets(stores["test"]))


def test_full_set_cbfinn_split_for_maml(omniglot_full_dir, tmp_path):
    kw = dict(omniglot_dir=omniglot_full_dir, data_root=tmp_path, omniglot_split="cbfinn")
    stores = {s: load_split("omniglot", s, **kw) for s in SPLITS}
    assert [stores[s].num_classes for s in SPLITS] == [1100, 100, 423]
    everything = sorted(set().union(*(set(stores[s].class_names) for s in SPLITS)))
    expected = og.cbfinn_split(everything)
    for split, store in stores.items():
        assert sorted(store.class_names) == sorted(expected[split])
        assert store.rotate_classes  # a random quarter turn per class and task, not rot classes
    # the rule itself: sorted, then Python's random.Random(1).shuffle, 1,100 / 100 / rest
    import random

    order = sorted(everything)
    random.Random(1).shuffle(order)
    assert expected["train"] == order[:1100] and expected["test"] == order[1200:]


def test_decoded_images_are_cached(omniglot_fixture_dir, tmp_path):
    load_split("omniglot", "val", omniglot_dir=omniglot_fixture_dir, data_root=tmp_path)
    cache = tmp_path / "omniglot" / "cache" / "full-28px.npz"
    assert cache.is_file()
    cache.write_bytes(b"damaged")  # a damaged cache is rebuilt, not trusted
    store = load_split("omniglot", "val", omniglot_dir=omniglot_fixture_dir, data_root=tmp_path)
    assert store.num_classes in (16, 20, 24)  # one whole alphabet, 4 rotations per character


def test_full_zips_in_the_data_root_win(omniglot_fixture_dir, tmp_path, monkeypatch):
    home = tmp_path / "omniglot"
    home.mkdir()
    for name in og.FULL_ZIPS:
        shutil.copy(omniglot_fixture_dir / f"{name}.zip", home)
    monkeypatch.setenv("FSBENCH_OMNIGLOT", str(tmp_path / "elsewhere"))
    store = load_split("omniglot", "train", data_root=tmp_path)
    assert describe_split("omniglot", "train", store)["source"][0].startswith(str(home))


def _small_dir(tmp_path, write_omniglot_zip):
    folder = tmp_path / "small"
    folder.mkdir()
    n = write_omniglot_zip(
        folder / "images_background_small1.zip", "images_background_small1", {"A": 3, "Greek": 2}
    )
    write_omniglot_zip(
        folder / "images_background_small2.zip", "images_background_small2", {"Greek": 2, "B": 4}
    )
    return folder, n


def test_small_sets_count_shared_characters_once_and_warn(
    tmp_path, monkeypatch, omniglot_zip_writer, caplog
):
    folder, _ = _small_dir(tmp_path, omniglot_zip_writer)
    monkeypatch.setenv("FSBENCH_OMNIGLOT", str(folder))
    with caplog.at_level(logging.WARNING, logger="fsbench.data"):
        stores = [load_split("omniglot", s, data_root=tmp_path) for s in SPLITS]
    total = sum(len(characters(s)) for s in stores)
    assert total == 9  # A: 3, Greek: 2 (in both zips), B: 4
    assert [len(alphabets(s)) for s in stores] == [1, 1, 1]
    facts = describe_split("omniglot", "train", stores[0])
    assert facts["omniglot_set"].startswith("small background sets")
    assert facts["label"] == "Omniglot (small background sets, alphabet-disjoint)"
    assert facts["total_characters"] == 9
    # the fallback is never silent: a warning names it (once per folder and process)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "NOT comparable" in warnings[0] and str(folder) in warnings[0]


def test_nothing_found_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("FSBENCH_OMNIGLOT", raising=False)
    with pytest.raises(FsbenchError, match="Omniglot not found: put images_background.zip"):
        load_split("omniglot", "train", data_root=tmp_path)
    with pytest.raises(FsbenchError, match="omniglot_dir .* is not a folder"):
        load_split("omniglot", "train", data_root=tmp_path, omniglot_dir=tmp_path / "nope")


class FakeResponse(io.BytesIO):
    headers: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_writes_checked_zips_atomically(omniglot_fixture_dir, tmp_path, monkeypatch):
    payload = {n: (omniglot_fixture_dir / f"{n}.zip").read_bytes() for n in og.FULL_ZIPS}
    monkeypatch.setattr(og, "MD5", {n: hashlib.md5(b).hexdigest() for n, b in payload.items()})
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return FakeResponse(payload[url.rsplit("/", 1)[1][:-4]])

    monkeypatch.setattr(og.urllib.request, "urlopen", fake_urlopen)
    store = load_split("omniglot", "test", data_root=tmp_path, download=True, progress=False)
    assert store.num_classes in (16, 20, 24)
    assert urls == [og.URL.format(name=n) for n in og.FULL_ZIPS]
    assert "brendenlake/omniglot" in urls[0]
    assert sorted(p.name for p in (tmp_path / "omniglot").glob("*.zip")) == [
        "images_background.zip",
        "images_evaluation.zip",
    ]
    load_split("omniglot", "test", data_root=tmp_path, download=True)  # present: no new request
    assert len(urls) == 2


def test_download_with_a_bad_checksum_leaves_nothing(omniglot_fixture_dir, tmp_path, monkeypatch):
    data = (omniglot_fixture_dir / "images_background.zip").read_bytes()
    monkeypatch.setattr(og.urllib.request, "urlopen", lambda url, timeout: FakeResponse(data))
    monkeypatch.delenv("FSBENCH_OMNIGLOT", raising=False)
    with pytest.raises(FsbenchError, match="is corrupt \\(md5"):
        load_split("omniglot", "train", data_root=tmp_path, download=True, progress=False)
    assert list((tmp_path / "omniglot").iterdir()) == []


def test_download_without_network_falls_back_to_small_sets(
    tmp_path, monkeypatch, caplog, omniglot_zip_writer
):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(og.urllib.request, "urlopen", offline)
    folder, _ = _small_dir(tmp_path, omniglot_zip_writer)
    with caplog.at_level(logging.WARNING, logger="fsbench.data"):
        store = load_split(
            "omniglot", "train", data_root=tmp_path, download=True, omniglot_dir=folder
        )
    assert "small background" in describe_split("omniglot", "train", store)["omniglot_set"]
    assert any("could not download" in r.getMessage() for r in caplog.records)
    monkeypatch.delenv("FSBENCH_OMNIGLOT", raising=False)
    with pytest.raises(FsbenchError, match="could not download .*images_background.zip"):
        load_split("omniglot", "train", data_root=tmp_path / "other", download=True)


def _corrupt_full_dir(tmp_path, omniglot_fixture_dir, damage):
    folder = tmp_path / "damaged"
    folder.mkdir()
    for name in og.FULL_ZIPS:
        shutil.copy(omniglot_fixture_dir / f"{name}.zip", folder)
    target = folder / "images_evaluation.zip"
    target.write_bytes(damage(target.read_bytes()))
    return folder


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"PK\x03\x04 this is not a zip" * 10,  # garbage
        lambda b: b[:200] + bytes(x ^ 0x5A for x in b[200:2000]) + b[2000:],  # bad member data
    ],
    ids=["truncated", "garbage", "damaged-member"],
)
def test_corrupt_zip_names_the_file(omniglot_fixture_dir, tmp_path, damage):
    folder = _corrupt_full_dir(tmp_path, omniglot_fixture_dir, damage)
    with pytest.raises(FsbenchError, match="images_evaluation.zip"):
        load_split("omniglot", "train", omniglot_dir=folder, data_root=tmp_path)


def test_zip_in_another_layout_is_rejected(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    for name in og.FULL_ZIPS:
        with zipfile.ZipFile(folder / f"{name}.zip", "w") as zf:
            zf.writestr("a.png", b"x")
    with pytest.raises(FsbenchError, match="no drawings found"):
        load_split("omniglot", "train", omniglot_dir=folder, data_root=tmp_path)


def test_real_small_sets(small_omniglot_dir, monkeypatch):
    monkeypatch.delenv("FSBENCH_OMNIGLOT", raising=False)
    stores = {s: load_split("omniglot", s, omniglot_dir=small_omniglot_dir) for s in SPLITS}
    counts = [len(characters(stores[s])) for s in SPLITS]
    assert sum(counts) == 242  # 136 + 156 characters, Greek and Latin (50) in both sets
    assert counts == [137, 39, 66]
    groups = [alphabets(stores[s]) for s in SPLITS]
    assert sum(len(g) for g in groups) == len(set().union(*groups)) == 8  # alphabet-disjoint
    for store in stores.values():
        assert store.example_shape == (1, 28, 28)
        assert store.class_counts.min() == 20 and store.num_classes % 4 == 0
    ep = stores["train"].sample_episode(stores["train"].generator(0), 20, 5, 5, 2)
    assert ep.support_x.shape == (2, 100, 1, 28, 28)
    facts = describe_split("omniglot", "val", stores["val"])
    assert facts["alphabets"] == sorted(groups[1])
    assert "LANCZOS" in facts["preprocessing"]
    assert facts["label"] == "Omniglot (small background sets, alphabet-disjoint)"


def test_product_code_never_looks_beside_the_checkout(small_omniglot_dir, monkeypatch, tmp_path):
    """A user's install has no ../shared: the data must be named (argument or environment)."""
    monkeypatch.delenv("FSBENCH_OMNIGLOT", raising=False)
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the repository root
    with pytest.raises(FsbenchError, match="Omniglot not found"):
        load_split("omniglot", "val", data_root=tmp_path)
