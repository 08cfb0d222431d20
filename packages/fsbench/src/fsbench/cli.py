"""The ``fsbench`` command: run one setting, reproduce a source table, render tables, list things.

User mistakes (FsbenchError, click usage errors) print one line and exit non-zero, no traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from fsbench.errors import FsbenchError
from fsbench.methods import DESCRIPTIONS, METHODS
from fsbench.presets import MDMNIST_DATASETS, TABLES

DEVICES = ("auto", "cpu", "cuda")
POS = click.IntRange(min=1)
NONNEG = click.IntRange(min=0)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class FsbenchGroup(click.Group):
    """A click group whose errors are one line on stderr and a non-zero exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except FsbenchError as exc:
            click.echo(f"Error: {_one_line(str(exc))}", err=True)
            sys.exit(1)
        except (click.Abort, KeyboardInterrupt):
            click.echo("Aborted.", err=True)
            sys.exit(130)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=FsbenchGroup)
@click.version_option(package_name="fsbench", prog_name="fsbench")
def main() -> None:
    """Few-shot benchmark harness: train the source documents' models, print tables beside the published numbers."""


def _dataset(value: str) -> str:
    from fsbench.data import resolve_dataset

    return resolve_dataset(value)


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _data_options(name: str, dataset_dir: Path | None, download: bool) -> dict:
    """Data-layer options for --dataset-dir and --download; the source format is detected."""
    options: dict = {}
    if download:
        if name != "omniglot":
            raise FsbenchError(f"--download applies to omniglot only, not {name}")
        options["download"] = True
    if dataset_dir is None:
        return options
    if name == "omniglot":
        options["omniglot_dir"] = str(dataset_dir)
    elif name in MDMNIST_DATASETS:
        if (dataset_dir / "train.h5").is_file():
            options.update(path=str(dataset_dir), source="hdf5")
        elif (dataset_dir / "train").is_dir():
            options.update(path=str(dataset_dir), source="png")
        else:
            raise FsbenchError(
                f"--dataset-dir {dataset_dir} holds neither train.h5 (mdmnist HDF5) nor a "
                "train/ PNG tree"
            )
    else:
        raise FsbenchError(f"--dataset-dir applies to {', '.join(MDMNIST_DATASETS)} and omniglot")
    return options


