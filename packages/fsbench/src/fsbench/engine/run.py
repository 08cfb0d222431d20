"""One setting end to end: load the splits, train, select, evaluate, write result.json, log, curve.

``execute`` is the engine of ``fsbench run`` and of ``fsbench.train``: with an OUT folder it
writes what the command line writes; without one nothing is written (checkpoints, the best model
and the metrics stay in memory). Either way the process is left as it was found (``run_scope``).
Errors name parameters (``SettingError``): the command line shows them as flags.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from fsbench.catalog import CLASSIFIER_METHODS, MDMNIST_BASED
from fsbench.data.listing import folder_listings
from fsbench.data.store import ArrayStore
from fsbench.engine import distributed, run_lock
from fsbench.engine.checkpoints import PREVIOUS
from fsbench.engine.device import autocast, resolve_device, resolve_precision, run_scope
from fsbench.engine.stop import RunStopped, StopRequest
from fsbench.engine.trainer import (
    TEST_STREAM,
    FolderRecord,
    MemoryRecord,
    RunRecord,
    TrainOutcome,
    as_record,
    load_checkpoint,
    make_generator,
    resume_checkpoint,
    show_progress,
    train,
)
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.methods.base import EvalResult, Method
from fsbench.methods.maml import MAML
from fsbench.methods.registry import record as user_method_record
from fsbench.presets import preset_for
from fsbench.published import published, published_source
from fsbench.resolve import deviations
from fsbench.results import (
    BEST,
    CHECKPOINT,
    CURVE,
    EPISODES,
    METRICS,
    RESULT,
    TENSORBOARD,
    DiskFullError,
    check_logs,
    disk_full_as_error,
    git_commit,
    log_result,
    machine,
    plot_curve,
    read_metrics,
    versions,
    write_episodes,
    write_json,
)
from fsbench.settings import SettingError, Settings, complete, differences

log = logging.getLogger("fsbench")
Loader = Callable[..., ArrayStore]
Describer = Callable[[str, str, ArrayStore], dict]
# builds the method of complete settings for the data's example shape and number of classes
Builder = Callable[[dict, tuple[int, ...], int], Method]


@dataclass
class RunOutcome:
    """Everything a run produced: result.json's dict, the trained method (tested weights and
    state loaded), the test scores, the metrics records, and where it was written (or None)."""

    result: dict
    method: Method
    evaluation: EvalResult
    history: list[dict] = field(default_factory=list)
    out: Path | None = None


def _registry_loader() -> tuple[Loader, Describer]:
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
    loader: Loader,
    name: str,
    split: str,
    *,
    data_root: str | Path | None,
    device: torch.device,
    options: dict,
) -> ArrayStore:
    """One split through the data layer; unexpected loader failures become one-line user errors."""
    try:
        store = loader(name, split, data_root=data_root, device=str(device), **options)
    except FsbenchError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise FsbenchError(f"cannot load the {split} split of {name}: {msg}") from exc
    return store


def summary(split: str, store: ArrayStore) -> str:
    """'train 64,000 examples of 64x64 in 64 classes' for the log."""
    shape = "x".join(str(d) for d in store.example_shape)
    return f"{split} {len(store):,} examples of {shape} in {store.num_classes:,} classes"


def load_options(settings: dict) -> dict:
    """The data-layer options of a setting (num_image_per_class only for the mdmnist datasets)."""
    options = dict(complete(settings)["data_options"])
    if settings["dataset"] not in MDMNIST_BASED:
        options.pop("num_image_per_class", None)
    return options


def check_split(method: Method, store: ArrayStore, dataset: str, split: str) -> None:
    """The episode shape must fit the split: turn the store's ValueError into a user error."""
    try:
        method.check(store, split)
    except ValueError as exc:
        raise FsbenchError(f"{dataset} {split} split: {exc}") from exc


