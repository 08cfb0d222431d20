"""fsbench as a library: ``train``, ``evaluate`` and ``load_run``, the engine of the command line.

``train`` runs exactly what ``fsbench run`` runs (the same engine function, ``engine.run.execute``)
and returns the numbers instead of printing them: with ``out=PATH`` it writes what the command line
writes there, without it nothing is written anywhere. A call leaves the process as it found it
(global seeds, torch threads, deterministic and cuDNN flags: ``engine.device.run_scope``), so a
library run gives the numbers of the command-line run of the same settings; ``set_deterministic``
is the explicit process-wide switch. Errors are ``FsbenchError``; bad settings are ``SettingError``
naming the parameter (``resume``), which the command line shows as its flag (``--resume``).

    import fsbench
    res = fsbench.train("protonet", "omniglot", iterations=2000, way=5, shot=1)
    print(res.accuracy, res.ci95)               # fractions, as result.json holds them
    again = fsbench.evaluate(res, "omniglot", shot=5)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fsbench.data.store import ArrayStore
from fsbench.engine.device import resolve_device, resolve_precision, run_scope, set_deterministic
from fsbench.engine.evaluate import (
    check_recorded_transform,
    check_request,
    check_result_free,
    eval_settings,
    recorded_transform,
    score_method,
    trained_settings,
    write_evaluation,
)
from fsbench.engine.run import (
    Builder,
    Describer,
    Loader,
    _basic_description,
    _registry_loader,
    execute,
    load_options,
    load_store,
    load_tested,
    lock_existing,
)
from fsbench.engine.trainer import load_checkpoint
from fsbench.methods import build_method
from fsbench.methods.base import Method
from fsbench.results import CHECKPOINT, METRICS, RESULT, read_json, read_metrics
from fsbench.settings import DATA_SETTINGS, IDENTITY, SPECS, SettingError, complete

__all__ = [
    "Evaluation",
    "Run",
    "RunResult",
    "evaluate",
    "load_run",
    "set_deterministic",
    "table",
    "train",
]

# the splits data given as objects may hold; train and test are needed
SPLITS = ("train", "trainval", "val", "test")
# the dataset whose preset gives the defaults of data given as objects (your own images')
OBJECT_DATASET = "folder"

# a built-in dataset's name, or splits as objects: ArrayStores or map-style torch Datasets
Data = str | Mapping[str, Any]


@dataclass
class RunResult:
    """What ``train`` returns: the test accuracy and its 95% CI (fractions), the per-episode
    accuracies, the metrics records (``iteration``, ``loss``, ``accuracy``, ``lr``;
    ``val_accuracy`` at validations), the complete settings, result.json's dict, the trained
    method with its tested weights loaded, and the folder written (None: nothing written)."""

    accuracy: float
    ci95: float
    ci95_method: str
    episodes: int
    per_episode: list[float]
    history: list[dict[str, Any]]
    settings: dict[str, Any]
    result: dict[str, Any]
    method: Method
    out: Path | None = None


@dataclass
class Run:
    """A finished run read back from its folder (``load_run``): its settings, result.json,
    metrics records, and the method with the tested weights and state loaded."""

    path: Path
    settings: dict[str, Any]
    result: dict[str, Any]
    history: list[dict[str, Any]]
    method: Method
    iteration: int
    tested: str  # which model: "last iteration" or "best validation accuracy (iteration N)"
    input_transform: dict[str, Any] | None = None


@dataclass
class Evaluation:
    """What ``evaluate`` returns: accuracy and 95% CI (fractions), how the CI was computed, the
    episode shape tested, the per-episode accuracies, the result dict (as ``fsbench eval``
    writes it) and the folder written (None: nothing written)."""

    accuracy: float
    ci95: float
    ci95_method: str
    episodes: int
    way: int | None
    shot: int | None
    query: int | None
    per_episode: list[float] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None


def split_keywords(keywords: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings, data options) of the keyword arguments; a SettingError for any other name."""
    settings: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for key, value in keywords.items():
        if key in IDENTITY:
            raise SettingError(
                f"{{{key}}} is given by the method and data arguments, not as a setting", key
            )
        if key in SPECS:
            settings[key] = value
        elif key in DATA_SETTINGS:
            data[key] = value
        else:
            raise SettingError(
                f"{{{key}}} is not a setting of fsbench (fsbench list shows every one)", key
            )
    return settings, data


