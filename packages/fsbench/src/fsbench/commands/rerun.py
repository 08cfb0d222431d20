"""``fsbench rerun``: run again what a result.json records and say whether the result is equal."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("record", type=click.Path(path_type=Path), metavar="RESULT.json|RUN_DIR")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="output directory (default reruns/<the run's folder name>)",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="default: the recorded device's type",
)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="replace an earlier run in --out")
@click.option("--quiet", is_flag=True, help="no progress bars or progress lines")
def rerun(
    record: Path,
    out: Path | None,
    device: str | None,
    data_root: Path | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Train and test again exactly what RESULT.json (or RUN_DIR/result.json) records.

    Every setting, the seed and the data come from the record: generated datasets are generated
    again, your own folders must be at the recorded path with the recorded files. Ends with
    whether the new accuracy is bit-equal to the recorded one, or the difference and its CI.
    """
    from fsbench.commands.common import configure_logging as _configure_logging
    from fsbench.commands.common import result_line as _result_line
    from fsbench.engine.rerun import default_out, plan_rerun
    from fsbench.engine.rerun import rerun as run_again

    _configure_logging(quiet)
    plan = plan_rerun(record, device, quiet)
    for line in plan.version_differences:
        click.echo(f"Note: versions differ: {line}", err=True)
    for line in plan.notes:
        click.echo(f"Note: {line}", err=True)
    out = out or default_out(plan.source)
    new, comparison = run_again(plan, out, data_root=data_root, overwrite=overwrite, quiet=quiet)
    if "map50" in new:  # a detector's result: mAP, as fsbench run prints it
        from fsbench.commands.common import fmt_pct
        from fsbench.commands.detection import result_line as detection_line

        click.echo(detection_line(new, out, fmt_pct))
    else:
        click.echo(_result_line(new["dataset"], new, out))
    click.echo(comparison.sentence())
