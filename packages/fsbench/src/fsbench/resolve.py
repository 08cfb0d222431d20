"""A run's settings: BASE, its preset (variants and ties), then the user's values, checked."""

from __future__ import annotations

from fsbench.catalog import CLASSIFIER_METHODS
from fsbench.presets import preset_for
from fsbench.settings import BASE, differences, validate


def resolve_settings(method: str, dataset: str, overrides: dict | None = None) -> dict:
    """BASE, the preset, its variants and ties, then the non-None overrides, checked."""
    preset = preset_for(method, dataset)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    settings = {**BASE, **preset.settings, "method": method, "dataset": dataset}
    settings["data_options"] = dict(settings.get("data_options") or {})
    for key, value in given.items():
        if key == "data_options":
            settings["data_options"].update(value)
        else:
            settings[key] = value
    for (key, value), extra in preset.variants.items():
        if settings.get(key) == value:
            settings.update({k: v for k, v in extra.items() if k not in given})
    for key, follows in preset.tied.items():
        if key not in given:
            settings[key] = settings[follows]
    for key in ("way", "shot", "query"):
        if settings.get(f"train_{key}") is None:
            settings[f"train_{key}"] = settings[key]
    validate(settings, given)
    settings["preset_source"] = preset.source
    return settings


def preset_defaults(method: str, dataset: str, settings: dict) -> dict:
    """What the preset alone gives for the way/shot of ``settings`` (its variants and ties too)."""
    return resolve_settings(
        method,
        dataset,
        {k: settings.get(k) for k in ("way", "shot", "pretrained")},
    )


# Settings a method never reads: they can differ without changing what it computes.
TRAIN_EPISODE = ("train_way", "train_shot", "train_query")
UNUSED: dict[str, tuple[str, ...]] = {
    "pretrain": TRAIN_EPISODE,  # plain classification
    # the MNIST-1D classifiers train on batches and test on the whole test split: no episodes
    **{m: (*TRAIN_EPISODE, "episodes", "shot", "query") for m in CLASSIFIER_METHODS},
}


def deviations(settings: dict) -> list[dict]:
    """Every semantic setting that differs from the preset, as {setting, value, preset} records."""
    base = preset_defaults(settings["method"], settings["dataset"], settings)
    diff = differences(settings, base)
    for key in ("seed", *UNUSED.get(settings["method"], ())):
        diff.pop(key, None)
    return [{"setting": k, "value": v[0], "preset": v[1]} for k, v in diff.items()]