def check_splits(data: Mapping[str, Any]) -> dict[str, ArrayStore]:
    """Data given as objects: a mapping of split names to ArrayStores with train and test."""
    unknown = [k for k in data if k not in SPLITS]
    if unknown:
        raise SettingError(
            f"{{data}} has splits {', '.join(map(repr, unknown))}; the splits are "
            f"{', '.join(SPLITS)}",
            "data",
        )
    missing = [k for k in ("train", "test") if k not in data]
    if "trainval" in data and "train" in missing:  # a final training on train + val classes
        missing.remove("train")
    if missing:
        raise SettingError(
            f"{{data}} needs the {' and '.join(missing)} split(s): "
            '{"train": ArrayStore, "val": ArrayStore (optional), "test": ArrayStore}',
            "data",
        )
    return {split: as_store(split, value) for split, value in data.items()}


def as_store(split: str, value: Any) -> ArrayStore:
    """One split given as an object: an ArrayStore as it is, a map-style torch Dataset of
    (example, label) items read once through its own transform (``ArrayStore.from_dataset``)."""
    if isinstance(value, ArrayStore):
        return value
    if isinstance(value, torch.utils.data.Dataset) or (
        hasattr(value, "__getitem__") and hasattr(value, "__len__")
    ):
        return ArrayStore.from_dataset(value)
    raise SettingError(
        f"{{data}}[{split!r}] is a {type(value).__name__}, neither an ArrayStore nor a "
        "map-style Dataset of (example, label) items (fsbench.ArrayStore.from_tensors(x, y) "
        "builds a store from tensors)",
        "data",
    )


def object_loader(stores: Mapping[str, ArrayStore], label: str) -> tuple[Loader, Describer]:
    """The engine's loader and describer for splits given as objects (moved to the run's
    device, labelled ``label`` in result.json); the caller's stores are left unchanged."""

    def load(
        name: str, split: str, *, data_root: Any = None, device: str = "cpu", **options: Any
    ) -> ArrayStore:
        if split not in stores:
            raise SettingError(
                f"{{data}} has no {split!r} split, which this run needs (give "
                f"{{data}}[{split!r}] or change the settings that ask for it)",
                "data",
            )
        store = stores[split].to(device)  # a new store: its meta is a copy
        store.meta.setdefault("label", label)
        return store

    def describe(name: str, split: str, store: ArrayStore) -> dict:
        return _basic_description(label, split, store)

    return load, describe


def method_builder(method: Method, overrides: Mapping[str, Any]) -> tuple[str, Builder, Method]:
    """(its name, a builder, the user's method with ``overrides`` added to its own keyword
    settings): the builder rebuilds it for the data with ``Method.for_data``."""
    twin = copy.copy(method)  # the same backbone module; the user's object is not changed
    twin.given = {**method.given, **overrides}

    def build(settings: dict, shape: tuple[int, ...], num_classes: int) -> Method:
        return twin.for_data(settings["dataset"], shape, num_classes)

    return method.name, build, twin