def check_validation(store: ArrayStore, settings: dict, dataset: str) -> None:
    """The validation episodes (val_way, val_shot: trainer.validate's shape) must fit the val
    split before OUT exists, not at the first validation with half a run written."""
    if settings["md_episodes"]:  # Meta-Dataset's episodes take their way from the split
        return
    way = settings["val_way"] or settings["way"]
    shot = settings["val_shot"] or settings["train_shot"]
    try:
        store.check_episode(way, shot, settings["query"])
    except (ValueError, FsbenchError):  # its message names way/shot: say which episodes
        raise SettingError(
            f"{dataset} val split ({store.num_classes} classes, the smallest of "
            f"{store.min_class_size} images): validation episodes of {way}-way {shot}-shot "
            f"{settings['query']}-query do not fit; set {{val_way}} / {{val_shot}}, or "
            "{eval_every} 0",
            "val_way",
            "val_shot",
            "eval_every",
        ) from None


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an earlier run in OUT unless resume or overwrite; touches nothing."""
    earlier = [p for p in (RESULT, CHECKPOINT, PREVIOUS) if (out / p).exists()]
    if earlier and not resume and not overwrite:
        raise SettingError(
            f"{out} already holds a run ({', '.join(earlier)}); pass {{resume}} to continue it "
            "or {overwrite} to start again",
            "resume",
            "overwrite",
        )


def describe_differences(diff: dict[str, tuple], here: str, there: str) -> str:
    """'lr 0.01 here, 0.001 there; ...' for a one-line message (at most four settings)."""
    parts = [f"{k} {a!r} {here}, {b!r} {there}" for k, (a, b) in list(diff.items())[:4]]
    more = len(diff) - 4
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def check_resume(out: Path, settings: dict) -> None:
    """resume continues only the same run: the same settings, or a larger iterations."""
    path = resume_checkpoint(out)
    if path is None:
        return
    try:
        state = load_checkpoint(path)
    except FsbenchError as exc:  # damaged or foreign: which file, what is wrong, the ways on
        raise SettingError(f"{{resume}}: {exc}", "resume") from None
    except Exception as exc:  # anything else unreadable: still one line, never a traceback
        raise SettingError(
            f"{{resume}}: cannot read {path} ({type(exc).__name__}); pass {{overwrite}} to start "
            "again",
            "resume",
            "overwrite",
        ) from None
    saved = state.get("settings") or {}
    diff = differences(settings, saved)
    for length in ("iterations", "epochs"):  # a longer run continues the shorter one
        asked = diff.pop(length, None)
        if asked is not None and float(asked[0] or 0) < float(asked[1] or 0):
            diff[length] = asked
    if diff:
        raise SettingError(
            f"{{resume}}: {path} was trained with other settings ("
            + describe_differences(diff, "asked", "in the checkpoint")
            + "); use the same settings (a larger {iterations} or {epochs} continues it), or "
            "{overwrite}",
            "resume",
            "iterations",
            "epochs",
            "overwrite",
        )


def prepare_out_dir(
    out: Path, resume: bool, overwrite: bool, lock: run_lock.RunLock | None = None
) -> run_lock.RunLock:
    """Create and lock OUT (once every input has been checked), remove temporaries a killed run
    left, and clear an earlier run on --overwrite; returns the lock (``lock`` if already held)."""
    check_out_dir(out, resume, overwrite)
    with disk_full_as_error(out):
        out.mkdir(parents=True, exist_ok=True)
    lock = lock or run_lock.acquire(out)
    for tmp in out.glob(".*.tmp*"):  # ours alone now: no other writer can be mid-rename
        with contextlib.suppress(OSError):
            tmp.unlink()
    if overwrite and not resume:
        for p in (RESULT, CHECKPOINT, PREVIOUS, BEST, METRICS, CURVE, EPISODES):
            (out / p).unlink(missing_ok=True)
        shutil.rmtree(out / TENSORBOARD, ignore_errors=True)
    return lock


def lock_existing(out: Path) -> run_lock.RunLock | None:
    """The lock of OUT if it exists already (so a second writer is refused before anything is
    read or written there), else None (prepare_out_dir takes it once OUT is created)."""
    return run_lock.acquire(out) if Path(out).is_dir() else None


def resume_hint(out: Path) -> str:
    """What to do after a full disk: continue from the checkpoint kept, or start again."""
    kept = resume_checkpoint(out)
    if kept is None:
        return "then run the same command again"
    return f"{kept.name} is intact: then run the same command with --resume to continue"


def tested_state(out: Path | RunRecord, settings: dict) -> tuple[dict, dict, str]:
    """The model to test: its weights, the method's own state saved with them (e.g. Magnet's
    clusters and soft-vote variance), and a sentence saying which: best on validation, or last.

    ``out``: the run's folder, or its record (a run kept in memory)."""
    record = as_record(out)
    last = record.last()
    state = record.best() if settings["select"] == "best-val" else None
    if state is not None:
        why = f"best validation accuracy (iteration {state['iteration']})"
        # a best.pt written before it kept the method's state: the last state, as then
        return state["model"], state.get("method", last.get("method")) or {}, why
    why = "last iteration"
    if settings["select"] == "best-val":
        why += " (no validation ran before the end, so nothing to select from)"
    return last["model"], last.get("method") or {}, why


