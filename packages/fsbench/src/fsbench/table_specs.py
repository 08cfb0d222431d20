"""The source tables ``fsbench reproduce`` fills: their cells, seeds and short-CPU versions."""

from __future__ import annotations

from dataclasses import dataclass, field

from fsbench.published import SOURCES

# A cell's "pretrained" override naming this is the table's pre-training of the same dataset.
PRETRAINED_IN_TABLE = "<the table's pretrain run of this dataset>"


@dataclass(frozen=True)
class Cell:
    """One cell of a source table: a run setting and where it sits in the table.

    ``tag`` tells apart cells of one method that differ in other settings (its folder name).
    """

    method: str
    dataset: str
    row: str
    column: str
    overrides: dict = field(default_factory=dict)
    tag: str = ""

    @property
    def name(self) -> str:
        extra = "-".join(
            f"{k}{v}" for k, v in sorted(self.overrides.items()) if k in ("way", "shot")
        )
        return "-".join(x for x in (self.method + self.tag, self.dataset, extra) if x)


@dataclass(frozen=True)
class TableSpec:
    """A source table: its cells, seeds, and the short-CPU (--quick) version of its settings."""

    name: str
    source: str
    cells: tuple[Cell, ...]
    seeds: tuple[int, ...]
    quick_seeds: tuple[int, ...]
    quick_overrides: dict
    quick_note: str
    rows_are: str = "dataset"  # what the rows of the source layout name
    quick_by_method: dict = field(default_factory=dict)  # --quick values of one method only
    quick_by_dataset: dict = field(default_factory=dict)  # --quick data options of one dataset


def _ws(way: int, shot: int) -> dict:
    return {"way": way, "shot": shot}


WAY_SHOTS = ((5, 1), (5, 5), (20, 1), (20, 5))
# The ablation's MTL rows start their classifier at zeros, as row (a)'s new head: before any
# meta-update rows (a)-(d) are the same model, so the rows differ by what meta-training did only
# (a random start costs 1-shot tasks 15 points until meta-training unlearns it: README).
MTL_SS = {"mtl_mode": "ss", "pretrained": PRETRAINED_IN_TABLE, "head_init": "zeros"}


def _no_val(method: str, dataset: str, way: int) -> dict:
    """DoubleMNIST's 16 validation classes cannot make 20-way tasks: MTL tests its last model."""
    if method == "mtl" and dataset == "doublemnist" and way > 16:
        return {"eval_every": 0, "select": "last"}
    return {}


MTL_FT = {**MTL_SS, "mtl_mode": "ft"}
# LITE's table: 224x224 DoubleMNIST (digits too small to downscale), 110 images per class so a
# 100-shot task has 10 queries; group norm for both rows so that only LITE differs.
LITE_DATA = {
    "norm": "group",
    "query": 10,
    "train_query": 10,
    "eval_every": 0,
    "select": "last",
    "data_options": {"image_size": 224, "num_image_per_class": 110},
}