def train(
    method: str | Method,
    data: Data,
    *,
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = True,
    time_limit: float | None = None,
    name: str | None = None,
    dataset_dir: str | Path | None = None,
    download: bool = False,
    **settings: Any,
) -> RunResult:
    """Train ``method`` on ``data`` under the preset's protocol, then test it; the numbers.

    ``method``: a name ("protonet", "maml", ...) or a Method instance (``ProtoNet(backbone)``, a
    subclass), rebuilt for the data with ``for_data`` so the dataset's preset gives the defaults
    under the settings it was made with (keyword settings given here take precedence; the
    instance itself is not changed). ``data``: a built-in dataset name (``dataset_dir`` its
    folder, as ``fsbench run --dataset-dir``: your own images, an mdmnist folder, Meta-Dataset's
    records; ``download`` where the dataset can be downloaded; other data options as keywords;
    ``data_root`` where generated data is cached), or splits as
    objects ``{"train": ..., "val": ... (optional), "test": ...}``, each an ArrayStore or a
    map-style torch Dataset of (example, label) items (read once, ``ArrayStore.from_dataset``), whose
    settings resolve over the "folder" preset (your own images'; without "val" no validation)
    and whose name in result.json is ``name``. ``settings``: any setting by keyword
    (``iterations=200, way=5``; ``fsbench list`` shows them). ``out``: the folder to write what
    ``fsbench run --out`` writes; None writes nothing. ``resume``/``overwrite``/``time_limit``:
    as the command line's flags (they need ``out``).
    """
    values, data_values = split_keywords(settings)
    loader: Loader | None = None
    describe: Describer | None = None
    if isinstance(data, str):
        from fsbench.data.location import location_options, user_data_validation
        from fsbench.data.registry import OPTIONS, resolve_dataset
        from fsbench.settings import data_options_for

        if name is not None:
            raise SettingError(
                "{name} names data given as objects; a built-in dataset has its own", "name"
            )
        dataset = resolve_dataset(data)
        options = location_options(dataset, dataset_dir, download)
        options.update(data_options_for(dataset, data_values))
        user_data_validation(dataset, options, values)  # your own folder without a val split
        if "progress" in OPTIONS[dataset]:  # as fsbench run: loading progress unless quiet
            options.setdefault("progress", not quiet)
        if options:
            values["data_options"] = options
    elif isinstance(data, Mapping):
        stores = check_splits(data)
        if dataset_dir is not None or download:
            raise SettingError(
                "{dataset_dir}/{download} locate a built-in dataset's files; data given as "
                "objects has them already",
                "dataset_dir",
                "download",
            )
        if data_values:
            key = next(iter(data_values))
            raise SettingError(
                f"{{{key}}} is a data option of the built-in datasets; data given as objects "
                "takes none",
                key,
            )
        dataset = OBJECT_DATASET
        loader, describe = object_loader(stores, name or "your data")
        if "val" not in stores:  # as fsbench run on a folder without a val split
            if int(values.get("eval_every") or 0) > 0:
                raise SettingError(
                    '{eval_every} needs a validation split: give {data}["val"]',
                    "eval_every",
                    "data",
                )
            values.setdefault("eval_every", 0)
            values.setdefault("select", "last")
    else:
        raise SettingError(
            f"{{data}} must be a dataset name or a mapping of splits to ArrayStores, got "
            f"{type(data).__name__}",
            "data",
        )
    from fsbench.resolve import resolve_settings

    build: Builder | None = None
    if isinstance(method, Method):
        method_name, build, twin = method_builder(method, values)
        resolved = resolve_settings(method_name, dataset, twin.given)
    elif isinstance(method, str):
        resolved = resolve_settings(method.lower(), dataset, values)
    else:
        raise SettingError(
            f"{{method}} must be a method name or a Method, got {type(method).__name__}",
            "method",
        )
    outcome = execute(
        resolved,
        Path(out) if out is not None else None,
        data_root=data_root,
        device=device,
        resume=resume,
        overwrite=overwrite,
        quiet=quiet,
        loader=loader,
        describe=describe,
        time_limit=time_limit,
        build=build,
    )
    res, result = outcome.evaluation, outcome.result
    return RunResult(
        accuracy=res.accuracy,
        ci95=res.ci95,
        ci95_method=res.ci95_method,
        episodes=res.episodes,
        per_episode=list(res.per_episode),
        history=outcome.history,
        settings=dict(result["settings"]),
        result=result,
        method=outcome.method,
        out=outcome.out,
    )


