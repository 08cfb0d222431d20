"""Command-line options made from the setting declarations (fsbench.settings), and the execution
arguments the commands share (where the run goes, on which device: never recorded settings).

A declared setting becomes ``--its-name`` on ``run`` and ``pretrain`` without code here; a new
execution argument (e.g. a time limit) is one entry in ``EXECUTION_ARGUMENTS``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fsbench.settings import DATA_SETTINGS, SPECS, Spec, base_type, check_value, flag, range_text

DEVICES = ("auto", "cpu", "cuda")
Decorator = Callable[[Callable], Callable]


def _declaration(name: str) -> tuple[Any, Spec]:
    if name in SPECS:
        tp, s, _ = SPECS[name]
        return tp, s
    return DATA_SETTINGS[name]


def setting_option(name: str, help: str | None = None) -> Decorator:
    """The click option of one declared setting: its flag, type and help; the value is checked by
    the declaration's own rule as it is read (one message, naming the flag)."""
    tp, s = _declaration(name)
    base = base_type(tp)

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        if s.parse is not None:
            value = s.parse(value)
        if isinstance(value, Path):
            value = str(value)
        check_value(name, value, tp, s, from_flag=True)
        return value

    text = help or s.help
    if range_text(s):
        text += f"  [{range_text(s)}]"
    if base is bool:
        dashed = flag(name)[2:]
        return click.option(
            f"--{dashed}/--no-{dashed}", name, default=None, help=text, callback=check
        )
    kwargs: dict[str, Any] = {"default": None, "help": text, "callback": check}
    if s.choices:
        kwargs["metavar"] = "[" + "|".join(s.choices) + "]"
    elif name == "pretrained":
        kwargs["type"] = click.Path(file_okay=False, path_type=Path)
    elif s.parse is None and base in (int, float):
        kwargs["type"] = click.INT if base is int else click.FLOAT
    return click.option(flag(name), name, **kwargs)


def _apply(func: Callable, options: list[Decorator]) -> Callable:
    for option in reversed(options):
        func = option(func)
    return func


def device_option() -> Decorator:
    return click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)


def data_root_option() -> Decorator:
    return click.option(
        "--data-root",
        type=click.Path(file_okay=False, path_type=Path),
        help="dataset cache (default $FSBENCH_DATA or ~/.cache/fsbench)",
    )


def time_limit_option() -> Decorator:
    return click.option(
        "--time-limit",
        type=click.FloatRange(min=0, min_open=True),
        metavar="MINUTES",
        help="stop training at an iteration boundary before MINUTES have passed, with a "
        "checkpoint (no result yet; --resume continues)",
    )


# What a training command needs beside its settings: where, on what, and whether to continue.
EXECUTION_ARGUMENTS: list[Decorator] = [
    device_option(),
    click.option(
        "--out", type=click.Path(file_okay=False, path_type=Path), help="output directory"
    ),
    click.option(
        "--resume",
        is_flag=True,
        help="continue OUT/checkpoint.pt (same settings, or more iterations)",
    ),
    click.option("--overwrite", is_flag=True, help="replace an earlier run in OUT"),
    data_root_option(),
    click.option(
        "--dataset-dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="use this dataset folder as it is: an mdmnist output (HDF5 or PNG tree, e.g. "
        "the published download), an Omniglot folder of official zips, or for the folder "
        "dataset your images (DIR/train|val|test/<class>/<image> or DIR/<class>/<image>)",
    ),
    click.option(
        "--download",
        is_flag=True,
        help="omniglot, fc100: download the full official set if missing",
    ),
    click.option("--quiet", is_flag=True, help="no progress bars or progress lines"),
    time_limit_option(),
]


def run_options(func: Callable) -> Callable:
    """Every declared setting with a flag (a flag overrides one value of the preset), every data
    option, then the execution arguments: the options of ``run`` and ``pretrain``."""
    settings = [setting_option(n) for n, (_, s, _) in SPECS.items() if s.cli]
    data = [setting_option(n) for n, (_, s) in DATA_SETTINGS.items() if s.cli]
    return _apply(func, settings + data + EXECUTION_ARGUMENTS)


def split_run_options(opts: dict) -> tuple[dict, dict, dict]:
    """(setting values, data option values, execution arguments) of a run's parsed options:
    whatever is not a declared setting or data option is an execution argument."""
    settings = {k: opts.pop(k) for k in list(opts) if k in SPECS and SPECS[k][1].cli}
    data = {k: opts.pop(k) for k in list(opts) if k in DATA_SETTINGS and DATA_SETTINGS[k][1].cli}
    return settings, data, opts
