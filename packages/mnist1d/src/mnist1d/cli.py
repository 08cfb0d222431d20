"""The ``mnist1d`` command: ``make`` a dataset file, ``plot`` it, print its ``info``."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np

from mnist1d.arguments import DATASET_ARGS, DEFAULTS, ArgumentError, DatasetArgs, check_args
from mnist1d.storage import (
    StorageError,
    atomic_path,
    check_writable,
    file_format,
    load_dataset,
    save_dataset,
)

PLOT_FORMATS = (".png", ".pdf", ".svg")

_HELP = {
    "num_samples": "Samples in total (train + test), >= 10; num_samples // 10 per class.",
    "train_split": "Fraction of samples in the training set: the first int(total * split) "
    "(any finite number, as in the reference: 1.0 means no test set).",
    "template_len": "Template length used to size the dilated signal (template_len + padding "
    "high, which must be >= 2).",
    "padding": "Random zero padding LOW + int(U(0,1) * (HIGH - LOW + 1)) appended to each "
    "template; LOW >= 0 and HIGH >= -2.",
    "scale_coeff": "Random scale factor spread: 1 + scale_coeff * U(-0.5, 0.5) (any sign).",
    "max_translation": "Random shift drawn from [0, max_translation), 1 <= max_translation "
    "<= 2**63.",
    "corr_noise_scale": "Scale of the correlated (smoothed) background noise (any sign).",
    "iid_noise_scale": "Scale of the independent noise added everywhere (any sign).",
    "shear_scale": "Random shear spread: shear_scale * U(-0.5, 0.5) (any sign).",
    "shuffle_seq": "Shuffle the sequence dimension with one fixed permutation.",
    "final_seq_length": "Length of every output signal (>= 0).",
    "seed": "Seed of NumPy's legacy generator (0 <= seed < 2**32).",
}


def _option_name(arg: str) -> str:
    """The command-line spelling of a dataset argument (num_samples -> --num-samples)."""
    return "--" + arg.replace("_", "-")


def _dataset_options(func: Any) -> Any:
    """Add one click option per dataset argument, defaulting to the reference's defaults."""
    for arg in reversed(DATASET_ARGS):
        default = DEFAULTS[arg]
        help_text = f"{_HELP[arg]} [default: {default}]"
        if arg == "padding":
            option = click.option(
                _option_name(arg),
                arg,
                type=int,
                nargs=2,
                default=tuple(default),
                metavar="LOW HIGH",
                help=help_text,
            )
        elif arg == "shuffle_seq":
            option = click.option(
                "--shuffle-seq/--no-shuffle-seq", arg, default=default, help=help_text
            )
        else:
            option = click.option(
                _option_name(arg), arg, type=type(default), default=default, help=help_text
            )
        func = option(func)
    return func