def load_run(
    path: str | Path,
    *,
    device: str = "cpu",
    method: Method | None = None,
    data_root: str | Path | None = None,
) -> Run:
    """A finished run folder read back: settings, result.json, metrics, and its method with the
    tested weights (best on validation, or last) and the method's state loaded, on ``device``.

    ``method``: for a run trained with your own backbone, a Method holding that backbone (its
    architecture must match the recorded weights); else the preset's network is built.
    ``data_root``: where the run's data is, read only for runs that did not record their shape.
    """
    folder = Path(path)
    settings, iteration = trained_settings(folder)
    result = read_json(folder / RESULT) if (folder / RESULT).is_file() else {}
    train_facts = (result.get("data") or {}).get("train") or {}
    dev = resolve_device(device)
    with run_scope(dev, seed=None):
        shape = train_facts.get("example_shape")
        classes = train_facts.get("classes")
        if shape is None or classes is None:  # not recorded: the training split tells
            loader, _ = _registry_loader()
            store = load_store(
                loader,
                settings["dataset"],
                settings["train_split"],
                data_root=data_root,
                device=dev,
                options=load_options(settings),
            )
            shape, classes = list(store.example_shape), store.num_classes
        torch.manual_seed(int(settings["seed"]))  # as fsbench eval builds it
        if method is None:
            built = build_method(settings, tuple(shape), int(classes))
        else:
            built = type(method)(
                method.backbone, settings=settings, example_shape=shape, num_classes=classes
            )
        built.to(dev)
        tested = load_tested(built, folder, settings)
    return Run(
        path=folder,
        settings=settings,
        result=result,
        history=read_metrics(folder / METRICS),
        method=built,
        iteration=iteration,
        tested=tested,
        input_transform=recorded_transform(folder, load_checkpoint(folder / CHECKPOINT)),
    )


@dataclass
class Subject:
    """What ``evaluate`` tests: a trained method, its complete settings, and where it came from."""

    method: Method
    settings: dict[str, Any]
    iteration: int
    tested: str
    run_dir: Path | None
    accuracy: float | None
    input_transform: dict[str, Any] | None


def subject_of(thing: Run | RunResult | Method | str | Path, device: str) -> Subject:
    """The trained method of a Run, a RunResult, a run folder, or a Method itself."""
    if isinstance(thing, str | Path):
        thing = load_run(thing, device=device)
    if isinstance(thing, Run):
        return Subject(
            thing.method,
            thing.settings,
            thing.iteration,
            thing.tested,
            thing.path,
            thing.result.get("accuracy"),
            thing.input_transform,
        )
    if isinstance(thing, RunResult):
        result = thing.result
        tested = (result.get("selection") or {}).get("tested") or "last iteration"
        return Subject(
            thing.method,
            complete(thing.settings),
            int(result["iterations"]),
            tested,
            thing.out,
            thing.accuracy,
            None,
        )
    if isinstance(thing, Method):
        return Subject(thing, thing.settings.as_dict(), 0, "the method as given", None, None, None)
    raise SettingError(
        f"{{run_or_method}} must be a Run, a RunResult, a Method or a run folder, got "
        f"{type(thing).__name__}",
        "run_or_method",
    )


