"""The source tables ``fsbench reproduce`` fills: their cells, seeds and short-CPU versions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fsbench.published import SOURCES

# A cell's "pretrained" override naming this is the table's pre-training of the same dataset.
PRETRAINED_IN_TABLE = "<the table's pretrain run of this dataset>"


@dataclass(frozen=True)
class Cell:
    """One cell of a source table: a run setting and where it sits in the table.

    ``tag`` tells apart cells of one method that differ in other settings (its folder name).
    ``test_data`` are data options only the test split reads (Meta-Dataset's test source): such a
    cell is an evaluation of the table's training of the same settings, never a training.
    """

    method: str
    dataset: str
    row: str
    column: str
    overrides: dict = field(default_factory=dict)
    tag: str = ""
    test_data: dict = field(default_factory=dict)

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
    quick_cells: tuple[Cell, ...] = ()  # --quick runs these instead (e.g. our data, not records)

    def for_run(self, quick: bool) -> TableSpec:
        """The table as --quick (or the full run) fills it: its quick cells when it has them."""
        return replace(self, cells=self.quick_cells) if quick and self.quick_cells else self


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

# LITE's MD-v2 run (cambridge-mlg/LITE README and src/run.py, "LITE and 224x224"): 10,000
# training tasks of Meta-Dataset's episodes (way up to 50, support up to 500) at 224x224, H = 40,
# Adam 1e-3, validation at task 5,000 on 200 tasks of each of the 7 validation sources (ours: at
# 5,000 and 10,000, 1,400 episodes of the pooled sources, the better model tested), 600 test
# tasks per test source. Deviations (README): ResNet-12 trained from scratch (LITE: a pre-trained
# EfficientNet-B0, not available offline), one optimiser step per task (LITE: 16 tasks per step).
LITE_MD = {
    "md_episodes": True,
    "lite_h": 40,
    "backbone": "resnet12",
    "iterations": 10000,
    "eval_every": 5000,
    "eval_episodes": 1400,
    "episodes": 600,
    "data_options": {"image_size": 224},
}
# LITE's (MD-v2's) test sources, as its run.py lists them, with the names of its tables.
LITE_MD_TEST = (
    ("omniglot", "Omniglot"),
    ("aircraft", "Aircraft"),
    ("cu_birds", "Birds"),
    ("dtd", "DTD"),
    ("quickdraw", "QuickDraw"),
    ("fungi", "Fungi"),
    ("traffic_sign", "Traffic Signs"),
    ("mscoco", "MSCOCO"),
)
LITE_MD_COLUMN = "Simple CNAPs + LITE, 224x224, H = 40"
# --quick: the same pipeline on TripleMNIST (our data), 28x28 so that it learns in minutes on CPU.
LITE_MD_QUICK = {
    "md_episodes": True,
    "md_max_way": 10,
    "md_max_support": 50,
    "md_query": 5,
    "lite_h": 8,
    "hidden": 16,
    "iterations": 300,
    "eval_every": 0,
    "select": "last",
    "episodes": 300,
    "data_options": {"num_image_per_class": 40, "resize": 28},
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
        "8-16-32-64 pre-trained 3 epochs with the PyTorch code's SGD 0.1; 100 MTL iterations (the preset's 100 inner steps); "
        "50 MAML iterations (meta-batch 2, 16 filters); 5 training and 10 test queries per "
        "class, 100 test episodes",
        rows_are="method",
        quick_by_method={
            # the PyTorch code's SGD 0.1, by epochs with its validation, as measured before the
            # preset took the TF code's Adam 1e-3: 60-600 Adam iterations leave the small net
            # far weaker (row (a) Double 5w1s 35.3, Triple 20w1s 65.0: README)
            "pretrain": {
                "widths": [8, 16, 32, 64],
                "epochs": 3,
                "batch_size": 64,
                "optimizer": "sgd",
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 5e-4,
                "lr_step": 30,
                "lr_gamma": 0.2,
                "dropout": 0.0,
                "eval_every": 1,
                "select": "best-val",
            },
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
    "lite-md": TableSpec(
        "lite-md",
        f"{SOURCES['lite']}: Simple CNAPs + LITE on Meta-Dataset (MD-v2), accuracy per test "
        "source, from the converted records (--dataset-dir RECORDS)",
        (
            Cell(
                "simple_cnaps",
                "metadataset",
                "all test sources (one source per episode)",
                LITE_MD_COLUMN,
                LITE_MD,
            ),
            *(
                Cell(
                    "simple_cnaps",
                    "metadataset",
                    label,
                    LITE_MD_COLUMN,
                    LITE_MD,
                    f"-{source}",
                    {"sources": source},
                )
                for source, label in LITE_MD_TEST
            ),
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={},
        quick_note="quick: our data, not Meta-Dataset: TripleMNIST (40 images per class resized "
        "to 28x28) in Meta-Dataset's variable-way episodes (way 5..10, support budget 50, 5 "
        "queries per class), Conv-4 of 16 filters, LITE H = 8, 300 training tasks, no "
        "validation, 300 test episodes (full: the records at 224x224, ResNet-12, H = 40, "
        "10,000 tasks, 600 test episodes per source; a GPU's work)",
        rows_are="test source",
        quick_cells=(
            Cell(
                "simple_cnaps",
                "triplemnist",
                "TripleMNIST, MD-style episodes (test classes)",
                "Simple CNAPs + LITE, 28x28, H = 8",
                LITE_MD_QUICK,
            ),
        ),
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
