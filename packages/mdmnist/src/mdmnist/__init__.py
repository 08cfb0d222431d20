"""Multi-digit MNIST generator: DoubleMNIST, TripleMNIST and any number of digits."""

__version__ = "0.1.0"
