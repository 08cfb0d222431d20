"""The setting declarations: each one's flag, default, rule and message come from one place."""

from __future__ import annotations

import dataclasses

import pytest
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.commands.run import pretrain, run
from fsbench.presets import preset_for
from fsbench.resolve import resolve_settings
from fsbench.settings import (
    BASE,
    DATA_SETTINGS,
    DETECTION_METHODS,
    EXECUTION_KEYS,
    SPECS,
    SettingError,
    Settings,
    base_type,
    flag,
)

CLI_SETTINGS = [n for n, (_, s, _) in SPECS.items() if s.cli]
CLI_DATA = [n for n, (_, s) in DATA_SETTINGS.items() if s.cli]


def _flags(command) -> set[str]:
    return {opt for p in command.params for opt in p.opts}


@pytest.mark.parametrize("command", [run, pretrain])
def test_every_declared_setting_is_a_flag(command):
    flags = _flags(command)
    missing = [flag(n) for n in CLI_SETTINGS + CLI_DATA if flag(n) not in flags]
    assert not missing
    # the settings that once had no flag have one now
    for name in ("lr_step", "lr_gamma", "pool", "readout", "val_shot"):
        assert flag(name) in flags


def test_base_is_the_declared_defaults():
    assert BASE["hidden"] == 64 and BASE["norm"] == "batch" and BASE["maml_exec"] == "auto"
    assert set(BASE) == {f.name for f in dataclasses.fields(Settings)} - {
        "method",
        "dataset",
        "preset_source",
        "world_size",
    }
    assert set(EXECUTION_KEYS) == {
        "threads",
        "checkpoint_every",
        "maml_exec",
        "log",
        "preset_source",
    }


def _bad_value(name: str, library: bool = False):
    """A value that breaks the declared rule of ``name`` (None when it has no rule to break);
    a flag may not give a setting's ``off`` value (lite_h 0), a preset or record may."""
    tp, s, _ = SPECS[name]
    if s.choices:
        return "nope"
    if s.min is not None:
        low = s.min if s.min_open else s.min - 1
        if library and low == s.off:
            low -= 1
        return str(int(low)) if base_type(tp) is int else str(low)
    return None


RANGED = [n for n in CLI_SETTINGS if _bad_value(n) is not None]


@pytest.mark.parametrize("name", RANGED)
def test_a_bad_value_is_one_line_naming_the_flag(name):
    r = CliRunner().invoke(main, ["run", "protonet", "doubled", flag(name), _bad_value(name)])
    assert_one_line_error(r, flag(name), "must be")


@pytest.mark.parametrize("name", RANGED)
def test_the_library_names_the_parameter(name):
    tp, s, _ = SPECS[name]
    value = _bad_value(name, library=True)
    value = value if s.choices else (int(value) if base_type(tp) is int else float(value))
    method = "magnet" if s.methods and "magnet" in s.methods else "protonet"
    method = "repmet" if s.methods == ("repmet",) else method
    method = s.methods[0] if s.methods and method not in s.methods else method
    dataset = "fashionmnist" if method in ("magnet", "repmet") else "doublemnist"
    with pytest.raises(SettingError) as info:
        if method in DETECTION_METHODS:  # detection resolves its own preset (detection/run.py)
            from fsbench.detection.run import DATASET_READS, settings_for

            scenes = name not in DATASET_READS["voc"]  # the values are checked before the folder
            settings_for(method, "mnist-detect" if scenes else "voc", **{name: value})
        resolve_settings(method, dataset, {name: value})
    assert str(info.value).startswith(f"{name} must be"), str(info.value)
    assert info.value.for_cli().startswith(f"{flag(name)} must be")


def test_data_option_for_a_dataset_that_does_not_take_it():
    # --image-size was accepted for tfds and then failed in the data layer
    r = CliRunner().invoke(main, ["run", "protonet", "tfds", "--image-size", "32"])
    assert_one_line_error(r, "--image-size applies to", "not tfds")
    r = CliRunner().invoke(main, ["run", "maml", "doubled", "--omniglot-split", "cbfinn"])
    assert_one_line_error(r, "--omniglot-split applies to omniglot only")


def test_new_flags_reach_the_settings():
    ctx = run.make_context(
        "run",
        ["maml", "doubled", "--pool", "max", "--readout", "flatten", "--lr-step", "7"]
        + ["--lr-gamma", "0.3", "--val-shot", "2", "--widths", "8,16,32,64"],
    )
    p = ctx.params
    assert (p["pool"], p["readout"], p["lr_step"], p["lr_gamma"], p["val_shot"]) == (
        "max",
        "flatten",
        7,
        0.3,
        2,
    )
    assert p["widths"] == [8, 16, 32, 64]
    given = {k: p[k] for k in ("pool", "readout", "lr_step", "lr_gamma", "val_shot")}
    s = resolve_settings("maml", "doublemnist", given)
    assert preset_for("maml", "doublemnist").settings["pool"] == "stride"
    assert (s["pool"], s["readout"], s["lr_step"], s["lr_gamma"], s["val_shot"]) == (
        "max",
        "flatten",
        7,
        0.3,
        2,
    )


def test_a_setting_only_some_methods_read_is_refused_elsewhere():
    with pytest.raises(SettingError, match="pretrained applies to mtl, not protonet"):
        resolve_settings("protonet", "doublemnist", {"pretrained": "/x"})
    r = CliRunner().invoke(main, ["run", "protonet", "doubled", "--nearest", "3"])
    assert_one_line_error(r, "--nearest applies to magnet, not protonet")


def test_list_shows_every_setting():
    r = CliRunner().invoke(main, ["list"])
    assert r.exit_code == 0, r.output
    for name in CLI_SETTINGS + CLI_DATA:
        assert f"  {flag(name)} (" in r.output, name


def test_a_method_receives_a_frozen_settings_object():
    from fsbench.methods import build_method

    settings = resolve_settings("protonet", "doublemnist", {"hidden": 4})
    method = build_method(settings, (1, 16, 16), 10)
    assert isinstance(method.settings, Settings)
    assert method.settings.hidden == 4 and method.settings.norm == "running"
    with pytest.raises(dataclasses.FrozenInstanceError):
        method.settings.hidden = 8  # type: ignore[misc]
    # the record keeps its layout: the same keys, in the same order, with the same values
    record = Settings.from_dict(settings).as_dict()
    assert record == settings and list(record) == list(settings)


def test_an_older_record_gets_the_declared_defaults():
    settings = resolve_settings("protonet", "doublemnist")
    older = {k: v for k, v in settings.items() if k not in ("lite_h", "val_shot")}
    s = Settings.from_dict(older)
    assert s.lite_h == BASE["lite_h"] == 0 and s.val_shot is None


def test_an_off_value_is_allowed_from_presets_not_from_the_flag():
    assert resolve_settings("maml", "doublemnist", {"lite_h": 0})["lite_h"] == 0  # not LITE
    r = CliRunner().invoke(main, ["run", "protonet", "doubled", "--lite-h", "0"])
    assert_one_line_error(r, "--lite-h must be an integer >= 1, got 0")
