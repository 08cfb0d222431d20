"""``fsbench eval`` and ``fsbench predict``: reuse a trained run on new episodes or new images."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from fsbench.commands.common import configure_logging, fmt_pct, result_line
from fsbench.commands.options import data_root_option, device_option, setting_option
from fsbench.errors import FsbenchError


@click.command(name="eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@setting_option("way", "classes per test episode (default: the run's)")
@setting_option("shot", "support examples per class (default: the run's)")
@setting_option("query", "queries per class (default: the run's)")
@setting_option("episodes", "test episodes (default: the run's)")
@setting_option("seed", "seed of the test episodes (default: the run's)")
@click.option(
    "--md-sources",
    help="metadataset runs: test on these sources' test splits only (comma separated, e.g. "
    "omniglot: one row of Meta-Dataset's per-source table)",
)
@setting_option("md_read")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="output directory (default RUN_DIR/eval-WwSs)",
)
@device_option()
@data_root_option()
@click.option("--overwrite", is_flag=True, help="replace an earlier evaluation in OUT")
@click.option("--quiet", is_flag=True, help="no progress bars")
def eval_(run_dir: Path, **opts) -> None:
    """Test the trained run in RUN_DIR on other episode settings, without retraining."""
    from fsbench.detection.run import is_detection_run
    from fsbench.engine.evaluate import evaluate_run, trained_settings

    if is_detection_run(run_dir):  # a detector: commands/detection.py
        from fsbench.commands.detection import eval_detection_cli

        return eval_detection_cli(run_dir, opts)
    configure_logging(opts["quiet"])
    settings, _ = trained_settings(run_dir)
    way = opts["way"] or settings["way"]
    shot = opts["shot"] or settings["shot"]
    sources, md_read = opts["md_sources"], opts["md_read"]
    for flag_, value in (("--md-sources", sources), ("--md-read", md_read)):
        if value is not None and settings["dataset"] != "metadataset":
            raise FsbenchError(f"{flag_} applies to metadataset runs, not {settings['dataset']}")
    test_options = {k: v for k, v in (("sources", sources), ("md_read", md_read)) if v}
    default = f"eval-md-{sources.replace(',', '+')}" if sources else f"eval-{way}w{shot}s"
    out = opts["out"] or run_dir / default
    result = evaluate_run(
        run_dir,
        out,
        way=opts["way"],
        shot=opts["shot"],
        query=opts["query"],
        episodes=opts["episodes"],
        seed=opts["seed"],
        data_root=opts["data_root"],
        device=opts["device"],
        overwrite=opts["overwrite"],
        quiet=opts["quiet"],
        test_options=test_options or None,
    )
    click.echo(result_line(settings["dataset"], result, out))


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--support",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="labelled images: DIR/<class>/<image>, any number per class",
)
@click.option(
    "--query",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="images to classify: DIR/<image>, or DIR/<class>/<image> to also score the accuracy",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="file to write (default: print to stdout); a detection run: a folder",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["csv", "json"]),
    help="csv (default; json when --out ends in .json)",
)
@device_option()
@click.option("--overwrite", is_flag=True, help="replace an existing --out file")
@click.option("--quiet", is_flag=True, help="warnings only")
def predict(
    run_dir: Path,
    support: Path,
    query: Path,
    out: Path | None,
    format_: str | None,
    device: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Classify the --query images among the --support folder's classes with the run in RUN_DIR.

    Writes one row per query image: its path, the predicted class, the true class when the
    query folder has class folders, and a score (probability) per support class.
    """
    from fsbench.detection.run import is_detection_run
    from fsbench.engine.predict import (
        check_output,
        predict_folders,
        to_csv,
        to_json,
        write_predictions,
    )

    configure_logging(quiet)
    if is_detection_run(run_dir):  # boxes: --out is a folder of predictions.json and PNGs
        from fsbench.commands.detection import predict_detection_cli

        return predict_detection_cli(run_dir, support, query, out, device, overwrite)
    if out is not None and out.is_dir():
        raise FsbenchError(f"--out {out} is a directory; give a file to write")
    if out is not None:
        check_output(out, overwrite)
    fmt = format_ or ("json" if out is not None and out.suffix.lower() == ".json" else "csv")
    pred = predict_folders(run_dir, support, query, device=device)
    text = to_json(pred) if fmt == "json" else to_csv(pred)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_predictions(out, text)
    summary = (
        f"{len(pred.files)} images, {len(pred.classes)} classes ({pred.method}: {pred.meaning})"
    )
    if pred.accuracy is not None:
        summary += f"; accuracy {fmt_pct(pred.accuracy)} % on the labelled queries"
    if out is not None:
        summary += f"; wrote {out}"
    logging.getLogger("fsbench").info(summary)
