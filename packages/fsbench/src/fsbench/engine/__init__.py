"""Training engine: device and precision, the training loop with checkpoints, one full run."""

from fsbench.engine.device import resolve_device, resolve_precision
from fsbench.engine.run import run_setting
from fsbench.engine.trainer import train

__all__ = ["resolve_device", "resolve_precision", "run_setting", "train"]
