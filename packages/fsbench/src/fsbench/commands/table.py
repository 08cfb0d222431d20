"""``fsbench table`` and ``fsbench plot``: render finished (or running) runs."""

from __future__ import annotations

from pathlib import Path

import click

from fsbench.errors import FsbenchError


@click.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="write table.md and table.csv here",
)
def table(dirs: tuple[Path, ...], out: Path | None) -> None:
    """Render the result.json files under DIRS (recursively) as markdown and CSV.

    Runs are averaged only when all their settings but the seed agree; others are rows of their
    own, whose 'settings' column names what sets them apart.
    """
    from fsbench.tables import load_results, results_frame, shown, to_markdown, write_tables

    results = load_results(list(dirs))
    if not results:
        raise FsbenchError(f"no result.json found under {', '.join(map(str, dirs))}")
    df = results_frame(results)
    click.echo(to_markdown(df))
    if out is not None:
        md, csv = write_tables(df, out)
        click.echo(f"wrote {md} and {csv}")
    else:
        click.echo("")
        click.echo(shown(df).to_csv(index=False).rstrip())


def _checkpoint_settings(run: Path) -> dict:
    """The settings of a run still training (no result.json yet), from its checkpoint."""
    from fsbench.engine.trainer import load_checkpoint
    from fsbench.results import CHECKPOINT

    try:
        return dict(load_checkpoint(run / CHECKPOINT).get("settings") or {})
    except Exception:  # no or unreadable checkpoint: the folder name labels it
        return {}


@click.command()
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write"
)
@click.option("--title", help="figure title (default: method and dataset of the first run)")
@click.option("--overwrite", is_flag=True, help="replace an existing picture")
def plot(runs: tuple[Path, ...], out: Path, title: str | None, overwrite: bool) -> None:
    """Draw the training and validation curves of one or more RUNS in one picture.

    Each run is labelled by the settings in which the runs differ (e.g. distance=euclidean).
    """
    from fsbench.results import METRICS, RESULT, plot_curves, read_json, read_metrics
    from fsbench.settings import semantic
    from fsbench.tables import differing_settings

    if out.exists() and not overwrite:
        raise FsbenchError(f"--out {out} exists; pass --overwrite to replace it")
    if out.suffix.lower() != ".png":
        raise FsbenchError(f"--out must name a .png file, got {out}")
    missing = [str(r) for r in runs if not (r / METRICS).is_file()]
    if missing:
        raise FsbenchError(f"no {METRICS} in {', '.join(missing)}: not fsbench run folders")
    results = [read_json(r / RESULT) if (r / RESULT).is_file() else {} for r in runs]
    settings = [
        res.get("settings") or _checkpoint_settings(r) for res, r in zip(results, runs, strict=True)
    ]
    labels = differing_settings([semantic(s) for s in settings])
    labels = [lab or run.name for lab, run in zip(labels, runs, strict=True)]
    first = results[0]
    title = title or " ".join(
        str(x) for x in (first.get("method"), first.get("dataset_label")) if x
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(
        [(lab, read_metrics(r / METRICS)) for lab, r in zip(labels, runs, strict=True)],
        out,
        title or "training curves",
    )
    click.echo(f"wrote {out}")
