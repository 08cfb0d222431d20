"""The published accuracies the tables print beside ours, and who published them."""

from __future__ import annotations

from fsbench.catalog import CLASSIFIER_METHODS

# Where the published numbers and protocols come from, named so that a user can look them up.
SOURCES: dict[str, str] = {
    "multidigit": "MultiDigitMNIST benchmark (shaohua0116/MultiDigitMNIST README, Sun 2019)",
    "finn": "Finn et al. 2017, MAML (cbfinn/maml)",
    "snell": "Snell et al. 2017, Prototypical Networks (jakesnell/prototypical-networks)",
    "faulkner": "HaydenFaulkner/pytorch.repmet README (Prototypical Networks on Omniglot)",
    "greydanus": "Greydanus 2020, MNIST-1D (greydanus/mnist1d)",
    "sun": "Sun et al. 2019, Meta-Transfer Learning (yaoyao-liu/meta-transfer-learning)",
    "lite": "Bronskill et al. 2021, LITE (cambridge-mlg/LITE)",
    "magnet": "Rippel et al. 2016, Magnet loss (pumpikano/tf-magnet-loss for the loop)",
    "repmet": "Karlinsky et al. 2019, RepMet (HaydenFaulkner/pytorch.repmet configurations)",
}

PUBLISHED: dict[tuple, float] = {
    # MultiDigitMNIST README: MAML on Multi-digit MNIST (the 5-shot cells are "in progress")
    ("maml", "doublemnist", 5, 1): 97.046,
    ("maml", "doublemnist", 20, 1): 85.461,
    ("maml", "triplemnist", 5, 1): 98.813,
    ("maml", "triplemnist", 20, 1): 96.251,
    # Finn et al. 2017 (the Omniglot row of the MultiDigitMNIST README's table too)
    ("maml", "omniglot", 5, 1): 98.7,
    ("maml", "omniglot", 5, 5): 99.9,
    ("maml", "omniglot", 20, 1): 95.8,
    ("maml", "omniglot", 20, 5): 98.9,
    # Sun et al. 2019: Meta-Transfer Learning (5-way 1-shot / 5-shot)
    ("mtl", "miniimagenet", 5, 1): 60.2,
    ("mtl", "miniimagenet", 5, 5): 74.3,
    ("mtl", "fc100", 5, 1): 43.6,
    ("mtl", "fc100", 5, 5): 55.4,
    # Snell et al. 2017: ProtoNets on Omniglot
    ("protonet", "omniglot", 5, 1): 98.8,
    ("protonet", "omniglot", 5, 5): 99.7,
    ("protonet", "omniglot", 20, 1): 96.0,
    ("protonet", "omniglot", 20, 5): 98.9,
    # Greydanus 2020: the MNIST-1D table
    ("logreg", "mnist1d", None, None): 32.0,
    ("mlp", "mnist1d", None, None): 68.0,
    ("cnn", "mnist1d", None, None): 94.0,
    ("gru", "mnist1d", None, None): 91.0,
    ("logreg", "mnist1d-shuffled", None, None): 32.0,
    ("mlp", "mnist1d-shuffled", None, None): 68.0,
    ("cnn", "mnist1d-shuffled", None, None): 56.0,
    ("gru", "mnist1d-shuffled", None, None): 57.0,
}
PUBLISHED_SOURCE: dict[str, str] = {
    "miniimagenet": SOURCES["sun"],
    "fc100": SOURCES["sun"],
    "doublemnist": SOURCES["multidigit"],
    "triplemnist": SOURCES["multidigit"],
    "mnist1d": SOURCES["greydanus"],
    "mnist1d-shuffled": SOURCES["greydanus"],
}


def published(method: str, dataset: str, way: int | None, shot: int | None) -> float | None:
    """The published accuracy (percent) for a setting, if a source table has one."""
    if method in CLASSIFIER_METHODS:
        return PUBLISHED.get((method, dataset, None, None))
    return PUBLISHED.get((method, dataset, way, shot))


def published_source(method: str, dataset: str) -> str | None:
    """Who published the number that ``published`` returns for this method and dataset."""
    if dataset == "omniglot":
        return SOURCES["snell"] if method == "protonet" else SOURCES["finn"]
    return PUBLISHED_SOURCE.get(dataset)
