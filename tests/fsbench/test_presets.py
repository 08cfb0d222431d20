"""Presets carry the source documents' settings; flags override one value; tables list the cells."""

from __future__ import annotations

import pytest
from fsbench.errors import FsbenchError
from fsbench.presets import preset_for
from fsbench.published import published
from fsbench.resolve import deviations, resolve_settings
from fsbench.table_specs import TABLES


def test_maml_multidigit_preset_is_the_multidigitmnist_readme():
    s = resolve_settings("maml", "triplemnist")
    assert (s["inner_lr"], s["inner_steps"], s["meta_batch"], s["lr"], s["iterations"]) == (
        0.4,
        1,
        12,
        1e-3,
        100_000,
    )
    assert (s["way"], s["shot"], s["hidden"], s["episodes"], s["query"], s["train_query"]) == (
        5,
        1,
        64,
        600,
        15,
        15,
    )
    assert (s["pool"], s["readout"], s["norm"], s["inner_loss"]) == (
        "stride",
        "mean",
        "batch",
        "mean",
    )
    assert "shaohua0116/MultiDigitMNIST" in s["preset_source"]
    assert preset_for("maml", "triplemnist").notes  # the unknowns are written down


def test_maml_omniglot_follows_cbfinn_per_way():
    five = resolve_settings("maml", "omniglot")
    assert (five["meta_batch"], five["inner_lr"], five["inner_steps"]) == (32, 0.4, 1)
    twenty = resolve_settings("maml", "omniglot", {"way": 20, "shot": 5})
    assert (twenty["meta_batch"], twenty["inner_lr"], twenty["inner_steps"]) == (16, 0.1, 5)
    for s in (five, twenty):
        assert s["test_inner_steps"] == 10 and s["inner_loss"] == "cbfinn"
        assert s["query"] == s["train_query"] == s["shot"]  # K queries per class, as cbfinn
        assert s["data_options"]["omniglot_split"] == "cbfinn" and s["episodes"] == 600
    # a flag wins over the 20-way variant and over the tie of query to shot
    mine = resolve_settings("maml", "omniglot", {"way": 20, "inner_lr": 0.2, "query": 15})
    assert (mine["inner_lr"], mine["inner_steps"], mine["query"]) == (0.2, 5, 15)


def test_norm_and_other_named_settings_are_checked():
    assert resolve_settings("protonet", "omniglot")["norm"] == "running"
    assert resolve_settings("maml", "doublemnist")["norm"] == "batch"
    with pytest.raises(FsbenchError, match="norm must be batch for MAML"):
        resolve_settings("maml", "doublemnist", {"norm": "running"})
    with pytest.raises(FsbenchError, match="inner_loss must be one of"):
        resolve_settings("maml", "doublemnist", {"inner_loss": "sum"})
    with pytest.raises(FsbenchError, match="fp16"):
        resolve_settings("fomaml", "doublemnist", {"precision": "fp16"})
    with pytest.raises(FsbenchError, match="eval_every"):
        resolve_settings("protonet", "omniglot", {"eval_every": 0})
    with pytest.raises(FsbenchError, match="trainval"):
        resolve_settings("protonet", "omniglot", {"train_split": "trainval"})
    ok = resolve_settings(
        "protonet", "omniglot", {"train_split": "trainval", "select": "last", "eval_every": 0}
    )
    assert ok["train_split"] == "trainval"


def test_deviations_list_every_value_that_differs_from_the_preset():
    s = resolve_settings("protonet", "omniglot", {"shot": 5, "way": 20})
    assert deviations(s) == []  # way and shot choose a cell of the preset, they do not deviate
    s = resolve_settings("protonet", "omniglot", {"iterations": 5, "distance": "euclidean"})
    assert deviations(s) == [
        {"setting": "distance", "value": "euclidean", "preset": "sqeuclidean"},
        {"setting": "iterations", "value": 5, "preset": 10_000},
    ]
    s = resolve_settings("protonet", "omniglot", {"threads": 1, "maml_exec": "vmap"})
    assert deviations(s) == []  # how a run executes is not a deviation
    # an MNIST-1D classifier tests the whole test split: --episodes changes nothing it computes
    s = resolve_settings("mlp", "mnist1d", {"episodes": 4, "iterations": 4})
    assert deviations(s) == [{"setting": "iterations", "value": 4, "preset": 6001}]


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


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn", "gru"])
def test_classifier_presets_are_the_reference_loop(name):
    s = resolve_settings(name, "mnist1d-shuffled")
    assert (s["lr"], s["batch_size"], s["iterations"], s["batch_order"]) == (
        1e-2,
        100,
        6001,  # range(total_steps + 1) with total_steps 6000, the GRU too
        "sequential",
    )