def evaluate(
    run_or_method: Run | RunResult | Method | str | Path,
    data: Data | ArrayStore | Any = None,
    *,
    episodes: int | None = None,
    way: int | None = None,
    shot: int | None = None,
    query: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    data_root: str | Path | None = None,
    device: str = "auto",
    quiet: bool = True,
    **data_options: Any,
) -> Evaluation:
    """Test a trained method on test episodes without training it: the numbers.

    ``run_or_method``: a ``Run`` (``load_run``), a ``RunResult`` (``train``), a run folder, or a
    trained ``Method``. ``data``: None for the run's own test split; a built-in dataset name
    (its data options as keywords); the test classes as an ArrayStore or a torch Dataset, or
    ``{"test": ...}``.
    With the run's own way/shot/query/episodes/seed on its own data, this is the run's own
    result again, exactly. ``out``: write result.json there (as ``fsbench eval --out``); None
    writes nothing.
    """
    subject = subject_of(run_or_method, device)
    settings = subject.settings
    check_request(settings, way, shot, query)
    new = eval_settings(settings, way=way, shot=shot, query=query, episodes=episodes, seed=seed)
    folder = Path(out) if out is not None else None
    if folder is not None:
        check_result_free(folder, overwrite)
    dev = resolve_device(device)
    precision = resolve_precision(settings["precision"], dev)
    if data is not None and not isinstance(data, str | Mapping):  # the test split itself
        data = {"test": data}
    if isinstance(data, Mapping):
        if data_options:
            raise SettingError(
                f"{{{next(iter(data_options))}}} is a data option of the built-in datasets",
                next(iter(data_options)),
            )
        loader, describe = object_loader(check_test_split(data), "your data")
        options: dict = {}
    elif data is None or isinstance(data, str):
        loader, describe = _registry_loader()
        options = load_options(settings)
        if data is not None:
            from fsbench.data.registry import resolve_dataset
            from fsbench.settings import data_options_for

            dataset = resolve_dataset(data)
            options = data_options_for(dataset, split_keywords(data_options)[1])
            new = {**new, "dataset": dataset, "data_options": options}
        elif settings["dataset"] == OBJECT_DATASET and not options.get("path"):
            raise SettingError(
                "{data}: this method was trained on data given as objects; give its test split "
                "as {data}",
                "data",
            )
    else:
        raise SettingError(
            f"{{data}} must be None, a dataset name, an ArrayStore or a mapping of splits, got "
            f"{type(data).__name__}",
            "data",
        )
    lock = lock_existing(folder) if folder is not None else None
    try:
        with run_scope(dev, seed=None):
            t0 = time.perf_counter()
            test_store = load_store(
                loader, new["dataset"], "test", data_root=data_root, device=dev, options=options
            )
            if isinstance(data, Mapping):  # not the data any published number is about
                test_store.meta.setdefault("comparable", False)
                test_store.meta.setdefault("not_comparable", "evaluated on data given as objects")
            elif subject.run_dir is not None:
                check_recorded_transform(subject.run_dir, subject.input_transform, test_store)
            subject.method.to(dev)
            result, res = score_method(
                subject.method,
                new,
                test_store,
                train_store=None,
                dev=dev,
                precision=precision,
                quiet=quiet,
                iteration=subject.iteration,
                selection={"select": settings["select"], "tested": subject.tested},
                describe=describe,
                t0=t0,
            )
        result["evaluated_from"] = {
            "run": str(subject.run_dir) if subject.run_dir is not None else None,
            "trained": {k: settings[k] for k in ("way", "shot", "query", "episodes", "seed")},
            "result": subject.accuracy,
        }
        if folder is not None:
            write_evaluation(folder, result, res.per_episode, lock)
            lock = None  # released by write_evaluation
    finally:
        if lock is not None:
            lock.release()
    return Evaluation(
        accuracy=res.accuracy,
        ci95=res.ci95,
        ci95_method=res.ci95_method,
        episodes=res.episodes,
        way=result["way"],
        shot=result["shot"],
        query=result["query"],
        per_episode=list(res.per_episode),
        result=result,
        out=folder,
    )


def check_test_split(data: Mapping[str, Any]) -> dict[str, ArrayStore]:
    """Data given as objects to evaluate: a test ArrayStore (other splits are not read)."""
    if "test" not in data:
        raise SettingError(
            '{data} needs a "test" split to evaluate on (an ArrayStore or a Dataset; or give '
            "the test split itself)",
            "data",
        )
    return {"test": as_store("test", data["test"])}


def table(*runs: RunResult | Run | str | Path) -> str:
    """The markdown table ``fsbench table`` prints, of runs returned by ``train``/``load_run``
    or run folders (searched recursively): one row per setting, seeds averaged, published
    numbers beside them, a user's method marked."""
    from fsbench.tables import load_results, results_frame, to_markdown

    results: list[dict] = []
    for run in runs:
        if isinstance(run, RunResult | Run):
            results.append(run.result)
        else:
            found = load_results([Path(run)])
            if not found:
                raise SettingError(f"{{runs}}: no result.json under {run}", "runs")
            results.extend(found)
    if not results:
        raise SettingError("{runs}: give at least one run", "runs")
    return to_markdown(results_frame(results))
