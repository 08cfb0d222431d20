"""Datasets as on-device array stores, and episode sampling by tensor indexing."""

from fsbench.data.store import ArrayStore, Episode

__all__ = ["ArrayStore", "Episode"]