def test_mismatched_method_and_dataset():
    with pytest.raises(FsbenchError, match="mnist1d"):
        resolve_settings("cnn", "omniglot")
    with pytest.raises(FsbenchError, match="train_way must equal way"):
        resolve_settings("maml", "doublemnist", {"train_way": 10})


def test_published_numbers_and_tables():
    assert published("maml", "doublemnist", 20, 1) == 85.461
    assert published("maml", "triplemnist", 5, 1) == 98.813
    assert published("protonet", "omniglot", 20, 5) == 98.9
    assert published("gru", "mnist1d-shuffled", None, None) == 57.0
    assert len(TABLES["mnist1d"].cells) == 8 and len(TABLES["multidigit-maml"].cells) == 12
    unpublished = []
    for spec in (TABLES[t] for t in ("multidigit-maml", "protonet-omniglot", "mnist1d")):
        for cell in spec.cells:
            way, shot = cell.overrides.get("way"), cell.overrides.get("shot")
            if published(cell.method, cell.dataset, way, shot) is None:
                unpublished.append((cell.dataset, way, shot))
    # only the Multi-digit 5-shot cells that the MultiDigitMNIST README left "in progress"
    assert sorted(unpublished) == [
        ("doublemnist", 5, 5),
        ("doublemnist", 20, 5),
        ("triplemnist", 5, 5),
        ("triplemnist", 20, 5),
    ]
    # the MTL ablation runs on Multi-digit MNIST, where nobody published MTL numbers
    ablation = TABLES["mtl-ablation"]
    assert len(ablation.cells) == 5 * 8 and ablation.rows_are == "method"
    assert all(
        published(c.method, c.dataset, 5, 1) in (None, 97.046, 98.813) for c in ablation.cells
    )


@pytest.mark.parametrize("quick", [False, True])
def test_every_table_cell_resolves(quick):
    from fsbench.engine.reproduce import cell_settings

    for spec in TABLES.values():
        assert len({c.name for c in spec.cells}) == len(spec.cells), spec.name  # one folder each
        for cell in spec.cells:
            overrides = {"pretrained": "p"} if cell.method == "mtl" else {}
            s = cell_settings(spec, cell, spec.seeds[0], quick, overrides, jobs=1)
            assert (s["method"], s["dataset"], s["seed"]) == (
                cell.method,
                cell.dataset,
                spec.seeds[0],
            )
            wanted = dict(spec.quick_by_method.get(cell.method, {})) if quick else {}
            if cell.method == "pretrain":
                wanted.pop("iterations", None)  # pre-training counts epochs
            wanted.update({**cell.overrides, **overrides})
            for key, value in wanted.items():
                if key == "data_options":
                    assert value.items() <= s["data_options"].items(), (cell.name, key)
                else:
                    assert s[key] == value, (spec.name, cell.name, key)
            if quick:
                for key, value in spec.quick_by_dataset.get(cell.dataset, {}).items():
                    assert s["data_options"][key] == value, (cell.name, key)


def test_lite_table_rows_differ_in_lite_only():
    from fsbench.engine.reproduce import cell_settings
    from fsbench.settings import differences

    spec = TABLES["lite"]
    by = {(c.row, c.column): cell_settings(spec, c, 0, False, {}, 1) for c in spec.cells}
    for column in ("5-way 10-shot", "5-way 100-shot"):
        full, lite = by[("full back-propagation", column)], by[("LITE, H = 8", column)]
        assert differences(full, lite) == {"lite_h": (0, 8)}
        assert full["norm"] == "group" and full["data_options"]["image_size"] == 224
        assert published("protonet", "doublemnist", 5, full["shot"]) is None