def load_tested(method: Method, out: Path | RunRecord, settings: dict) -> str:
    """Put the tested model (weights and method state) of the run in ``out`` into ``method``."""
    weights, state, why = tested_state(out, settings)
    method.model.load_state_dict(weights)
    method.load_extra_state(state)
    return why


# The settings that define a backbone's architecture: MTL takes them from its pre-trained run.
BACKBONE_KEYS = ("backbone", "widths", "hidden", "norm", "norm_affine", "pool", "readout", "init")


def load_pretrained(settings: dict) -> tuple[dict, dict, list[int]]:
    """(settings with the backbone recorded in the run in settings['pretrained'] (its
    architecture keys replace the preset's), its tested weights, its input shape); a one-line
    FsbenchError for a folder that is not a finished pretrain run."""
    folder = Path(settings["pretrained"]).expanduser()
    if not (folder / RESULT).is_file() or not (folder / CHECKPOINT).is_file():
        raise SettingError(
            f"{{pretrained}} {folder}: not a finished fsbench pretrain run (it needs {RESULT} "
            f"and {CHECKPOINT}; write one with fsbench pretrain DATASET --out {folder})",
            "pretrained",
        )
    from fsbench.results import read_json

    done = read_json(folder / RESULT)
    recorded = done.get("settings") or {}  # the pretrain run's settings as result.json holds them
    if done.get("method") != "pretrain":
        raise SettingError(
            f"{{pretrained}} {folder} holds a {done.get('method')} run, not a pretrain run",
            "pretrained",
        )
    weights, _, _ = tested_state(folder, complete(recorded))
    merged = {**settings, **{k: recorded[k] for k in BACKBONE_KEYS if k in recorded}}
    shape = list(done.get("data", {}).get("train", {}).get("example_shape") or [])
    return merged, weights, shape


def describe_device(dev: torch.device) -> str:
    return str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})"


def test_episodes(
    method: Method,
    store: ArrayStore,
    settings: dict,
    dev: torch.device,
    precision: str,
    quiet: bool,
    *,
    way: int | None = None,
    shot: int | None = None,
    query: int | None = None,
):
    """The test evaluation of a setting: its own episode stream, seeded apart from training."""
    gen = make_generator(store.device, int(settings["seed"]) + TEST_STREAM)
    classifier = settings["method"] in CLASSIFIER_METHODS
    total = len(store) if classifier else int(settings["episodes"])
    with (
        tqdm(
            total=total,
            desc=f"eval {settings['method']}",
            disable=not show_progress(quiet),
            dynamic_ncols=True,
        ) as bar,
        autocast(dev, precision),
    ):
        return method.evaluate(
            store,
            gen,
            int(settings["episodes"]),
            progress=bar,
            way=way,
            shot=shot,
            query=query,
            **distributed.eval_share(method),
        )


