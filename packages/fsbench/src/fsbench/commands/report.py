"""``fsbench report``: the results under some folders as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument(
    "dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the .html file to write",
)
@click.option("--title", help="the page's title (default: fsbench report)")
@click.option("--overwrite", is_flag=True, help="replace an existing --out file")
def report(dirs: tuple[Path, ...], out: Path, title: str | None, overwrite: bool) -> None:
    """Write the runs under DIRS as one HTML page that opens anywhere, offline and on a phone.

    Tables beside the published numbers (CIs, * where a run differs from its preset), each run's
    training curve, deviations, protocol notes, versions, devices and git commits; no network,
    no external files.
    """
    from fsbench.report import write_report

    path = write_report(list(dirs), out, overwrite=overwrite, title=title)
    click.echo(f"wrote {path}")
