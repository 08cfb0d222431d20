"""``fsbench reproduce``: every cell of a source table, printed beside the published numbers."""

from __future__ import annotations

import time
from pathlib import Path

import click

from fsbench.catalog import USER_DATASETS
from fsbench.commands.common import configure_logging, fmt_pct
from fsbench.commands.options import (
    data_root_option,
    device_option,
    setting_option,
    time_limit_option,
)
from fsbench.errors import FsbenchError
from fsbench.settings import flag
from fsbench.table_specs import TABLES

POS = click.IntRange(min=1)


def _parse_seeds(seeds: str | None) -> tuple[int, ...] | None:
    if not seeds:
        return None
    try:
        values = tuple(int(s) for s in seeds.split(","))
    except ValueError:
        raise FsbenchError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    if any(s < 0 for s in values):
        raise FsbenchError(f"--seeds must be >= 0, got {seeds!r}")
    return values


def what_ran(results: list[dict]) -> list[str]:
    """Footer lines: the settings that differ from the presets, as actually recorded."""
    lines: dict[str, list[str]] = {}
    for r in results:
        devs = r.get("deviations") or []
        text = ", ".join(f"{d['setting']} {d['value']} (preset {d['preset']})" for d in devs)
        cell = f"{r['method']} {r.get('dataset_label', r['dataset'])}"
        if r.get("shot") is not None:
            cell += f" {r['way']}w{r['shot']}s"
        lines.setdefault(text, []).append(cell)
    out = []
    for text, cells in lines.items():
        who = "all cells" if len(lines) == 1 else ", ".join(dict.fromkeys(cells))
        out.append(f"{who}: " + (f"differ from the preset in {text}" if text else "the preset"))
    return out