def build_result(
    settings: dict,
    res,
    *,
    train_store: ArrayStore | None,
    test_store: ArrayStore,
    describe: Describer,
    dev: torch.device,
    precision: str,
    iterations: int,
    selection: dict,
    timings: dict,
) -> dict:
    """The result.json of a run (or of an evaluation of a trained run; ``train_store`` None: a
    method evaluated without its training split, which is then not described)."""
    name, method_name = settings["dataset"], settings["method"]
    classifier = method_name in CLASSIFIER_METHODS
    way = test_store.num_classes if classifier else int(settings["way"])
    shot = None if classifier else int(settings["shot"])
    query = None if classifier else int(settings["query"])
    data = {"test": describe(name, "test", test_store)}
    if train_store is not None:
        data = {"train": describe(name, settings["train_split"], train_store), **data}
    folders = folder_listings(settings["data_options"] or {})
    if folders:
        data["folders"] = folders  # what fsbench rerun checks before it runs again
    comparable = test_store.meta.get("comparable", True)
    pub = published(method_name, name, None if classifier else way, shot) if comparable else None
    result = {
        "method": method_name,
        "dataset": name,
        "dataset_label": test_store.meta.get("label", name),
        "way": way,
        "shot": shot,
        "query": query,
        "accuracy": res.accuracy,
        "ci95": res.ci95,
        "ci95_method": res.ci95_method,
        "episodes": res.episodes,
        "iterations": iterations,
        "seed": int(settings["seed"]),
        "device": describe_device(dev),
        "precision": precision,
        **timings,
        "torch_threads": torch.get_num_threads(),
        "published_percent": pub,
        "published_source": published_source(method_name, name) if pub is not None else None,
        "preset_source": Settings.from_dict(settings).preset_source,
        "protocol_notes": list(preset_for(method_name, name).notes),
        "deviations": deviations(settings),
        "selection": selection,
        "settings": {k: v for k, v in settings.items() if k != "preset_source"},
        "data": data,
        "versions": versions(),
        "machine": machine(),
        "git": git_commit(),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    result.update(user_method_record(method_name))  # {} for a built-in method
    if not comparable:
        result["not_comparable"] = test_store.meta.get(
            "not_comparable", "the data differ from the published protocol's"
        )
    if res.per_episode:
        result["per_episode_file"] = EPISODES
    return result


def write_run_files(out: Path, result: dict, per_episode: list[float], curve: bool) -> None:
    """result.json, the per-episode accuracies and (for a trained run) the curve."""
    if per_episode:
        write_episodes(out / EPISODES, per_episode)
    write_json(out / RESULT, result)
    if curve:
        title = f"{result['method']} on {result['dataset_label']}"
        if result["shot"] is not None:
            title += f", {result['way']}-way {result['shot']}-shot"
        plot_curve(read_metrics(out / METRICS), out / CURVE, title)


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
    describe: Describer | None = None,
    time_limit: float | None = None,
    started: float | None = None,
) -> dict:
    """Train and evaluate one setting into ``out``; returns the result dict (also result.json).

    Under torchrun (WORLD_SIZE > 1) every rank calls this: they train data-parallel
    (engine/distributed.py), only rank 0 writes OUT, and world_size becomes a setting.
    Rank 0 holds OUT's lock throughout (a second writer is refused). With ``time_limit``
    (minutes after ``started``, a ``time.time()``; default now), or once a stop signal arrives
    (``engine.stop``), training stops at an iteration boundary with a checkpoint and
    ``RunStopped`` is raised (no result.json).
    """
    return execute(
        settings,
        Path(out),
        data_root=data_root,
        device=device,
        resume=resume,
        overwrite=overwrite,
        quiet=quiet,
        loader=loader,
        describe=describe,
        time_limit=time_limit,
        started=started,
    ).result


def check_in_memory(settings: dict, resume: bool, time_limit: float | None) -> None:
    """A run kept in memory (no ``out``) cannot continue an earlier one, stop to be continued
    later, or write log files: say so before anything starts."""
    if resume:
        raise SettingError(
            "{resume} continues a run in a folder: give {out} as well", "resume", "out"
        )
    if time_limit is not None:
        raise SettingError(
            "{time_limit} stops a run to be continued later ({resume}), which needs {out}: give "
            "{out} as well",
            "time_limit",
            "resume",
            "out",
        )
    if settings["log"] is not None:
        raise SettingError(
            f"{{log}} {settings['log']} writes files into the run's folder: give {{out}} as well",
            "log",
            "out",
        )


