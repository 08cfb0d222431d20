"""What the commands share: log lines on stderr, the one-line result, percentages."""

from __future__ import annotations

import logging
from pathlib import Path

import click


def one_line(text: str) -> str:
    return " ".join(str(text).split())


class EchoHandler(logging.Handler):
    """fsbench's log lines on the current stderr: info plain, warnings as 'Warning: ...'."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "Warning: " if record.levelno >= logging.WARNING else ""
        click.echo(prefix + one_line(record.getMessage()), err=True)


def configure_logging(quiet: bool = False) -> None:
    """Send the ``fsbench`` logger to stderr once; ``quiet`` keeps only warnings."""
    logger = logging.getLogger("fsbench")
    if not any(isinstance(h, EchoHandler) for h in logger.handlers):
        logger.addHandler(EchoHandler())
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def fmt_pct(x: float) -> str:
    return f"{100 * x:.2f}"


def dataset_name(value: str) -> str:
    """The canonical name of a dataset argument (aliases, any case); FsbenchError otherwise."""
    from fsbench.data import resolve_dataset

    return resolve_dataset(value)


def result_line(name: str, result: dict, out: Path) -> str:
    """The one line a run or an evaluation prints: accuracy, CI, published, deviations, where."""
    pub = result.get("published_percent")
    unit = "examples" if result["shot"] is None else "episodes"
    line = (
        f"{result['method']} on {result.get('dataset_label', name)}: accuracy "
        f"{fmt_pct(result['accuracy'])} % ± {fmt_pct(result['ci95'])} "
        f"({result['ci95_method']}, {result['episodes']} {unit})"
    )
    if pub is not None:
        line += f"; published {pub:g} %"
    elif result.get("not_comparable"):
        line += "; no published number for this data"
    devs = result.get("deviations") or []
    if devs:
        line += "; differs from the preset in " + ", ".join(d["setting"] for d in devs)
    return line + f"; {result['wall_seconds']:.1f} s on {result['device']}; results in {out}"
