"""Test a trained run on other episode settings without retraining (``fsbench eval``).

The run's own settings, tested weights (best on validation, or the last) and test-episode stream
are reused, so evaluating with the run's own way/shot/query/episodes and seed reproduces its
result exactly; anything else is a new result.json, marked as evaluated from that run.
``score_method`` is the part the Python API shares (``fsbench.evaluate``): a trained method on a
test split, nothing written unless asked.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from fsbench.catalog import CLASSIFIER_METHODS, MAML_METHODS
from fsbench.data.store import ArrayStore
from fsbench.data.transform import InputTransform
from fsbench.engine import run_lock
from fsbench.engine.device import resolve_device, resolve_precision, run_scope
from fsbench.engine.run import (
    Describer,
    Loader,
    _basic_description,
    _registry_loader,
    build_result,
    check_split,
    load_options,
    load_store,
    load_tested,
    lock_existing,
    test_episodes,
    write_run_files,
)
from fsbench.engine.trainer import load_checkpoint
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.methods.base import EvalResult, Method
from fsbench.results import CHECKPOINT, RESULT, disk_full_as_error, read_json
from fsbench.settings import EXECUTION_DATA_OPTIONS, SettingError, complete


def trained_settings(run_dir: Path) -> tuple[dict, int]:
    """The settings a run was trained with and the iteration its checkpoint reached."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FsbenchError(
            f"{run_dir} holds no {CHECKPOINT}: not an fsbench run folder (fsbench run --out DIR "
            "writes one)"
        )
    try:
        state = load_checkpoint(path)
    except FsbenchError:  # damaged or foreign: which file, what is wrong, the ways on
        raise
    except Exception as exc:
        raise FsbenchError(f"cannot read {path} ({type(exc).__name__})") from None
    settings = state.get("settings")
    if not isinstance(settings, dict) or "method" not in settings:
        raise FsbenchError(f"{path} holds no settings: not written by fsbench")
    iteration = int(state.get("iteration", 0))
    settings = complete(settings)
    total = int(state.get("total_iterations", settings["iterations"]))
    if iteration < total:
        raise FsbenchError(
            f"{run_dir} stopped at iteration {iteration} of {total}; finish it first "
            "(fsbench run ... --resume)"
        )
    return dict(settings), iteration


def recorded_transform(run_dir: Path, checkpoint: dict) -> dict | None:
    """The input transform a run recorded (checkpoint, else result.json), None for older runs."""
    recorded = checkpoint.get("input_transform")
    if recorded is None and (Path(run_dir) / RESULT).is_file():
        facts = (read_json(Path(run_dir) / RESULT).get("data") or {}).get("train") or {}
        recorded = facts.get("transform")
    return recorded


def check_transform(run_dir: Path, checkpoint: dict, store: ArrayStore) -> None:
    """The test images must be made as the run's training images were (its recorded input
    transform, ``data/transform.py``); runs written before the record are not checked."""
    check_recorded_transform(run_dir, recorded_transform(run_dir, checkpoint), store)


def check_recorded_transform(run_dir: Path | str, recorded: dict | None, store: ArrayStore) -> None:
    """``check_transform`` given the recorded transform itself."""
    now = store.meta.get("transform")
    if recorded is None or now == recorded:
        return
    was = InputTransform.from_dict(recorded).describe()
    made = InputTransform.from_dict(now).describe() if now else "no recorded transform"
    raise FsbenchError(
        f"{run_dir} was trained on images made as: {was}; its dataset now loads them as: {made} "
        "(did the dataset folder change?); evaluate on data made the run's way"
    )


def check_request(settings: dict, way: int | None, shot: int | None, query: int | None) -> None:
    """What a trained method cannot be evaluated on: episodes for a classifier, another way for
    MAML (one output per class)."""
    method_name = settings["method"]
    if method_name in CLASSIFIER_METHODS and (way or shot or query):
        raise SettingError(
            f"{method_name} is scored on the whole test split: {{way}}/{{shot}}/{{query}} do not "
            "apply",
            "way",
            "shot",
            "query",
        )
    if method_name in MAML_METHODS and way not in (None, settings["way"]):
        raise SettingError(
            f"{{way}} {way}: this MAML model was trained {settings['way']}-way and has one "
            f"output per class; evaluate it with {{way}} {settings['way']}",
            "way",
        )


def check_result_free(out: Path, overwrite: bool) -> None:
    """An earlier evaluation in ``out`` is replaced only with overwrite."""
    if (out / RESULT).exists() and not overwrite:
        raise SettingError(
            f"{out} already holds a {RESULT}; pass {{overwrite}} to replace it", "overwrite"
        )


def eval_settings(
    settings: dict,
    *,
    way: int | None = None,
    shot: int | None = None,
    query: int | None = None,
    episodes: int | None = None,
    seed: int | None = None,
) -> dict:
    """The run's settings with the evaluation's own way/shot/query/episodes/seed (train_* keep
    the training values: result.json then says exactly what was trained and tested)."""
    asked = {"way": way, "shot": shot, "query": query, "episodes": episodes, "seed": seed}
    return {**settings, **{k: v for k, v in asked.items() if v is not None}}