TABLES: dict[str, TableSpec] = {
    "multidigit-maml": TableSpec(
        "multidigit-maml",
        f"{SOURCES['multidigit']}: MAML on Double/Triple MNIST and Omniglot "
        "(the 5-shot Multi-digit cells were never published: 'in progress')",
        tuple(
            Cell("maml", ds, label, f"{w}-way {s}-shot", _ws(w, s))
            for ds, label in (
                ("doublemnist", "Double MNIST"),
                ("triplemnist", "Triple MNIST"),
                ("omniglot", "Omniglot"),
            )
            for w, s in WAY_SHOTS
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={
            "iterations": 200,
            "meta_batch": 4,
            "hidden": 16,
            "train_query": 2,
            "episodes": 100,
            "data_options": {"num_image_per_class": 50},
        },
        quick_note="quick: 200 meta-iterations, meta-batch 4, 16 filters, 2 training queries per "
        "class, 100 test episodes, 50 images per Multi-digit class (published: 100k / 60k "
        "iterations, meta-batch 12 / 32 / 16, 64 filters)",
    ),
    "protonet-omniglot": TableSpec(
        "protonet-omniglot",
        f"{SOURCES['snell']}: Prototypical Networks on Omniglot",
        tuple(
            Cell("protonet", "omniglot", "Omniglot", f"{w}-way {s}-shot", _ws(w, s))
            for w, s in WAY_SHOTS
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={
            "iterations": 200,
            "train_way": 20,
            "hidden": 32,
            "episodes": 100,
            "eval_every": 50,
            "eval_episodes": 20,
        },
        quick_note="quick: 200 training episodes of 20-way, 32 filters, validation every 50 "
        "episodes, 100 test episodes (published: 10,000 episodes of 60-way, 64 filters, 1,000 "
        "test episodes)",
    ),
    "mtl-ablation": TableSpec(
        "mtl-ablation",
        f"{SOURCES['sun']}: the ablation of Meta-Transfer Learning (pre-training, fine-tuning "
        "everything, scaling/shifting, hard tasks; MAML from scratch), on Multi-digit MNIST",
        tuple(
            Cell(
                method,
                ds,
                row,
                f"{label} {w}w{s}s",
                {**extra, **_ws(w, s), **_no_val(method, ds, w)},
                tag,
            )
            for method, tag, row, extra in (
                ("pretrain", "", "(a) pre-trained + new linear head", {}),
                ("mtl", "-ft", "(b) fine-tune everything (FT)", MTL_FT),
                ("mtl", "-ss", "(c) scaling/shifting (SS)", MTL_SS),
                ("mtl", "-ssht", "(d) SS + hard tasks (HT)", {**MTL_SS, "hard_tasks": True}),
                ("maml", "", "(e) MAML from scratch (Conv-4)", {}),
            )
            for ds, label in (("doublemnist", "Double"), ("triplemnist", "Triple"))
            for w, s in WAY_SHOTS
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={
            "query": 10,
            "train_query": 5,
            "episodes": 100,
            "eval_episodes": 20,
            "data_options": {"num_image_per_class": 20, "resize": 32},
        },
        quick_note="quick: images resized to 32x32, 20 per class; ResNet-12 of widths "
        "8-16-32-64 pre-trained 3 epochs; 100 MTL iterations (the preset's 100 inner steps); "
        "50 MAML iterations (meta-batch 2, 16 filters); 5 training and 10 test queries per "
        "class, 100 test episodes",
        rows_are="method",
        quick_by_method={
            "pretrain": {"widths": [8, 16, 32, 64], "epochs": 3, "batch_size": 64},
            "mtl": {
                "widths": [8, 16, 32, 64],
                "iterations": 100,
                "eval_every": 50,
                "lr_step": 0,
            },
            "maml": {"iterations": 50, "meta_batch": 2, "hidden": 16},
        },
    ),
    "lite": TableSpec(
        "lite",
        f"{SOURCES['lite']}: LITE against full back-propagation, ProtoNets on 224x224 "
        "DoubleMNIST with up to 100 support images per class (no published numbers: the "
        "paper's tables are on ORBIT and VTAB+MD with an EfficientNet)",
        tuple(
            Cell(
                "protonet",
                "doublemnist",
                row,
                f"5-way {shot}-shot",
                {**LITE_DATA, **_ws(5, shot), "train_way": 5, "lite_h": h},
                tag,
            )
            for row, tag, h in (
                ("full back-propagation", "-full", 0),
                ("LITE, H = 8", "-lite8", 8),
            )
            for shot in (10, 100)
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={"iterations": 10, "hidden": 8, "episodes": 10},
        quick_note="quick: a smoke run of the 224x224 paths, not a result: 10 training "
        "episodes, 8 filters, 10 test episodes (full: the DoubleMNIST ProtoNets preset's "
        "10,000 episodes, 64 filters, 600 test episodes; a GPU's work)",
        rows_are="method",
    ),
    "modes": TableSpec(
        "modes",
        f"{SOURCES['magnet']} and {SOURCES['repmet']}: one mode per class (Prototypical "
        "Networks) against K = 1 and K = 3 modes, on classes made of 3 known modes (mnist-super) "
        "and on Fashion-MNIST (no published numbers: the sources report Stanford Dogs, Oxford "
        "Flowers/Pets and ImageNet with pre-trained backbones)",
        tuple(
            Cell(method, ds, row, f"{label} 5w5s", {**_ws(5, 5), **extra}, tag)
            for method, tag, row, extra in (
                ("protonet", "", "Prototypical Networks (one mode)", {}),
                ("magnet", "-k1", "Magnet loss, K = 1", {"modes": 1}),
                ("magnet", "-k3", "Magnet loss, K = 3", {"modes": 3}),
                ("repmet", "-k1", "RepMet, K = 1", {"modes": 1}),
                ("repmet", "-k3", "RepMet, K = 3", {"modes": 3}),
            )
            for ds, label in (("mnist-super", "mnist-super"), ("fashionmnist", "Fashion-MNIST"))
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={
            "iterations": 300,
            "hidden": 32,
            "eval_every": 100,
            "eval_episodes": 50,
            "episodes": 200,
        },
        quick_note="quick: 300 training iterations, 32 filters, validation every 100 on 50 "
        "episodes, 200 test episodes; mnist-super from 100 images per DoubleMNIST class resized "
        "to 32x32; Magnet refreshes its clusters every 25 iterations (preset: once per epoch, "
        "which 300 iterations would reach twice) (full: 10,000 iterations, 64 filters, 1,000 "
        "images per class at 64x64, 600 test episodes)",
        rows_are="method",
        quick_by_method={"magnet": {"refresh_every": 25}},
        quick_by_dataset={"mnist-super": {"num_image_per_class": 100, "resize": 32}},
    ),
    "mnist1d": TableSpec(
        "mnist1d",
        f"{SOURCES['greydanus']}: the table 'Comparing MNIST and MNIST-1D'",
        tuple(
            Cell(m, ds, label, col)
            for ds, label in (("mnist1d", "MNIST-1D"), ("mnist1d-shuffled", "MNIST-1D (shuffle)"))
            for m, col in (
                ("logreg", "Logistic regression"),
                ("mlp", "MLP"),
                ("cnn", "CNN"),
                ("gru", "GRU"),
            )
        ),
        seeds=(42, 43, 44),
        quick_seeds=(42,),
        quick_overrides={},
        quick_note="quick: seed 42 only (the reference notebook's seed), full training settings "
        "(published: a single run; full reproduce: seeds 42, 43, 44)",
    ),
}
