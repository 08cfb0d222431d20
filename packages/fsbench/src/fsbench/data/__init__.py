"""Datasets as on-device array stores, and episode sampling by tensor indexing."""

from fsbench.data.registry import (
    ALIASES,
    DATASETS,
    SPLITS,
    default_data_root,
    describe_split,
    load_split,
    resolve_dataset,
)
from fsbench.data.store import ArrayStore, Episode

__all__ = [
    "ALIASES",
    "DATASETS",
    "SPLITS",
    "ArrayStore",
    "Episode",
    "default_data_root",
    "describe_split",
    "load_split",
    "resolve_dataset",
]
