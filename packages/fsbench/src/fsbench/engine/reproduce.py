"""Plan and run every cell (x seed) of a source table, never showing a run of other settings.

Each cell's folder is checked against the settings asked for before anything runs:

- a finished cell whose recorded settings are the same is kept; with other settings (a smoke run
  with ``--iterations 5`` where the full preset is asked for, say) it is refused with one line,
  unless ``--overwrite`` re-runs it;
- an interrupted cell (a checkpoint, no result) with the same settings is resumed;
- cells that differ only in what the test evaluation reads (ProtoNets' test way and shot) share
  one training: the first trains, the others are evaluated from it (``fsbench eval``);
- a cell folder another process holds (its lock) is refused before anything runs.

``with_user_methods`` adds a user's methods to a table (``fsbench reproduce TABLE --with
NAME``): a row of cells under the table's protocol (its datasets, way/shot, queries, test
episodes, data options, seeds and --quick values), each marked as a user method.

A stop signal or ``time_limit`` stops the running cells at an iteration boundary with their
checkpoints written (``RunStopped``); the same command later resumes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fsbench.catalog import BUILTIN_METHODS, CLASSIFIER_METHODS, IMAGE_DATASETS, USER_DATASETS
from fsbench.engine import run_lock
from fsbench.engine.evaluate import evaluate_run
from fsbench.engine.parallel import CellJob, prepare_data, run_jobs
from fsbench.engine.run import describe_differences
from fsbench.engine.stop import RunStopped, StopRequest
from fsbench.engine.trainer import load_checkpoint
from fsbench.errors import FsbenchError
from fsbench.methods.registry import method_class
from fsbench.resolve import resolve_settings
from fsbench.results import CHECKPOINT, RESULT, read_json
from fsbench.settings import DATA_SETTINGS, SPECS, differences, semantic
from fsbench.table_specs import PRETRAINED_IN_TABLE, Cell, TableSpec


@dataclass
class PlannedCell:
    """One cell and seed: its settings, its folder, and what to do there."""

    cell: Cell
    seed: int
    settings: dict
    out: Path
    action: str  # "keep", "train", "resume" or "eval"
    trained_in: Path | None = None  # for "eval": the folder of the shared training
    needs: Path | None = None  # a training that must finish first (MTL: its pre-training)
    result: dict | None = None

    @property
    def label(self) -> str:
        return f"[{self.cell.name} seed {self.seed}]"


def cell_settings(
    spec: TableSpec,
    cell: Cell,
    seed: int,
    quick: bool,
    overrides: dict,
    jobs: int,
    progress: bool = False,
    dataset_dir: str | Path | None = None,
    data_options: dict | None = None,
) -> dict:
    """The settings of one cell: the preset, --quick, the cell's own values, then the flags.

    Data options merge layer by layer; ``dataset_dir`` is the folder of every cell that reads the
    user's data (Meta-Dataset's records, an image folder), recorded as ``run --dataset-dir`` is;
    ``data_options`` (e.g. Meta-Dataset's sources) go to every cell whose dataset takes them.
    """
    given: dict = {}
    data: dict = {}
    if quick:
        given.update({k: v for k, v in spec.quick_overrides.items() if k != "data_options"})
        given.update(spec.quick_by_method.get(cell.method, {}))
        data.update(spec.quick_overrides.get("data_options", {}))
        data.update(spec.quick_by_dataset.get(cell.dataset, {}))
    given.update(cell.overrides)
    data.update(given.pop("data_options", None) or {})
    given.update({k: v for k, v in overrides.items() if v is not None})
    if cell.method not in BUILTIN_METHODS:  # a user's row: the --quick values it can take
        given = {k: v for k, v in given.items() if _applies(k, cell.method)}
    if dataset_dir is not None and cell.dataset in USER_DATASETS:
        data["path"] = str(dataset_dir)
    for key, value in (data_options or {}).items():
        if cell.dataset in (DATA_SETTINGS[key][1].datasets or ()):
            data[key] = value
    given["data_options"] = data
    if cell.method == "pretrain":
        given.pop("iterations", None)  # pre-training counts epochs (--iterations is for the rest)
    given["seed"] = seed
    settings = resolve_settings(cell.method, cell.dataset, given)
    if jobs > 1 and not settings["threads"]:
        settings["threads"] = 1  # N processes x torch's default threads oversubscribe
    if cell.dataset in IMAGE_DATASETS:
        settings["data_options"].setdefault("progress", progress)
    return settings


def _applies(key: str, method: str) -> bool:
    """Whether a setting applies to ``method`` (a setting of some built-in methods does not)."""
    methods = SPECS[key][1].methods if key in SPECS else None
    return methods is None or method in methods


# What a user's cell keeps of the built-in cell it sits beside: the test protocol and the data.
PROTOCOL_KEYS = ("way", "shot", "query", "train_query", "episodes", "data_options")


def with_user_methods(spec: TableSpec, names: Sequence[str]) -> TableSpec:
    """``spec`` with a row of cells for each user method of ``names``: one per distinct dataset,
    column and protocol (PROTOCOL_KEYS) of its cells; the method's own preset gives the rest."""
    from fsbench.methods.registry import user_method
    from fsbench.tables import USER_MARK

    cells = list(spec.cells)
    for name in dict.fromkeys(names):
        if name in BUILTIN_METHODS:
            raise FsbenchError(f"--with takes a user's method; {name} is built in")
        user_method(name)  # one line for an unknown name or a broken entry point
        seen: set[str] = set()
        for cell in spec.cells:
            if cell.method in CLASSIFIER_METHODS or cell.method == "pretrain":
                continue
            own = {k: v for k, v in cell.overrides.items() if k in PROTOCOL_KEYS}
            key = json.dumps([cell.dataset, cell.column, own], sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            label = name + USER_MARK
            row = label if spec.rows_are == "method" else f"{cell.row}, {label}"
            mine = Cell(name, cell.dataset, row, cell.column, own)
            if any(c.name == mine.name for c in cells):  # same way/shot, another protocol
                mine = replace(mine, tag=f"-{len(seen)}")
            cells.append(mine)
        if not seen:
            raise FsbenchError(
                f"--with: table {spec.name} has no episodic cells for {name} to sit beside"
            )
    return replace(spec, cells=tuple(cells))


def training_key(settings: dict) -> str:
    """What a training depends on: the settings without those only the test evaluation reads."""
    only_eval = set(method_class(settings["method"]).eval_settings)
    kept = {k: v for k, v in semantic(settings).items() if k not in only_eval}
    return json.dumps(kept, sort_keys=True, default=str)


def _existing(out: Path, settings: dict, overwrite: bool, label: str) -> tuple[str, dict | None]:
    """keep / resume / train for a cell folder, or FsbenchError for a run of other settings."""
    if out.is_dir():
        run_lock.check_free(out)
    if overwrite:
        return "train", None
    hint = "pass --overwrite to re-run it, or --out for another folder"
    if (out / RESULT).is_file():
        earlier = read_json(out / RESULT)
        diff = differences(settings, earlier.get("settings") or {})
        if diff:
            raise FsbenchError(
                f"{label} {out} holds a run of other settings ("
                + describe_differences(diff, "asked", "there")
                + f"); {hint}"
            )
        return "keep", earlier
    if (out / CHECKPOINT).is_file():
        try:
            saved = load_checkpoint(out / CHECKPOINT).get("settings") or {}
        except FsbenchError as exc:  # damaged or foreign: which file, what is wrong, the ways on
            raise FsbenchError(f"{label} {exc}") from None
        except Exception:
            raise FsbenchError(f"{label} cannot read {out / CHECKPOINT}; {hint}") from None
        diff = differences(settings, saved)
        if diff:
            raise FsbenchError(
                f"{label} {out} holds an unfinished run of other settings ("
                + describe_differences(diff, "asked", "there")
                + f"); {hint}"
            )
        return "resume", None
    return "train", None


def plan_table(
    spec: TableSpec,
    out: Path,
    *,
    quick: bool = False,
    seeds: tuple[int, ...] | None = None,
    overrides: dict | None = None,
    overwrite: bool = False,
    jobs: int = 1,
    progress: bool = False,
    dataset_dir: str | Path | None = None,
    data_options: dict | None = None,
) -> list[PlannedCell]:
    """Every cell x seed with its action; refuses (FsbenchError) before anything runs.

    A cell with ``test_data`` (one Meta-Dataset test source) is an evaluation of the training
    of its settings (the table's cell without ``test_data``), with those data options; with
    ``data_options["sources"]`` (the user's Meta-Dataset sources) the cells of other test
    sources are left out.
    """
    seeds = seeds or (spec.quick_seeds if quick else spec.seeds)
    chosen = None
    user_sources = (data_options or {}).get("sources")
    if user_sources:
        from fsbench.data.metadataset import parse_sources

        chosen = set(parse_sources(user_sources, "test"))  # checks the names
    if jobs > 1:
        from fsbench.methods.registry import find_user_method

        for cell in spec.cells:
            found = find_user_method(cell.method) if cell.method not in BUILTIN_METHODS else None
            if found is not None and found.origin == "register_method":
                raise FsbenchError(
                    f"method {cell.method} was registered by a call in this process, which the "
                    "--jobs worker processes do not know: use jobs 1, or register it through "
                    "the fsbench.methods entry point"
                )
    plan: list[PlannedCell] = []
    trainers: dict[str, PlannedCell] = {}
    for cell in spec.cells:
        only = cell.test_data.get("sources")  # a per-source evaluation cell
        if chosen is not None and only is not None and only not in chosen:
            continue
        for seed in seeds:
            needs = None
            if cell.overrides.get("pretrained") == PRETRAINED_IN_TABLE:
                source = _pretraining(spec, cell, out, seed)
                cell = replace(cell, overrides={**cell.overrides, "pretrained": str(source)})
                needs = source
            settings = cell_settings(
                spec, cell, seed, quick, overrides or {}, jobs, progress, dataset_dir, data_options
            )
            if cell.dataset in USER_DATASETS and not settings["data_options"].get("path"):
                raise FsbenchError(
                    f"{spec.name}: {cell.dataset} is your data; give its folder with "
                    "--dataset-dir DIR"
                )
            key = training_key(settings)
            if cell.test_data:
                if key not in trainers:
                    raise ValueError(f"{cell.name}: no cell of {spec.name} trains its settings")
                data = {**settings["data_options"], **cell.test_data}
                settings = {**settings, "data_options": data}
            folder = Path(out) / cell.name / f"seed{seed}"
            item = PlannedCell(cell, seed, settings, folder, "train", needs=needs)
            item.action, item.result = _existing(folder, settings, overwrite, item.label)
            if item.action != "keep" and (key in trainers or cell.test_data):
                item.action, item.trained_in = "eval", trainers[key].out
            trainers.setdefault(key, item)
            plan.append(item)
    return plan


def _pretraining(spec: TableSpec, cell: Cell, out: Path, seed: int) -> Path:
    """The folder of the table's pre-training of ``cell``'s dataset (its first pretrain cell)."""
    for other in spec.cells:
        if other.method == "pretrain" and other.dataset == cell.dataset:
            return Path(out) / other.name / f"seed{seed}"
    raise ValueError(f"table {spec.name} has no pretrain cell for {cell.dataset}")


def run_plan(
    plan: list[PlannedCell],
    *,
    data_root: str | Path | None = None,
    device: str = "auto",
    quiet: bool = False,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
    time_limit: float | None = None,
    started: float | None = None,
) -> Iterator[PlannedCell]:
    """Run the trainings (``jobs`` at a time), then the evaluations; yield each cell when done.

    With ``time_limit`` (minutes after ``started``, default now, for the whole plan), or on a
    stop signal, the running trainings stop at an iteration boundary with a checkpoint:
    ``RunStopped``, resumable.
    """
    request = StopRequest.from_time_limit(time_limit, started)
    try:
        yield from _run_plan(plan, request, data_root, device, quiet, jobs, echo)
    except RunStopped as exc:
        exc.hint = "run the same command again to continue (unfinished cells resume)"
        raise


def _run_plan(
    plan: list[PlannedCell],
    request: StopRequest,
    data_root: str | Path | None,
    device: str,
    quiet: bool,
    jobs: int,
    echo: Callable[[str], None],
) -> Iterator[PlannedCell]:
    """run_plan's work under one stop request."""
    for item in plan:
        if item.action == "keep":
            echo(f"{item.label} kept the earlier result (same settings)")
            yield item
    pending = [p for p in plan if p.action in ("train", "resume")]
    waiting_for = {p.out for p in pending}
    first = True
    while pending:  # waves: a training starts once the training it needs has finished
        wave = [p for p in pending if p.needs is None or p.needs not in waiting_for]
        if not wave:
            raise FsbenchError(f"{pending[0].label} waits for {pending[0].needs}, which never runs")
        cells = [
            CellJob(
                p.settings,
                p.out,
                data_root,
                device,
                quiet=quiet or jobs > 1,
                resume=p.action == "resume",
                deadline=request.deadline,
                time_limit=request.time_limit_minutes,
            )
            for p in wave
        ]
        if first and jobs > 1 and len(cells) > 1:
            prepare_data(cells)  # generate each dataset once, not once per worker
        first = False
        for k, res in run_jobs(cells, jobs):
            wave[k].result = res
            yield wave[k]
        done = {p.out for p in wave}
        waiting_for -= done
        pending = [p for p in pending if p.out not in done]
    for item in plan:
        if item.action != "eval" or item.trained_in is None:
            continue
        halt = request.before_start()
        if halt is not None:
            raise RunStopped(None, None, *halt, where=str(item.out))
        s = item.settings
        assert item.trained_in is not None  # an "eval" cell names the run it evaluates
        item.result = evaluate_run(
            item.trained_in,
            item.out,
            way=s["way"],
            shot=s["shot"],
            query=s["query"],
            episodes=s["episodes"],
            data_root=data_root,
            device=device,
            overwrite=True,
            quiet=quiet,
            test_options=item.cell.test_data,
        )
        yield item
