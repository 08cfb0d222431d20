"""``fsbench list``: methods, datasets, settings, presets and tables."""

from __future__ import annotations

import click

from fsbench.errors import FsbenchError
from fsbench.methods import DESCRIPTIONS, METHODS
from fsbench.table_specs import TABLES


@click.command(name="list")
def list_() -> None:
    """Show methods, datasets, settings, presets (with their sources and notes) and reproducible tables."""
    from fsbench.catalog import CLASSIFIER_METHODS, IMAGE_DATASETS, MNIST1D_DATASETS
    from fsbench.data import ALIASES, DATASETS
    from fsbench.presets import preset_for
    from fsbench.settings import describe

    click.echo("Methods:")
    for m in METHODS:
        click.echo(f"  {m:<10} {DESCRIPTIONS[m]}")
    from fsbench.methods.registry import user_methods

    mine, broken = user_methods()
    if mine or broken:
        click.echo("User methods (registered or entry points; marked in tables):")
        for m, entry in mine.items():
            preset = entry.preset if isinstance(entry.preset, str) else "settings given"
            click.echo(f"  {m:<10} {entry.description} [{entry.origin}; defaults: {preset}]")
        for line in broken:
            click.echo(f"  (not loaded) {line}")
    from fsbench.detection.run import DETECTION_DATASETS, DETECTOR_DESCRIPTIONS

    click.echo("Few-shot detection (fsbench run DETECTOR DATASET):")
    for name, desc in DETECTOR_DESCRIPTIONS.items():
        click.echo(f"  {name:<12} {desc}")
    for name, desc in DETECTION_DATASETS.items():
        click.echo(f"  {name:<12} {desc}")
    click.echo("Datasets:")
    back: dict[str, list[str]] = {}
    for alias_, target in ALIASES.items():
        back.setdefault(target, []).append(alias_)
    for d, desc in DATASETS.items():
        alias = f" (alias {', '.join(back[d])})" if d in back else ""
        click.echo(f"  {d}{alias}: {desc}")
    click.echo("Settings (run/pretrain flags; a preset sets its own values):")
    for line in describe():
        click.echo(f"  {line}")
    click.echo("Presets (method / dataset: defaults; source):")
    keys = (
        "way",
        "shot",
        "query",
        "train_way",
        "meta_batch",
        "inner_lr",
        "inner_steps",
        "test_inner_steps",
        "inner_loss",
        "iterations",
        "lr",
        "lr_step",
        "batch_size",
        "norm",
        "modes",
        "select",
        "episodes",
    )
    for m in METHODS:
        for d in MNIST1D_DATASETS if m in CLASSIFIER_METHODS else IMAGE_DATASETS:
            try:
                p = preset_for(m, d)
            except FsbenchError:  # no preset for this pair
                continue
            s = p.settings
            shown_ = ", ".join(f"{k}={s[k]}" for k in keys if k in s)
            click.echo(f"  {m} / {d}: {shown_}")
            click.echo(f"      {p.source}")
    click.echo("Tables (fsbench reproduce TABLE [--quick]):")
    for spec in TABLES.values():
        click.echo(f"  {spec.name}: {spec.source}; {len(spec.cells)} cells")