@main.command()
@click.argument(
    "method", type=click.Choice(sorted(METHODS), case_sensitive=False), metavar="METHOD"
)
@click.argument("dataset")
@click.option("--way", type=POS, help="classes per test episode (MAML: also training)")
@click.option("--shot", type=POS, help="support examples per class")
@click.option("--query", type=POS, help="query examples per class at evaluation")
@click.option("--train-way", type=POS, help="ProtoNets: classes per training episode")
@click.option("--train-shot", type=POS, help="ProtoNets: support examples per class in training")
@click.option("--train-query", type=POS, help="query examples per class in training")
@click.option("--iterations", type=POS, help="meta-iterations / training episodes / steps")
@click.option("--meta-batch", type=POS, help="MAML tasks per meta-iteration")
@click.option("--episodes", type=POS, help="test episodes (classifiers: full test split)")
@click.option("--seed", type=NONNEG, help="training seed (default 0)")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="outer/Adam learning rate")
@click.option("--inner-lr", type=click.FloatRange(min=0, min_open=True), help="MAML fast lr")
@click.option("--inner-steps", type=POS, help="MAML inner steps at training")
@click.option("--test-inner-steps", type=POS, help="MAML inner steps at test")
@click.option("--hidden", type=POS, help="Conv-4 filters")
@click.option("--batch-size", type=POS, help="classifier minibatch size")
@click.option(
    "--images-per-class",
    type=POS,
    help="doublemnist/triplemnist: images per class to generate/load",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="auto: bf16/fp16 autocast on CUDA, fp32 on CPU",
)
@click.option(
    "--maml-exec",
    type=click.Choice(["auto", "measure", "loop", "vmap", "compile"]),
    default="auto",
    show_default=True,
    help="how MAML runs a meta-batch; measure: time loop and vmap on the first meta-batch and "
    "keep the faster; auto: loop on CPU (measured), measure on CUDA",
)
@click.option("--threads", type=POS, help="torch CPU threads (default: torch's own)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="output directory")
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoint.pt")
@click.option("--overwrite", is_flag=True, help="replace an earlier run in OUT")
@click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    help="dataset cache (default $FSBENCH_DATA or ~/.cache/fsbench)",
)
@click.option(
    "--dataset-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="use this dataset folder as it is: an mdmnist output (HDF5 or PNG tree, e.g. the "
    "published download) or an Omniglot folder of official zips",
)
@click.option(
    "--download", is_flag=True, help="omniglot: download the full official set if missing"
)
@click.option("--eval-every", type=NONNEG, help="validate every N iterations (0: never)")
@click.option(
    "--checkpoint-every", type=NONNEG, help="checkpoint every N iterations (0: only at the end)"
)
@click.option("--quiet", is_flag=True, help="no progress bars")
def run(method: str, dataset: str, **opts) -> None:
    """Train and evaluate METHOD on DATASET with the source preset; a flag overrides one value."""
    from fsbench.engine import run_setting
    from fsbench.presets import resolve_settings

    method = method.lower()
    name = _dataset(dataset)
    images = opts.pop("images_per_class")
    data_options = _data_options(name, opts.pop("dataset_dir"), opts.pop("download"))
    overrides = {
        k: opts.pop(k)
        for k in list(opts)
        if k not in ("device", "out", "resume", "overwrite", "data_root", "quiet")
    }
    if images is not None:
        if name not in MDMNIST_DATASETS:
            raise FsbenchError(
                f"--images-per-class applies to {', '.join(MDMNIST_DATASETS)} only, not {name}"
            )
        data_options["num_image_per_class"] = images
    if data_options:
        overrides["data_options"] = data_options
    settings = resolve_settings(method, name, overrides)
    if name in MDMNIST_DATASETS or name == "omniglot":
        settings["data_options"].setdefault("progress", not opts["quiet"])
    out = opts["out"] or Path("runs") / (
        f"{method}_{name}_{settings['way']}w{settings['shot']}s_seed{settings['seed']}"
    )
    result = run_setting(
        settings,
        out,
        data_root=opts["data_root"],
        device=opts["device"],
        resume=opts["resume"],
        overwrite=opts["overwrite"],
        quiet=opts["quiet"],
    )
    pub = result.get("published_percent")
    click.echo(
        f"{method} on {name}: accuracy {_fmt_pct(result['accuracy'])} % ± {_fmt_pct(result['ci95'])} "
        f"({result['ci95_method']}, {result['episodes']} {'examples' if result['shot'] is None else 'episodes'})"
        + (f"; published {pub:g} %" if pub is not None else "")
        + f"; {result['wall_seconds']:.1f} s on {result['device']}; results in {out}"
    )


@main.command()
@click.argument("table", type=click.Choice(sorted(TABLES)), metavar="TABLE")
@click.option(
    "--quick", is_flag=True, help="short CPU version (minutes): fewer iterations, episodes, images"
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="output directory (default reproduce/TABLE[-quick])",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--seeds", help="comma-separated seeds (default: the table's)")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--threads", type=POS, help="torch CPU threads for every cell (default: the preset's)"
)
@click.option("--overwrite", is_flag=True, help="re-run cells that already have a result")
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.option("--iterations", type=POS, help="training iterations of every cell (e.g. a smoke run)")
@click.option(
    "--jobs",
    type=POS,
    default=1,
    show_default=True,
    help="cells run side by side in this many processes (one torch thread each unless --threads)",
)
def reproduce(
    threads: int | None,
    table: str,
    quick: bool,
    out: Path | None,
    device: str,
    seeds: str | None,
    data_root,
    overwrite: bool,
    quiet: bool,
    iterations: int | None,
    jobs: int,
) -> None:
    """Run every cell of a source TABLE and print it beside the published numbers."""
    from fsbench.engine.parallel import CellJob, prepare_data, run_jobs
    from fsbench.presets import resolve_settings
    from fsbench.results import RESULT, read_json
    from fsbench.tables import pivot_frame, results_frame, to_markdown, write_tables

    spec = TABLES[table]
    out = out or Path("reproduce") / (table + ("-quick" if quick else ""))
    if seeds:
        try:
            seed_list = tuple(int(s) for s in seeds.split(","))
        except ValueError:
            raise FsbenchError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
        if any(s < 0 for s in seed_list):
            raise FsbenchError(f"--seeds must be >= 0, got {seeds!r}")
    else:
        seed_list = spec.quick_seeds if quick else spec.seeds
    t0 = time.perf_counter()
    labels: list[str] = []
    results: list[dict | None] = []
    todo: list[tuple[int, CellJob]] = []
    for cell in spec.cells:
        for seed in seed_list:
            overrides = dict(cell.overrides)
            if quick:
                overrides.update(
                    {k: v for k, v in spec.quick_overrides.items() if k != "data_options"}
                )
                overrides["data_options"] = dict(spec.quick_overrides.get("data_options", {}))
            overrides.update(seed=seed, threads=threads, iterations=iterations)
            settings = resolve_settings(cell.method, cell.dataset, overrides)
            if jobs > 1 and not settings["threads"]:
                settings["threads"] = 1  # N processes x torch's default threads oversubscribe
            if cell.dataset in MDMNIST_DATASETS or cell.dataset == "omniglot":
                settings["data_options"].setdefault("progress", not quiet)
            cell_dir = out / cell.name / f"seed{seed}"
            labels.append(f"[{cell.name} seed {seed}]")
            results.append(None)
            if (cell_dir / RESULT).exists() and not overwrite:
                res = read_json(cell_dir / RESULT)
                results[-1] = res
                click.echo(f"{labels[-1]} kept earlier result: {_fmt_pct(res['accuracy'])} %")
            else:
                job = CellJob(settings, cell_dir, data_root, device, quiet=quiet or jobs > 1)
                todo.append((len(results) - 1, job))
    if jobs > 1 and len(todo) > 1:
        prepare_data([job for _, job in todo])  # generate each dataset once, not once per worker
    for k, res in run_jobs([job for _, job in todo], jobs):
        index = todo[k][0]
        results[index] = res
        click.echo(
            f"{labels[index]} {_fmt_pct(res['accuracy'])} % ± {_fmt_pct(res['ci95'])} "
            f"in {res['wall_seconds']:.1f} s"
        )
    df = results_frame(results)
    grid = pivot_frame(spec, df)
    write_tables(df, out, "table")
    write_tables(grid, out, "table_source_layout")
    minutes = (time.perf_counter() - t0) / 60
    note = spec.quick_note if quick else "full preset settings"
    click.echo("")
    click.echo(f"{spec.source} — ours ± 95% CI (published), percent")
    click.echo(
        f"seeds {', '.join(map(str, seed_list))} ({len(seed_list)} run(s) per cell, mean shown); {note}"
    )
    click.echo(to_markdown(grid))
    click.echo("")
    click.echo(to_markdown(df.drop(columns=["ci95_method", "device"])))
    click.echo(
        f"\nCI: {df['ci95_method'].iloc[0] if not df.empty else '-'}; {minutes:.1f} min; tables in {out}/table*.md|csv"
    )


@main.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="write table.md and table.csv here",
)
def table(dirs: tuple[Path, ...], out: Path | None) -> None:
    """Render the result.json files under DIRS (recursively) as markdown and CSV."""
    from fsbench.tables import load_results, results_frame, to_markdown, write_tables

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
        click.echo(df.to_csv(index=False).rstrip())


