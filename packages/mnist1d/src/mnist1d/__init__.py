"""MNIST-1D generator: a vectorised, drop-in successor of the reference mnist1d package."""

__version__ = "0.1.0"
