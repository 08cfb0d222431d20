"""fsbench: a few-shot learning benchmark harness that reproduces the field's published tables."""

__version__ = "0.1.0"

from fsbench.methods.registry import register_method  # noqa: E402  (your own methods)

__all__ = ["__version__", "register_method"]