def execute(
    settings: dict,
    out: Path | None,
    *,
    data_root: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    loader: Loader | None = None,
    describe: Describer | None = None,
    time_limit: float | None = None,
    started: float | None = None,
    build: Builder | None = None,
) -> RunOutcome:
    """``run_setting`` with everything it produced; ``out`` None keeps the run in memory and
    writes nothing. ``build``: how the method is made from the complete settings and the data
    (default ``build_method``; the API passes a user's method rebuilt for the data)."""
    settings = complete(settings)
    if out is None:
        check_in_memory(settings, resume, time_limit)
    stop = StopRequest.from_time_limit(time_limit, started)
    writes = out is not None and (distributed.env_world_size() <= 1 or _env_rank0())
    lock = lock_existing(out) if writes and out is not None else None
    try:
        return _run_setting(
            settings,
            out,
            lock,
            stop,
            data_root=data_root,
            device=device,
            resume=resume,
            overwrite=overwrite,
            quiet=quiet,
            loader=loader,
            describe=describe,
            build=build or build_method,
        )
    finally:
        if lock is not None:
            lock.release()


def _env_rank0() -> bool:
    """Rank 0 under torchrun (before the process group exists): the one rank that writes OUT."""
    import os

    return os.environ.get("RANK", "0") == "0"


def _run_setting(
    settings: dict,
    out: Path | None,
    lock: run_lock.RunLock | None,
    stop: StopRequest,
    *,
    data_root: str | Path | None,
    device: str,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    loader: Loader | None,
    describe: Describer | None,
    build: Builder,
) -> RunOutcome:
    """execute with OUT's lock taken (if OUT existed) and the stop request made."""
    dev = distributed.init_from_env(resolve_device(device))
    world = distributed.world_size()
    if world > 1:  # it changes the sampled tasks (ProtoNets: the episodes per step)
        settings = {**settings, "world_size": world}
        quiet = quiet or not distributed.is_main()
    precision = resolve_precision(settings["precision"], dev)
    if loader is None:
        loader, describe = _registry_loader()
    describe = describe or _basic_description
    if out is not None:
        check_out_dir(out, resume, overwrite)
    check_logs(settings)
    pretrained = None
    if settings["pretrained"]:
        settings, pretrained, pretrained_shape = load_pretrained(settings)
    if resume and out is not None:
        check_resume(out, settings)
    with run_scope(dev, int(settings["seed"]), settings["threads"]):
        name, method_name = settings["dataset"], settings["method"]
        options = load_options(settings)
        t_start = time.perf_counter()
        train_split = settings["train_split"]
        train_store = load_store(
            loader, name, train_split, data_root=data_root, device=dev, options=options
        )
        test_store = load_store(
            loader, name, "test", data_root=data_root, device=dev, options=options
        )
        val_store = None
        if int(settings["eval_every"]) > 0:
            val_store = load_store(
                loader, name, "val", data_root=data_root, device=dev, options=options
            )
        load_seconds = time.perf_counter() - t_start

        if pretrained is not None and list(train_store.example_shape) != pretrained_shape:
            raise SettingError(
                f"{{pretrained}} {settings['pretrained']} was trained on examples of shape "
                f"{pretrained_shape}, but {name} has {list(train_store.example_shape)}",
                "pretrained",
            )
        try:
            method = build(settings, train_store.example_shape, train_store.num_classes)
        except ValueError as exc:  # e.g. images too small for the network
            raise SettingError(
                f"{method_name} on {name}: {exc}; make the images larger ({{image_size}} or "
                "{resize})",
                "image_size",
                "resize",
            ) from None
        if world > 1:
            method.split_over_ranks(world)
        if pretrained is not None and not (
            resume and out is not None and (out / CHECKPOINT).exists()
        ):
            try:
                getattr(method, "load_pretrained")(pretrained)  # noqa: B009 (MTL's; refused elsewhere)
            except ValueError as exc:
                raise SettingError(
                    f"{{pretrained}} {settings['pretrained']}: {exc}", "pretrained"
                ) from None
        method.to(dev)
        check_split(method, train_store, name, train_split)
        check_split(method, test_store, name, "test")
        if val_store is not None:
            check_split(method, val_store, name, "val")
            if settings["method"] not in CLASSIFIER_METHODS:
                check_validation(val_store, settings, name)
        if not quiet:
            stores = [(train_split, train_store), ("val", val_store), ("test", test_store)]
            label = test_store.meta.get("label", name)
            log.info(
                "%s: %s",
                label,
                "; ".join(summary(split, st) for split, st in stores if st is not None),
            )
            log.info(
                "%s: %s iterations on %s, %d torch thread(s), %s",
                method_name,
                f"{method.iterations(train_store):,}",
                describe_device(dev),
                torch.get_num_threads(),
                precision,
            )

        # Only now, with every input checked, does OUT appear.
        record: RunRecord = MemoryRecord()
        if out is not None:
            record = FolderRecord(out)
            if distributed.is_main():
                lock = prepare_out_dir(out, resume, overwrite, lock)
        try:
            return _train_and_test(
                method,
                settings,
                out,
                record,
                stop,
                stores=(train_store, val_store, test_store),
                describe=describe,
                dev=dev,
                precision=precision,
                resume=resume,
                quiet=quiet,
                world=world,
                t_start=t_start,
                load_seconds=load_seconds,
            )
        except DiskFullError as exc:
            hint = resume_hint(out) if out is not None else "free some space"
            raise DiskFullError(f"{exc}; {hint}") from None
        finally:
            if lock is not None:
                lock.release()


