"""One setting end to end: load the splits, train, evaluate, write result.json, log, curve."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from fsbench.data.store import ArrayStore
from fsbench.engine.device import (
    autocast,
    configure_backend,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from fsbench.engine.trainer import TEST_STREAM, make_generator, show_progress, train
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.presets import CLASSIFIER_METHODS, MDMNIST_DATASETS, published
from fsbench.results import (
    CHECKPOINT,
    CURVE,
    METRICS,
    RESULT,
    plot_curve,
    read_metrics,
    versions,
    write_json,
)

Loader = Callable[..., ArrayStore]


def _registry_loader() -> tuple[Loader, Callable[[str, str, ArrayStore], dict] | None]:
    """load_split and describe_split of the data layer."""
    from fsbench.data import describe_split, load_split

    return load_split, describe_split


def _basic_description(name: str, split: str, store: ArrayStore) -> dict:
    return {
        "name": name,
        "split": split,
        "examples": len(store),
        "classes": store.num_classes,
        "example_shape": list(store.example_shape),
        "dtype": str(store.data.dtype).replace("torch.", ""),
    }


def load_store(
    loader: Loader, name: str, split: str, *, data_root, device: torch.device, options: dict
) -> ArrayStore:
    """One split through the data layer; unexpected loader failures become one-line user errors."""
    try:
        return loader(name, split, data_root=data_root, device=str(device), **options)
    except FsbenchError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise FsbenchError(f"cannot load the {split} split of {name}: {msg}") from exc


def load_options(settings: dict) -> dict:
    """The data-layer options of a setting (num_image_per_class only for the mdmnist datasets)."""
    options = dict(settings.get("data_options") or {})
    if settings["dataset"] not in MDMNIST_DATASETS:
        options.pop("num_image_per_class", None)
    return options


def check_split(method, store: ArrayStore, dataset: str, split: str) -> None:
    """The episode shape must fit the split: turn the store's ValueError into a user error."""
    try:
        method.check(store, split)
    except ValueError as exc:
        raise FsbenchError(f"{dataset} {split} split: {exc}") from exc


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an earlier run in OUT unless --resume or --overwrite; touches nothing."""
    earlier = [p for p in (RESULT, CHECKPOINT) if (out / p).exists()]
    if earlier and not resume and not overwrite:
        raise FsbenchError(
            f"{out} already holds a run ({', '.join(earlier)}); pass --resume to continue it "
            "or --overwrite to start again"
        )


def prepare_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Create OUT (once every input has been checked) and clear an earlier run on --overwrite."""
    check_out_dir(out, resume, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite and not resume:
        for p in (RESULT, CHECKPOINT, METRICS, CURVE):
            (out / p).unlink(missing_ok=True)


def run_setting(
    settings: dict,
    out: Path,
    *,
    data_root: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    loader: Loader | None = None,
    describe: Callable[[str, str, ArrayStore], dict] | None = None,
) -> dict:
    """Train and evaluate one setting into ``out``; returns the result dict (also result.json)."""
    out = Path(out)
    dev = resolve_device(device)
    precision = resolve_precision(settings.get("precision", "auto"), dev)
    if loader is None:
        loader, describe = _registry_loader()
    describe = describe or _basic_description
    check_out_dir(out, resume, overwrite)
    threads = settings.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    configure_backend(dev)
    seed_everything(int(settings["seed"]))

    name, method_name = settings["dataset"], settings["method"]
    options = load_options(settings)
    t_start = time.perf_counter()
    train_store = load_store(
        loader, name, "train", data_root=data_root, device=dev, options=options
    )
    test_store = load_store(loader, name, "test", data_root=data_root, device=dev, options=options)
    val_store = None
    if int(settings.get("eval_every") or 0) > 0:
        val_store = load_store(
            loader, name, "val", data_root=data_root, device=dev, options=options
        )
    load_seconds = time.perf_counter() - t_start

    method = build_method(settings, train_store.example_shape, train_store.num_classes)
    method.to(dev)
    check_split(method, train_store, name, "train")
    check_split(method, test_store, name, "test")
    if val_store is not None:
        check_split(method, val_store, name, "val")

    # Only now, with every input checked, does OUT appear.
    prepare_out_dir(out, resume, overwrite)
    outcome = train(
        method,
        train_store,
        settings,
        out,
        device=dev,
        precision=precision,
        resume=resume,
        val_store=val_store,
        quiet=quiet,
    )

    t_eval = time.perf_counter()
    gen = make_generator(test_store.device, int(settings["seed"]) + TEST_STREAM)
    classifier = method_name in CLASSIFIER_METHODS
    total = len(test_store) if classifier else int(settings["episodes"])
    with (
        tqdm(
            total=total,
            desc=f"eval {method_name}",
            disable=not show_progress(quiet),
            dynamic_ncols=True,
        ) as bar,
        autocast(dev, precision),
    ):
        res = method.evaluate(test_store, gen, int(settings["episodes"]), progress=bar)
    eval_seconds = time.perf_counter() - t_eval

    way = test_store.num_classes if classifier else int(settings["way"])
    shot = None if classifier else int(settings["shot"])
    query = None if classifier else int(settings["query"])
    pub = published(method_name, name, way if not classifier else None, shot)
    result = {
        "method": method_name,
        "dataset": name,
        "way": way,
        "shot": shot,
        "query": query,
        "accuracy": res.accuracy,
        "ci95": res.ci95,
        "ci95_method": res.ci95_method,
        "episodes": res.episodes,
        "iterations": outcome.iteration,
        "seed": int(settings["seed"]),
        "device": str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        "precision": precision,
        "wall_seconds": round(time.perf_counter() - t_start, 3),
        "train_seconds": round(outcome.seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "resumed_from": outcome.resumed_from,
        "torch_threads": torch.get_num_threads(),
        "published_percent": pub,
        "preset_source": settings.get("preset_source"),
        "settings": {k: v for k, v in settings.items() if k != "preset_source"},
        "data": {
            "train": describe(name, "train", train_store),
            "test": describe(name, "test", test_store),
        },
        "versions": versions(),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if method_name in ("maml", "fomaml"):
        result["maml_exec"] = method.execution
        if method.execution_timings:
            result["maml_exec_seconds"] = method.execution_timings
    write_json(out / RESULT, result)
    title = f"{method_name} on {name}" + ("" if classifier else f", {way}-way {shot}-shot")
    plot_curve(read_metrics(out / METRICS), out / CURVE, title)
    return result
