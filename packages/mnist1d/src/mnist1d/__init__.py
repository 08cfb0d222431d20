"""MNIST-1D generator: a vectorised, drop-in successor of the reference mnist1d package."""

from mnist1d.data import get_dataset, get_dataset_args, get_templates, make_dataset
from mnist1d.transform import transform
from mnist1d.utils import ObjectView, from_pickle, plot_signals, set_seed, to_pickle

__version__ = "0.1.0"

__all__ = [
    "ObjectView",
    "from_pickle",
    "get_dataset",
    "get_dataset_args",
    "get_templates",
    "make_dataset",
    "plot_signals",
    "set_seed",
    "to_pickle",
    "transform",
]