def _train_and_test(
    method: Method,
    settings: dict,
    out: Path | None,
    record: RunRecord,
    stop: StopRequest,
    *,
    stores: tuple[ArrayStore, ArrayStore | None, ArrayStore],
    describe: Describer,
    dev: torch.device,
    precision: str,
    resume: bool,
    quiet: bool,
    world: int,
    t_start: float,
    load_seconds: float,
) -> RunOutcome:
    """Train (or continue), test the selected weights, write result.json and the curve (when
    the run has a folder)."""
    train_store, val_store, test_store = stores
    method_name = settings["method"]
    outcome: TrainOutcome = train(
        method,
        train_store,
        settings,
        record,
        device=dev,
        precision=precision,
        resume=resume,
        val_store=val_store,
        quiet=quiet,
        stop=stop,
    )
    halt = distributed.broadcast_object(stop.before_start())  # rank 0 decides for all
    if halt is not None:  # asked to stop after the last iteration: the test runs on --resume
        reason, signum = halt
        raise RunStopped(
            outcome.iteration,
            outcome.iteration,
            reason,
            signum,
            hint="training is done; resume with {resume} to run the test evaluation",
        )
    why, state = None, None
    if distributed.is_main():
        weights, state, why = tested_state(record, settings)
        method.model.load_state_dict(weights)
    why, state = distributed.broadcast_object((why, state))
    method.load_extra_state(state)  # e.g. Magnet's soft-vote variance of the tested model
    distributed.broadcast_module(method.model)  # rank 0's tested weights on every rank
    selection = {
        "select": settings["select"],
        "tested": why,
        "tested_iteration": outcome.best_iteration if why.startswith("best") else outcome.iteration,
        "best_val_accuracy": outcome.best_val_accuracy,
        "validations": outcome.validations,
    }

    t_eval = time.perf_counter()
    res = test_episodes(method, test_store, settings, dev, precision, quiet)
    timings = {
        "wall_seconds": round(time.perf_counter() - t_start, 3),
        "train_seconds": round(outcome.seconds, 3),
        "eval_seconds": round(time.perf_counter() - t_eval, 3),
        "load_seconds": round(load_seconds, 3),
        "resumed_from": outcome.resumed_from,
    }
    result = build_result(
        settings,
        res,
        train_store=train_store,
        test_store=test_store,
        describe=describe,
        dev=dev,
        precision=precision,
        iterations=outcome.iteration,
        selection=selection,
        timings=timings,
    )
    if world > 1:
        result["world_size"] = world
    result.update(method.summary())
    if method_name in ("maml", "fomaml") and isinstance(method, MAML):
        result["maml_exec"] = method.execution
        if method.execution_timings:
            result["maml_exec_seconds"] = method.execution_timings
    if out is not None and distributed.is_main():
        write_run_files(out, result, res.per_episode, curve=True)
        log_result(out, result)
    return RunOutcome(result, method, res, record.history(), out)