def score_method(
    method: Method,
    new: dict,
    test_store: ArrayStore,
    *,
    train_store: ArrayStore | None,
    dev: torch.device,
    precision: str,
    quiet: bool,
    iteration: int,
    selection: dict,
    describe: Describer,
    t0: float,
) -> tuple[dict, EvalResult]:
    """Test a trained ``method`` on the episodes of ``new`` (eval_settings) drawn from
    ``test_store``: its result.json dict and the scores. Call inside ``run_scope``."""
    episodic = new["method"] not in CLASSIFIER_METHODS
    if episodic and new["md_episodes"]:  # Meta-Dataset's episodes: the sampler checks the split
        check_split(method, test_store, new["dataset"], "test")
    elif episodic:
        test_store.check_episode(new["way"], new["shot"], new["query"])
    res = test_episodes(
        method,
        test_store,
        new,
        dev,
        precision,
        quiet,
        way=new["way"] if episodic else None,
        shot=new["shot"] if episodic else None,
        query=new["query"] if episodic else None,
    )
    timings = {"wall_seconds": round(time.perf_counter() - t0, 3), "train_seconds": 0.0}
    result = build_result(
        new,
        res,
        train_store=train_store,
        test_store=test_store,
        describe=describe,
        dev=dev,
        precision=precision,
        iterations=iteration,
        selection=selection,
        timings=timings,
    )
    return result, res


def write_evaluation(
    out: Path, result: dict, per_episode: list[float], lock: run_lock.RunLock | None = None
) -> None:
    """result.json and the per-episode scores of an evaluation into ``out``, under its lock."""
    with disk_full_as_error(out):
        out.mkdir(parents=True, exist_ok=True)
    lock = lock or run_lock.acquire(out)
    try:
        write_run_files(out, result, per_episode, curve=False)
    finally:
        lock.release()


def evaluate_run(
    run_dir: Path,
    out: Path,
    *,
    way: int | None = None,
    shot: int | None = None,
    query: int | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    data_root: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    quiet: bool = False,
    loader: Loader | None = None,
    describe: Describer | None = None,
    test_options: dict | None = None,
) -> dict:
    """Evaluate the trained run in ``run_dir`` on new test settings; result.json into ``out``.

    ``test_options`` replace data options of the test split only (Meta-Dataset's test source:
    ``{"sources": "omniglot"}``), or of every split loaded where they only say how the data is
    read (``md_read``); the result records them in its settings' data_options.
    ``out`` is locked while this runs (a second writer there is refused with one line).
    """
    run_dir, out = Path(run_dir), Path(out)
    settings, iteration = trained_settings(run_dir)
    lock = lock_existing(out)
    try:
        return _evaluate(
            run_dir,
            out,
            settings,
            iteration,
            lock,
            way=way,
            shot=shot,
            query=query,
            episodes=episodes,
            seed=seed,
            data_root=data_root,
            device=device,
            overwrite=overwrite,
            quiet=quiet,
            loader=loader,
            describe=describe,
            test_options=test_options or {},
        )
    finally:
        if lock is not None:
            lock.release()


def _evaluate(
    run_dir: Path,
    out: Path,
    settings: dict,
    iteration: int,
    lock: run_lock.RunLock | None,
    *,
    way: int | None,
    shot: int | None,
    query: int | None,
    episodes: int | None,
    seed: int | None,
    data_root: str | Path | None,
    device: str,
    overwrite: bool,
    quiet: bool,
    loader: Loader | None,
    describe: Describer | None,
    test_options: dict,
) -> dict:
    """evaluate_run once ``out``'s lock is held (or ``out`` does not exist yet)."""
    check_result_free(out, overwrite)
    check_request(settings, way, shot, query)
    new = eval_settings(settings, way=way, shot=shot, query=query, episodes=episodes, seed=seed)
    if test_options:  # the test split's own data options (Meta-Dataset: one test source)
        new["data_options"] = {**settings["data_options"], **test_options}
    dev = resolve_device(device)
    precision = resolve_precision(settings["precision"], dev)
    if loader is None:
        loader, describe = _registry_loader()
    describe = describe or _basic_description
    with run_scope(dev, seed=None):
        t0 = time.perf_counter()
        name = settings["dataset"]
        # how the data is read (never what it is, e.g. --md-read) holds for every split loaded
        reading = {k: v for k, v in test_options.items() if k in EXECUTION_DATA_OPTIONS}
        options = {**load_options(settings), **reading}
        train_split = settings["train_split"]
        train_store = load_store(
            loader, name, train_split, data_root=data_root, device=dev, options=options
        )
        test_store = load_store(
            loader,
            name,
            "test",
            data_root=data_root,
            device=dev,
            options={**options, **test_options},
        )
        torch.manual_seed(int(settings["seed"]))
        method = build_method(settings, train_store.example_shape, train_store.num_classes)
        method.to(dev)
        # the method's own state (e.g. Magnet's soft-vote variance) is part of the tested model
        why = load_tested(method, run_dir, settings)
        check_transform(run_dir, load_checkpoint(Path(run_dir) / CHECKPOINT), test_store)
        result, res = score_method(
            method,
            new,
            test_store,
            train_store=train_store,
            dev=dev,
            precision=precision,
            quiet=quiet,
            iteration=iteration,
            selection={"select": settings["select"], "tested": why},
            describe=describe,
            t0=t0,
        )
    earlier = run_dir / RESULT
    result["evaluated_from"] = {
        "run": str(run_dir),
        "trained": {k: settings[k] for k in ("way", "shot", "query", "episodes", "seed")},
        "result": read_json(earlier).get("accuracy") if earlier.is_file() else None,
    }
    write_evaluation(out, result, res.per_episode, lock)
    return result
