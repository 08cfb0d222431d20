"""fsbench: a few-shot learning benchmark harness that reproduces the field's published tables."""

__version__ = "0.1.0"