@click.command()
@click.argument("table", type=click.Choice([*sorted(TABLES), "repmet-detection"]), metavar="TABLE")
@click.option(
    "--quick", is_flag=True, help="short CPU version (minutes): fewer iterations, episodes, images"
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="output directory (default reproduce/TABLE[-quick])",
)
@device_option()
@setting_option("precision")
@click.option("--seeds", help="comma-separated seeds (default: the table's)")
@data_root_option()
@click.option(
    "--dataset-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="your copy of the table's data, for every cell that reads it (lite-md: Meta-Dataset's "
    "converted records, one folder per source)",
)
@setting_option(
    "sources",
    "lite-md: train, validate and test on these Meta-Dataset sources only (comma separated, "
    "e.g. without ilsvrc_2012 where it is not converted; a recorded deviation); the rows of "
    "other test sources are left out",
)
@setting_option("md_read")
@setting_option("threads", "torch CPU threads for every cell (default: the preset's)")
@click.option(
    "--overwrite", is_flag=True, help="re-run cells that already have a result or a checkpoint"
)
@click.option("--quiet", is_flag=True, help="no progress bars")
@setting_option("iterations", "training iterations of every cell (e.g. a smoke run)")
@setting_option("episodes", "test episodes of every cell (e.g. a smoke run)")
@click.option(
    "--jobs",
    type=POS,
    default=1,
    show_default=True,
    help="cells run side by side in this many processes (one torch thread each unless --threads)",
)
@time_limit_option()
@click.option(
    "--with",
    "with_",
    multiple=True,
    metavar="METHOD",
    help="add a user's method (registered, or a fsbench.methods entry point) as rows of the "
    "table, under its protocol; repeatable",
)
def reproduce(
    table: str,
    quick: bool,
    out: Path | None,
    device: str,
    precision: str | None,
    seeds: str | None,
    data_root,
    dataset_dir: Path | None,
    sources: str | None,
    md_read: str | None,
    threads: int | None,
    overwrite: bool,
    quiet: bool,
    iterations: int | None,
    episodes: int | None,
    jobs: int,
    time_limit: float | None,
    with_: tuple[str, ...] = (),
) -> None:
    """Run every cell of a source TABLE and print it beside the published numbers.

    With --with METHOD a user's method gets rows of its own under the table's protocol (the
    same datasets, way/shot, test episodes, data and seeds), marked as a user method."""
    from fsbench.engine.reproduce import plan_table, run_plan, with_user_methods
    from fsbench.engine.stop import process_start, stop_on_signals
    from fsbench.tables import pivot_frame, results_frame, to_markdown, write_tables

    if table == "repmet-detection":  # RepMet vs fine-tuning detectors: detection/reproduce.py
        if with_:
            raise FsbenchError("--with applies to the few-shot classification tables")
        from fsbench.commands.detection import reproduce_detection_cli

        given = dict(data_root=data_root, device=device, quiet=quiet, jobs=jobs, threads=threads)
        given.update(iterations=iterations, time_limit=time_limit, overwrite=overwrite)
        if sources or md_read:
            raise FsbenchError("--md-sources and --md-read apply to the lite-md table")
        return reproduce_detection_cli(
            quick, out, {**given, "seeds": seeds, "precision": precision}
        )
    configure_logging(quiet)
    spec = TABLES[table].for_run(quick)
    if with_:
        spec = with_user_methods(spec, [m.lower() for m in with_])
    if dataset_dir is not None and not any(c.dataset in USER_DATASETS for c in spec.cells):
        raise FsbenchError(
            f"--dataset-dir: no cell of {table}{' --quick' if quick else ''} reads your data "
            "(its datasets are generated)"
        )
    data_options = {k: v for k, v in (("sources", sources), ("md_read", md_read)) if v}
    if data_options and not any(c.dataset == "metadataset" for c in spec.cells):
        flags = " and ".join(flag(k) for k in data_options)
        raise FsbenchError(
            f"{flags}: no cell of {table}{' --quick' if quick else ''} reads Meta-Dataset"
        )
    out = out or Path("reproduce") / (table + ("-quick" if quick else ""))
    seed_list = _parse_seeds(seeds) or (spec.quick_seeds if quick else spec.seeds)
    t0 = time.perf_counter()
    plan = plan_table(
        spec,
        out,
        quick=quick,
        seeds=seed_list,
        overrides={
            "threads": threads,
            "iterations": iterations,
            "episodes": episodes,
            "precision": precision,
        },
        overwrite=overwrite,
        jobs=jobs,
        progress=not quiet,
        dataset_dir=dataset_dir,
        data_options=data_options,
    )
    cells = run_plan(
        plan,
        data_root=data_root,
        device=device,
        quiet=quiet,
        jobs=jobs,
        echo=click.echo,
        time_limit=time_limit,
        started=process_start(),
    )
    with stop_on_signals():
        for item in cells:
            res = item.result
            if item.action == "keep" or res is None:
                continue
            how = {"eval": f"evaluated from {item.trained_in}", "resume": "resumed"}.get(
                item.action, "trained"
            )
            click.echo(
                f"{item.label} {fmt_pct(res['accuracy'])} % ± {fmt_pct(res['ci95'])} "
                f"in {res['wall_seconds']:.1f} s ({how})"
            )
    results = [p.result for p in plan if p.result is not None]
    by_cell: dict[str, list[dict]] = {}
    for p in plan:
        if p.result is not None:
            by_cell.setdefault(p.cell.name, []).append(p.result)
    df = results_frame(results)
    grid = pivot_frame(spec, by_cell)
    write_tables(df, out, "table")
    write_tables(grid, out, "table_source_layout")
    minutes = (time.perf_counter() - t0) / 60
    click.echo("")
    click.echo(f"{spec.source} — ours ± 95% CI (published), percent")
    click.echo(
        f"seeds {', '.join(map(str, seed_list))} ({len(seed_list)} run(s) per cell, mean shown)"
        + (f"; {spec.quick_note}" if quick else "")
    )
    click.echo(to_markdown(grid))
    click.echo("")
    click.echo(to_markdown(df.drop(columns=["ci95_method", "device"])))
    click.echo("")
    for line in what_ran(results):
        click.echo(f"Ran: {line}")
    if any(r.get("deviations") for r in results):
        click.echo(
            "* the cell's run differs from the preset (see 'Ran:'); not the published protocol"
        )
    methods = sorted(set(df["ci95_method"])) if not df.empty else []
    click.echo(f"CI: {'; '.join(methods) or '-'}; {minutes:.1f} min; tables in {out}/table*.md|csv")
