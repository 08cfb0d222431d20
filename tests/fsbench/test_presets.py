"""Presets carry the source documents' settings; flags override one value; tables list the cells."""

from __future__ import annotations

import pytest
from fsbench.errors import FsbenchError
from fsbench.presets import TABLES, published, resolve_settings


def test_maml_multidigit_preset_is_source_000():
    s = resolve_settings("maml", "triplemnist")
    assert (s["inner_lr"], s["inner_steps"], s["meta_batch"], s["lr"], s["iterations"]) == (
        0.4,
        1,
        12,
        1e-3,
        100_000,
    )
    assert (s["way"], s["shot"], s["hidden"], s["pool"], s["episodes"], s["query"]) == (
        5,
        1,
        64,
        "max",
        600,
        15,
    )
    assert "source 000" in s["preset_source"]


def test_flag_overrides_one_value():
    s = resolve_settings("fomaml", "doublemnist", {"way": 20, "meta_batch": None})
    assert (
        s["way"] == 20 and s["train_way"] == 20 and s["meta_batch"] == 12 and s["inner_lr"] == 0.4
    )


def test_protonet_omniglot_preset():
    s = resolve_settings("protonet", "omniglot", {"shot": 5})
    assert (s["train_way"], s["train_shot"], s["train_query"], s["query"]) == (60, 5, 5, 15)
    assert (s["lr"], s["lr_step"], s["lr_gamma"], s["iterations"], s["episodes"]) == (
        1e-3,
        2000,
        0.5,
        10_000,
        1000,
    )


@pytest.mark.parametrize(
    ("name", "steps"), [("logreg", 6000), ("mlp", 6000), ("cnn", 6000), ("gru", 3000)]
)
def test_classifier_presets(name, steps):
    s = resolve_settings(name, "mnist1d-shuffled")
    assert (s["lr"], s["batch_size"], s["iterations"]) == (1e-2, 100, steps)


def test_mismatched_method_and_dataset():
    with pytest.raises(FsbenchError, match="mnist1d"):
        resolve_settings("cnn", "omniglot")
    with pytest.raises(FsbenchError, match="--train-way"):
        resolve_settings("maml", "doublemnist", {"train_way": 10})


def test_published_numbers_and_tables():
    assert published("maml", "doublemnist", 20, 1) == 85.461
    assert published("maml", "triplemnist", 5, 1) == 98.813
    assert published("protonet", "omniglot", 20, 5) == 98.9
    assert published("gru", "mnist1d-shuffled", None, None) == 57.0
    assert len(TABLES["mnist1d"].cells) == 8 and len(TABLES["multidigit-maml"].cells) == 4
    for spec in TABLES.values():
        for cell in spec.cells:
            way, shot = cell.overrides.get("way"), cell.overrides.get("shot")
            assert published(cell.method, cell.dataset, way, shot) is not None