@main.command(name="list")
def list_() -> None:
    """Show methods, datasets, presets and reproducible tables."""
    from fsbench.data import ALIASES, DATASETS
    from fsbench.presets import CLASSIFIER_METHODS, IMAGE_DATASETS, MNIST1D_DATASETS, preset_for

    click.echo("Methods:")
    for m in METHODS:
        click.echo(f"  {m:<10} {DESCRIPTIONS[m]}")
    click.echo("Datasets:")
    back = {}
    for a, t in ALIASES.items():
        back.setdefault(t, []).append(a)
    for d, desc in DATASETS.items():
        alias = f" (alias {', '.join(back[d])})" if d in back else ""
        click.echo(f"  {d}{alias}: {desc}")
    click.echo("Presets (method / dataset: defaults; source):")
    for m in METHODS:
        for d in MNIST1D_DATASETS if m in CLASSIFIER_METHODS else IMAGE_DATASETS:
            p = preset_for(m, d)
            s = p.settings
            keys = (
                "way",
                "shot",
                "train_way",
                "meta_batch",
                "inner_lr",
                "iterations",
                "lr",
                "lr_step",
                "batch_size",
                "episodes",
            )
            shown = ", ".join(f"{k}={s[k]}" for k in keys if k in s)
            click.echo(f"  {m} / {d}: {shown}")
            click.echo(f"      {p.source}")
    click.echo("Tables (fsbench reproduce TABLE [--quick]):")
    for t in TABLES.values():
        click.echo(f"  {t.name}: {t.source}; {len(t.cells)} cells")


if __name__ == "__main__":  # pragma: no cover
    main()