def _usage_error(
    error: ArgumentError | StorageError, option: str | None = None
) -> click.UsageError:
    """One clear line naming the argument and what is allowed, shown as a click usage error."""
    if isinstance(error, ArgumentError):
        return click.BadParameter(error.detail, param_hint=f"'{_option_name(error.name)}'")
    hint = f"'{option}'" if option else None
    return click.BadParameter(str(error), param_hint=hint) if hint else click.UsageError(str(error))


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def _stop(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP act like Ctrl-C: unwind (temp files are removed), exit 128 + signal."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # let the cleanup finish
    name = signal.Signals(signum).name
    click.echo(f"Error: stopped by {name}; no partial output was left", err=True)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _stop_signals_exit() -> Iterator[None]:
    """Within the block SIGTERM/SIGHUP unwind like Ctrl-C (main thread only); restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mnist1d-fast", prog_name="mnist1d")
def main() -> None:
    """MNIST-1D: generate the dataset (identical to the reference package), plot it, inspect it."""


@main.command()
@_dataset_options
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="File to write: .npz, .h5/.hdf5, or .pkl (the reference's pickle layout) "
    "[default: mnist1d_data.npz]; with --format tfds a folder [default: mnist1d_tfds].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["file", "tfds"]),
    default="file",
    show_default=True,
    help="file: one file in the format OUTPUT's extension names; tfds: a TensorFlow Datasets "
    "folder OUTPUT/mnist1d/1.0.0 (array_record; needs pip install 'mnist1d-fast[tfds]').",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def make(output: Path | None, fmt: str, overwrite: bool, quiet: bool, **kwargs: Any) -> None:
    """Generate MNIST-1D with the given arguments and write it to OUTPUT atomically."""
    if output is None:
        output = Path("mnist1d_tfds" if fmt == "tfds" else "mnist1d_data.npz")
    try:
        args = check_args(kwargs)
        if fmt == "tfds":
            from mnist1d.tfds_export import check_output, require_tfds

            require_tfds()
            check_output(output, overwrite)
        else:
            file_format(output)
            check_writable(output, overwrite, datasets_only=True)
    except ArgumentError as e:
        raise _usage_error(e) from None
    except StorageError as e:
        raise _usage_error(
            e, "--format" if "tfds" in str(e) and fmt == "tfds" else "--output"
        ) from None

    with _stop_signals_exit():
        dataset = _generate_with_progress(args, quiet)
        if fmt == "tfds":
            from mnist1d.tfds_export import export_tfds

            folder = export_tfds(dataset, output, overwrite)
            if not quiet:
                click.echo(
                    f"wrote {folder} (tfds): train {len(dataset['x'])}, test {len(dataset['x_test'])}"
                )
            return
        _save(dataset, output, args, overwrite)
    if not quiet:
        click.echo(
            f"wrote {output} ({file_format(output)}): x {dataset['x'].shape}, "
            f"x_test {dataset['x_test'].shape}, t {dataset['t'].shape}"
        )


def _generate_with_progress(args: DatasetArgs, quiet: bool) -> dict[str, Any]:
    """Generate the dataset, with a progress bar on stderr for large ones."""
    from mnist1d.data import get_templates
    from mnist1d.generator import generate

    per_class = args.num_samples // 10
    with click.progressbar(
        length=per_class * 10,
        label="generating",
        file=sys.stderr,
        hidden=quiet or per_class * 10 < 100_000,
    ) as bar:
        return generate(args, get_templates(), progress=bar.update, sync_global_rng=False)


def _save(dataset: dict[str, Any], output: Path, args: DatasetArgs, overwrite: bool) -> None:
    """Write the dataset atomically; storage problems become one usage-error line."""
    try:
        save_dataset(dataset, output, args=args.to_dict(), overwrite=overwrite)
    except StorageError as e:
        raise _usage_error(e, "--output") from None
    except OSError as e:
        raise click.UsageError(f"cannot write {os.fspath(output)!r}: {e.strerror or e}") from None


def _load(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """Load a dataset file for plot/info; pickles only because the user named the file."""
    try:
        fmt = file_format(path)
        if fmt == "pickle":
            click.echo(f"note: unpickling {path}; only open pickles you trust", err=True)
        data, args = load_dataset(path, allow_pickle=True)
    except StorageError as e:
        raise _usage_error(e, "FILE") from None
    return data, args, fmt


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Image to write (.png, .pdf or .svg).",
)
@click.option(
    "--per-class",
    type=click.IntRange(1, 20),
    default=4,
    show_default=True,
    help="Signals per class.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def plot(file: Path, output: Path, per_class: int, overwrite: bool) -> None:
    """Draw each class's template and a few of its training signals into an image."""
    from mnist1d.plotting import dataset_figure

    if output.suffix.lower() not in PLOT_FORMATS:
        raise click.BadParameter(
            f"unknown image extension {output.suffix or '(none)'!r}; use one of {', '.join(PLOT_FORMATS)}",
            param_hint="'--output'",
        )
    try:
        check_writable(output, overwrite)
    except StorageError as e:
        raise _usage_error(e, "--output") from None
    data, _, _ = _load(file)
    fig = dataset_figure(data, per_class=per_class)
    try:
        with atomic_path(output, overwrite) as tmp:
            fig.savefig(tmp, format=output.suffix.lower().lstrip("."))
    except StorageError as e:
        raise _usage_error(e, "--output") from None
    click.echo(f"wrote {output}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def info(file: Path) -> None:
    """Summarise a dataset file: arrays, class counts, and the arguments it was made with."""
    data, args, fmt = _load(file)
    click.echo(f"{file} ({fmt})")
    for key in ("x", "y", "x_test", "y_test", "t"):
        arr = np.asarray(data[key])
        click.echo(f"  {key:<8} shape {str(arr.shape):<14} dtype {arr.dtype}")
    templates = data["templates"]
    click.echo(
        f"  templates x {np.shape(templates['x'])}, classes {np.asarray(templates['y']).tolist()}"
    )
    for key in ("y", "y_test"):
        labels, counts = np.unique(np.asarray(data[key]), return_counts=True)
        pairs = " ".join(f"{int(lab)}:{int(c)}" for lab, c in zip(labels, counts, strict=True))
        click.echo(f"  {key} class counts: {pairs}")
    x = np.asarray(data["x"])
    if x.size:
        click.echo(
            f"  x mean {x.mean():.4f}, std {x.std():.4f}, min {x.min():.4f}, max {x.max():.4f}"
        )
    if args is None:
        click.echo("  args: not stored in this file (the reference's pickle layout has none)")
    else:
        click.echo("  args:")
        for key, value in args.items():
            click.echo(f"    {key} = {value}")


if __name__ == "__main__":
    main()
