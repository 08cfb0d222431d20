"""Multi-digit MNIST generator: DoubleMNIST, TripleMNIST and any number of digits."""

__version__ = "0.1.0"

from .errors import MdmnistError  # noqa: E402
from .pipeline import default_output_name, generate  # noqa: E402
from .verify import verify  # noqa: E402

__all__ = ["MdmnistError", "__version__", "default_output_name", "generate", "verify"]
