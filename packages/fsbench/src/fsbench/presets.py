"""Presets: the source documents' hyper-parameters per (method, dataset), and the source tables.

Settings come from ../shared/seeds (source 000: MAML on Multi-digit MNIST; 002: MNIST-1D; 003:
ProtoNets) and PAPERS.md; where a source states a setting it wins. A CLI flag overrides one value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fsbench.errors import FsbenchError

EPISODIC_METHODS = ("maml", "fomaml", "protonet")
CLASSIFIER_METHODS = ("logreg", "mlp", "cnn", "gru")
MDMNIST_DATASETS = ("doublemnist", "triplemnist")
MNIST1D_DATASETS = ("mnist1d", "mnist1d-shuffled")
IMAGE_DATASETS = (*MDMNIST_DATASETS, "omniglot")

# Every setting a run can carry, with the value used when no preset sets it.
BASE: dict = {
    "way": 5,
    "shot": 1,
    "query": 15,  # queries per class at evaluation (PAPERS.md evaluation convention)
    "train_way": None,  # None: same as way
    "train_shot": None,  # None: same as shot
    "train_query": None,  # None: same as query
    "iterations": 1000,
    "meta_batch": 1,
    "episodes": 600,  # test episodes (ignored by the classifiers: full test split)
    "seed": 0,
    "lr": 1e-3,
    "lr_step": 0,  # halve the learning rate every lr_step iterations (0: constant)
    "lr_gamma": 0.5,
    "inner_lr": 0.4,
    "inner_steps": 1,
    "test_inner_steps": 1,
    "hidden": 64,
    "pool": "max",
    "readout": "flatten",
    "batch_size": 100,
    "eval_every": 0,
    "eval_episodes": 50,
    "checkpoint_every": 1000,
    "maml_exec": "auto",
    "precision": "auto",
    "data_options": {},
    "threads": None,  # torch CPU threads; None: torch's default
}


@dataclass(frozen=True)
class Preset:
    """Defaults for one (method, dataset) pair and where they come from."""

    method: str
    dataset: str
    settings: dict
    source: str


def _maml_mdmnist(method: str, dataset: str) -> Preset:
    return Preset(
        method,
        dataset,
        {
            "way": 5,
            "shot": 1,
            "query": 15,
            "meta_batch": 12,
            "iterations": 100_000,
            "lr": 1e-3,
            "inner_lr": 0.4,
            "inner_steps": 1,
            "test_inner_steps": 1,
            "hidden": 64,
            "pool": "max",
            # the MAML reference code (which source 000 ran) averages the last feature map over
            # space for all datasets but miniImageNet; flattening 64x4x4 made the 0.4 fast lr
            # overshoot (post-step query loss 3.2 > ln 5 at the start; quick run at chance)
            "readout": "mean",
            "episodes": 600,
            "checkpoint_every": 1000,
        },
        "source 000 (MultiDigitMNIST README): fast lr 0.4, 1 step, meta-batch 12, Conv-4, slow lr 1e-3, 100k iterations",
    )


def _maml_omniglot(method: str) -> Preset:
    return Preset(
        method,
        "omniglot",
        {
            "way": 5,
            "shot": 1,
            "query": 15,
            "meta_batch": 32,
            "iterations": 60_000,
            "lr": 1e-3,
            "inner_lr": 0.4,
            "inner_steps": 1,
            "test_inner_steps": 1,
            "hidden": 64,
            "pool": "stride",
            "readout": "mean",
            "episodes": 1000,
        },
        "PAPERS.md (Finn et al. 2017, Omniglot): inner lr 0.4, 1 step, meta-batch 32, stride-2 convs",
    )


def _protonet(dataset: str) -> Preset:
    omniglot = dataset == "omniglot"
    return Preset(
        "protonet",
        dataset,
        {
            "way": 5,
            "shot": 1,
            "query": 15,
            "train_way": 60 if omniglot else 20,
            "train_query": 5 if omniglot else 15,
            "iterations": 10_000,
            "lr": 1e-3,
            "lr_step": 2000,
            "lr_gamma": 0.5,
            "hidden": 64,
            "episodes": 1000 if omniglot else 600,
        },
        "PAPERS.md (Snell et al. 2017) + source 003: Conv-4, Adam 1e-3 halved every 2,000 episodes, "
        + ("60-way 5-query training, 10,000 episodes" if omniglot else "20-way 15-query training"),
    )


def _classifier(method: str, dataset: str) -> Preset:
    return Preset(
        method,
        dataset,
        {
            "lr": 1e-2,
            "batch_size": 100,
            "iterations": 3000 if method == "gru" else 6000,
            "way": 10,
            "checkpoint_every": 1000,
            # tiny models: one thread; two threads were up to 5x slower on a busy 2-core box
            # (OpenMP spin-waits under oversubscription), never faster (see README)
            "threads": 1,
        },
        "PAPERS.md (MNIST-1D settings measured on this machine): Adam 1e-2, batch 100, 6,000 steps (GRU 3,000)",
    )


def preset_for(method: str, dataset: str) -> Preset:
    """The preset of a canonical (method, dataset) pair; FsbenchError when they do not go together."""
    if method in CLASSIFIER_METHODS:
        if dataset not in MNIST1D_DATASETS:
            raise FsbenchError(
                f"method {method!r} is an MNIST-1D classifier; use it with one of {', '.join(MNIST1D_DATASETS)}"
            )
        return _classifier(method, dataset)
    if method not in EPISODIC_METHODS:
        raise FsbenchError(
            f"unknown method {method!r}; choose from {', '.join(EPISODIC_METHODS + CLASSIFIER_METHODS)}"
        )
    if dataset in MNIST1D_DATASETS:
        raise FsbenchError(
            f"method {method!r} needs an image dataset ({', '.join(IMAGE_DATASETS)}); "
            f"MNIST-1D goes with {', '.join(CLASSIFIER_METHODS)}"
        )
    if method == "protonet":
        return _protonet(dataset)
    if dataset == "omniglot":
        return _maml_omniglot(method)
    return _maml_mdmnist(method, dataset)


def resolve_settings(method: str, dataset: str, overrides: dict | None = None) -> dict:
    """BASE, then the preset, then the non-None overrides; train_* default to the test values."""
    preset = preset_for(method, dataset)
    settings = {**BASE, **preset.settings, "method": method, "dataset": dataset}
    settings["data_options"] = dict(settings.get("data_options") or {})
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "data_options":
            settings["data_options"].update(value)
        else:
            settings[key] = value
    # the MAML paper's 20-way Omniglot meta-batch, unless a flag set one
    big = method in ("maml", "fomaml") and dataset == "omniglot" and settings["way"] >= 20
    if big and not (overrides or {}).get("meta_batch"):
        settings["meta_batch"] = 16
    for key in ("way", "shot", "query"):
        if settings.get(f"train_{key}") is None:
            settings[f"train_{key}"] = settings[key]
    if method in ("maml", "fomaml") and settings["train_way"] != settings["way"]:
        raise FsbenchError(
            "--train-way must equal --way for MAML (the head has one output per class)"
        )
    settings["preset_source"] = preset.source
    return settings


# ---- published numbers and the source tables ------------------------------------------------

PUBLISHED: dict[tuple, float] = {
    # source 000: MAML on Multi-digit MNIST
    ("maml", "doublemnist", 5, 1): 97.046,
    ("maml", "doublemnist", 20, 1): 85.461,
    ("maml", "triplemnist", 5, 1): 98.813,
    ("maml", "triplemnist", 20, 1): 96.251,
    # PAPERS.md: MAML on Omniglot
    ("maml", "omniglot", 5, 1): 98.7,
    ("maml", "omniglot", 5, 5): 99.9,
    ("maml", "omniglot", 20, 1): 95.8,
    ("maml", "omniglot", 20, 5): 98.9,
    # PAPERS.md / source 003: ProtoNets on Omniglot
    ("protonet", "omniglot", 5, 1): 98.8,
    ("protonet", "omniglot", 5, 5): 99.7,
    ("protonet", "omniglot", 20, 1): 96.0,
    ("protonet", "omniglot", 20, 5): 98.9,
    # source 002: MNIST-1D table
    ("logreg", "mnist1d", None, None): 32.0,
    ("mlp", "mnist1d", None, None): 68.0,
    ("cnn", "mnist1d", None, None): 94.0,
    ("gru", "mnist1d", None, None): 91.0,
    ("logreg", "mnist1d-shuffled", None, None): 32.0,
    ("mlp", "mnist1d-shuffled", None, None): 68.0,
    ("cnn", "mnist1d-shuffled", None, None): 56.0,
    ("gru", "mnist1d-shuffled", None, None): 57.0,
}


def published(method: str, dataset: str, way: int | None, shot: int | None) -> float | None:
    """The published accuracy (percent) for a setting, if a source table has one."""
    if method in CLASSIFIER_METHODS:
        return PUBLISHED.get((method, dataset, None, None))
    return PUBLISHED.get((method, dataset, way, shot))


@dataclass(frozen=True)
class Cell:
    """One cell of a source table: a run setting and where it sits in the table."""

    method: str
    dataset: str
    row: str
    column: str
    overrides: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        extra = "-".join(
            f"{k}{v}" for k, v in sorted(self.overrides.items()) if k in ("way", "shot")
        )
        return "-".join(x for x in (self.method, self.dataset, extra) if x)


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


def _ws(way: int, shot: int) -> dict:
    return {"way": way, "shot": shot}


TABLES: dict[str, TableSpec] = {
    "multidigit-maml": TableSpec(
        "multidigit-maml",
        "source 000: MAML on Multi-digit MNIST (5-way 1-shot and 20-way 1-shot)",
        tuple(
            Cell("maml", ds, label, f"{w}-way {s}-shot", _ws(w, s))
            for ds, label in (("doublemnist", "Double MNIST"), ("triplemnist", "Triple MNIST"))
            for w, s in ((5, 1), (20, 1))
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={
            "iterations": 200,
            "meta_batch": 4,
            "hidden": 16,
            "train_query": 2,
            "query": 15,
            "episodes": 100,
            "checkpoint_every": 1000,
            "data_options": {"num_image_per_class": 50},
        },
        quick_note="quick: 200 meta-iterations, meta-batch 4, 16 filters, 2 training queries, "
        "100 test episodes, 50 images per class (published: 100k iterations, meta-batch 12, 64 filters)",
    ),
    "protonet-omniglot": TableSpec(
        "protonet-omniglot",
        "PAPERS.md / source 003: Prototypical Networks on Omniglot",
        tuple(
            Cell("protonet", "omniglot", "Omniglot", f"{w}-way {s}-shot", _ws(w, s))
            for w, s in ((5, 1), (5, 5), (20, 1), (20, 5))
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={"iterations": 200, "train_way": 20, "hidden": 32, "episodes": 100},
        quick_note="quick: 200 training episodes of 20-way, 32 filters, 100 test episodes "
        "(published: 10,000 episodes of 60-way, 64 filters, 1,000 test episodes)",
    ),
    "mnist1d": TableSpec(
        "mnist1d",
        "source 002: MNIST-1D classifiers (table 'Comparing MNIST and MNIST-1D')",
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
        seeds=(0, 1, 2),
        quick_seeds=(0,),
        quick_overrides={},
        quick_note="quick: seed 0 only, full training settings (published: a single run; "
        "full reproduce: seeds 0, 1, 2)",
    ),
}
