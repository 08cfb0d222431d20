"""Command line: ``mdmnist [generate options]``, ``mdmnist verify DIR``, ``mdmnist preview DIR``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .errors import MdmnistError
from .lifecycle import Terminated, stop_signals_raise
from .writers import FORMATS


def _fail(message: str, code: int) -> None:
    """Print one line to stderr and exit with CODE."""
    click.echo(f"Error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


class OneLineErrors(click.Group):
    """A group whose user errors come out as one line and a non-zero exit, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        """Run the command; report usage and input errors in one line."""
        try:
            with stop_signals_raise():
                result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except MdmnistError as exc:
            _fail(str(exc), 1)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted; no partial output was left", 130)
        except Terminated as exc:
            _fail(f"stopped by {exc}; no partial output was left", 128 + exc.signum)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def _default_workers() -> int:
    """CPU cores available to this process (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


GENERATE_OPTIONS = [
    click.option(
        "--num-digit",
        type=int,
        default=2,
        show_default=True,
        help="Digits per image, 1..6 (10**N classes: 5 gives 100,000 classes).",
    ),
    click.option(
        "--image-size",
        type=int,
        nargs=2,
        default=None,
        metavar="H W",
        help="Image height and width [default: 64 64 for 2 digits, 28N 28N otherwise].",
    ),
    click.option(
        "--num-image-per-class",
        type=int,
        default=1000,
        show_default=True,
        help="Images per class (the published sets have 1000).",
    ),
    click.option(
        "--train-val-test-ratio",
        type=int,
        nargs=3,
        default=(64, 16, 20),
        show_default=True,
        metavar="A B C",
        help="Class split ratios train/val/test: three positive integers (need not sum to 100).",
    ),
    click.option(
        "--random-seed",
        type=int,
        default=123,
        show_default=True,
        help="Seed of the class split and of every draw, 0 <= seed < 2**32 (123: published sets).",
    ),
    click.option(
        "--output",
        type=click.Path(),
        default=None,
        help="Output directory [default: e.g. double_mnist_seed_123_image_size_64_64].",
    ),
    click.option(
        "--format",
        "formats",
        type=click.Choice(FORMATS),
        multiple=True,
        help="Output format, repeatable [default: png]; tfds writes a TensorFlow Datasets "
        "folder (OUT/tfds/NAME/1.0.0, array_record) and needs pip install 'mdmnist[tfds]'.",
    ),
    click.option(
        "--workers", type=int, default=None, help="Worker processes [default: CPU cores, max 8]."
    ),
    click.option(
        "--overwrite",
        is_flag=True,
        help="Replace an existing output, only if it is an empty folder or an mdmnist output "
        "with nothing added.",
    ),
    click.option(
        "--disjoint-sources",
        is_flag=True,
        help="Train uses MNIST training digits only, val/test MNIST test digits only.",
    ),
    click.option(
        "--mnist-path",
        type=click.Path(),
        default=None,
        help="Directory with the four MNIST-shaped IDX files (gzipped or not) [default: embedded MNIST].",
    ),
    click.option(
        "--shard",
        default=None,
        metavar="K/N",
        help="Make only shard K of N (1 <= K <= N): a contiguous block of each split's classes, "
        "the same bytes as in the whole run; join all N with 'mdmnist merge'.",
    ),
    click.option("--quiet", is_flag=True, help="No size estimate, no progress bar."),
    click.option(
        "--yes",
        is_flag=True,
        help="Start even a very large run (over 2,000,000 images, over 20 GiB, or more than "
        "the free space); without it such a run is refused after the size estimate.",
    ),
]


def _with_generate_options(func):
    """Attach the generation options to FUNC."""
    for option in reversed(GENERATE_OPTIONS):
        func = option(func)
    return func


def _check_size(opts: dict, workers: int) -> None:
    """Print the size estimate (unless --quiet); refuse a very large run without --yes."""
    from .estimate import estimate, free_bytes
    from .pipeline import default_output_name, validate

    config = validate(
        opts["num_digit"],
        opts["image_size"],
        opts["num_image_per_class"],
        opts["train_val_test_ratio"],
        opts["random_seed"],
        opts["formats"] or ("png",),
        workers,
        opts["disjoint_sources"],
        opts["shard"],
    )
    plan = estimate(
        config.num_digit,
        config.image_size,
        config.num_image_per_class,
        config.ratios,
        config.formats,
        workers,
        config.shard,
    )
    if not opts["quiet"]:
        click.echo(plan.describe(), err=True)
    out = Path(
        opts["output"]
        or default_output_name(config.num_digit, config.seed, config.image_size, config.shard)
    )
    refusal = plan.refusal(free_bytes(out))
    if refusal and not opts["yes"]:
        raise MdmnistError(
            f"{refusal}; pass --yes to start it anyway, or lower --num-image-per-class or "
            "--num-digit (nothing was written)"
        )


def _run_generate(opts: dict) -> None:
    """Call the API with the CLI options and print where the output went."""
    from .pipeline import generate

    workers = opts["workers"] if opts["workers"] is not None else _default_workers()
    _check_size(opts, workers)
    out = generate(
        num_digit=opts["num_digit"],
        image_size=opts["image_size"],
        num_image_per_class=opts["num_image_per_class"],
        ratios=opts["train_val_test_ratio"],
        seed=opts["random_seed"],
        output=opts["output"],
        formats=opts["formats"] or ("png",),
        workers=workers,
        overwrite=opts["overwrite"],
        mnist_path=opts["mnist_path"],
        disjoint_sources=opts["disjoint_sources"],
        progress=not opts["quiet"],
        shard=opts["shard"],
    )
    click.echo(f"wrote {out}")


@click.group(
    cls=OneLineErrors,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@_with_generate_options
@click.version_option(package_name="mdmnist")
@click.pass_context
def cli(ctx: click.Context, **opts) -> None:
    """Generate multi-digit MNIST (DoubleMNIST, TripleMNIST, ...), merge shards, verify or preview."""
    if ctx.invoked_subcommand is None:
        _run_generate(opts)
        return
    given = [
        p.opts[0]
        for p in ctx.command.params
        if ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)} only apply to generation, not to '{ctx.invoked_subcommand}'"
        )


@cli.command("generate")
@_with_generate_options
def generate_cmd(**opts) -> None:
    """Generate a dataset (same as giving the options without a subcommand)."""
    _run_generate(opts)


@cli.command("verify")
@click.argument("directory", type=click.Path())
@click.option("--quiet", is_flag=True, help="No progress bar.")
def verify_cmd(directory: str, quiet: bool) -> None:
    """Re-check every format in DIRECTORY against its manifest.json, and report stray files."""
    from tqdm import tqdm

    from .manifest import read_manifest
    from .verify import count_steps, verify

    if not Path(directory).is_dir():
        raise MdmnistError(f"{directory} is not a directory")
    manifest = read_manifest(Path(directory))  # not a dataset: one Error line, no progress bar
    try:
        total = count_steps(manifest)
    except (KeyError, TypeError, AttributeError):
        total = None  # a malformed manifest: verify reports it
    with tqdm(total=total, unit="check", desc="verify", disable=quiet, smoothing=0.1) as bar:
        problems = verify(directory, progress=bar.update)
    for line in problems[:20]:
        click.echo(f"MISMATCH {line}", err=True)
    if len(problems) > 20:
        click.echo(f"... and {len(problems) - 20} more", err=True)
    if problems:
        _fail(f"{directory}: {len(problems)} mismatch(es) with manifest.json", 1)
    click.echo(f"OK {directory}: every format matches manifest.json, no stray files")


@cli.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path())
@click.option("--output", type=click.Path(), required=True, help="Folder of the merged output.")
@click.option(
    "--link",
    is_flag=True,
    help="Copy no image data: each split's HDF5 file is a virtual dataset reading the shards' "
    "files in place (keep the shards where they are) and PNG files are hard links (same "
    "filesystem); default: a self-contained copy.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing output, only if it is an empty folder or an mdmnist output "
    "with nothing added.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def merge_cmd(
    shards: tuple[str, ...], output: str, link: bool, overwrite: bool, quiet: bool
) -> None:
    """Join the folders of all N shards of one run (made with --shard K/N) into one output."""
    from tqdm import tqdm

    from .merge import plan_merge, run_merge

    plan = plan_merge(shards, output, link=link, overwrite=overwrite)  # errors before the bar
    with tqdm(total=plan.steps(), unit="class", desc="merge", disable=quiet) as bar:
        out = run_merge(plan, progress=bar.update)
    click.echo(f"wrote {out}")


@cli.command("preview")
@click.argument("directory", type=click.Path())
@click.option("--output", type=click.Path(), required=True, help="PNG file to write.")
@click.option(
    "--classes",
    type=click.IntRange(1, 50),
    default=6,
    show_default=True,
    help="Classes shown per split (rows).",
)
@click.option(
    "--per-class",
    type=click.IntRange(1, 50),
    default=8,
    show_default=True,
    help="Images shown per class (columns).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def preview_cmd(directory: str, output: str, classes: int, per_class: int, overwrite: bool) -> None:
    """Draw a grid of samples per split into a PNG file."""
    from .preview import preview

    click.echo(f"wrote {preview(directory, output, classes, per_class, overwrite)}")


def main() -> None:
    """Console-script entry point."""
    cli()
