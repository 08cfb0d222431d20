"""fsbench: a few-shot learning benchmark harness that reproduces the field's published tables.

The Python API (``fsbench.api``): ``train``, ``evaluate`` and ``load_run`` return results
(``RunResult``, ``Evaluation``, ``Run``) and write to disk only when given ``out``;
``set_deterministic`` is the one process-wide switch. Methods (``ProtoNet(backbone)``, ``MAML``,
...), data (``ArrayStore``, ``Episode``) and settings (``Settings``, ``SettingError``) are here
too. Every name is imported on first use (PEP 562), so ``import fsbench`` stays fast and
imports no torch until one is used.
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)

__version__ = "0.1.0"

# name -> the module that defines it (imported on first access)
_EXPORTS: dict[str, str] = {
    "train": "fsbench.api",
    "evaluate": "fsbench.api",
    "load_run": "fsbench.api",
    "table": "fsbench.api",
    "RunResult": "fsbench.api",
    "Run": "fsbench.api",
    "Evaluation": "fsbench.api",
    "set_deterministic": "fsbench.engine.device",
    "register_method": "fsbench.methods.registry",
    "Method": "fsbench.methods.base",
    "EvalResult": "fsbench.methods.base",
    "ProtoNet": "fsbench.methods.protonet",
    "MAML": "fsbench.methods.maml",
    "FOMAML": "fsbench.methods.maml",
    "MTL": "fsbench.methods.mtl",
    "Magnet": "fsbench.methods.magnet",
    "RepMet": "fsbench.methods.repmet",
    "SimpleCNAPs": "fsbench.methods.simple_cnaps",
    "Pretrain": "fsbench.methods.pretrain",
    "ArrayStore": "fsbench.data.store",
    "Episode": "fsbench.data.store",
    "Settings": "fsbench.settings",
    "SettingError": "fsbench.settings",
    "FsbenchError": "fsbench.errors",
}

__all__ = [
    "__version__",
    "train",
    "evaluate",
    "load_run",
    "table",
    "RunResult",
    "Run",
    "Evaluation",
    "set_deterministic",
    "register_method",
    "Method",
    "EvalResult",
    "ProtoNet",
    "MAML",
    "FOMAML",
    "MTL",
    "Magnet",
    "RepMet",
    "SimpleCNAPs",
    "Pretrain",
    "ArrayStore",
    "Episode",
    "Settings",
    "SettingError",
    "FsbenchError",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports lazily
    from typing import Any

    from fsbench.api import Evaluation, Run, RunResult, evaluate, load_run, table, train
    from fsbench.data.store import ArrayStore, Episode
    from fsbench.engine.device import set_deterministic
    from fsbench.errors import FsbenchError
    from fsbench.methods.base import EvalResult, Method
    from fsbench.methods.magnet import Magnet
    from fsbench.methods.maml import FOMAML, MAML
    from fsbench.methods.mtl import MTL
    from fsbench.methods.pretrain import Pretrain
    from fsbench.methods.protonet import ProtoNet
    from fsbench.methods.registry import register_method
    from fsbench.methods.repmet import RepMet
    from fsbench.methods.simple_cnaps import SimpleCNAPs
    from fsbench.settings import SettingError, Settings


def __getattr__(name: str) -> "Any":
    """Import an exported name's module on first use (PEP 562) and keep the name here."""
    import importlib  # here, not at the top: ``import fsbench`` imports nothing

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fsbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
