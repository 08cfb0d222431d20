"""Run again exactly what a result.json records (``fsbench rerun``) and compare the accuracy.

The record holds every setting (``settings``), the seed, the data description and, for data the
user gave, the folder and its file list (``data.folders``). ``plan_rerun`` reads it back and
checks it (a method this fsbench knows, the user's folders at the recorded path with the
recorded files, the versions that differ); ``rerun`` trains and tests it again with the recorded
torch threads, then says whether the new accuracy is bit-equal to the recorded one, or by how
much it differs and how that compares with the 95% CI of a difference of two independent runs.
Generated datasets are generated again (or read from the data cache, which holds the same bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from fsbench.data.listing import FOLDER_OPTIONS, folder_listing
from fsbench.errors import FsbenchError
from fsbench.results import CHECKPOINT, RESULT, git_commit, read_json, versions, write_json
from fsbench.settings import DETECTION_METHODS, SettingError, Settings, complete


@dataclass
class RerunPlan:
    """What a rerun will run: the recorded result, its settings, where, and what differs here."""

    source: Path  # the result.json
    recorded: dict
    settings: dict
    device: str
    version_differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    """The new accuracy against the recorded one (fractions, like result.json)."""

    recorded: float
    recorded_ci95: float
    new: float
    new_ci95: float
    same_machine: bool  # machine type and device as recorded
    same_versions: bool
    metric: str = "accuracy"  # what the numbers are (a detector's: mAP@0.5)

    @property
    def equal(self) -> bool:
        """Bit-equal accuracy and CI."""
        return self.new == self.recorded and self.new_ci95 == self.recorded_ci95

    @property
    def difference(self) -> float:
        return self.new - self.recorded

    @property
    def ci95_difference(self) -> float:
        """Half-width of the 95% CI of the difference of two independent runs' accuracies."""
        return math.sqrt(self.recorded_ci95**2 + self.new_ci95**2)

    def sentence(self) -> str:
        """One line for a person: equal, or the difference and its CI."""
        new = f"{100 * self.new:.2f} % ± {100 * self.new_ci95:.2f}"
        if self.equal:
            line = f"rerun: {self.metric} {new}, bit-equal to the recorded result"
            if not (self.same_machine and self.same_versions):
                line += " (on another machine type, device or versions)"
            return line
        within = abs(self.difference) <= self.ci95_difference
        line = (
            f"rerun: {self.metric} {new}; recorded {100 * self.recorded:.2f} % ± "
            f"{100 * self.recorded_ci95:.2f}; difference {100 * self.difference:+.2f} points, "
            f"95% CI of a difference ± {100 * self.ci95_difference:.2f} "
            f"({'within' if within else 'outside'} it)"
        )
        if self.same_machine and self.same_versions:
            line += "; not bit-equal although machine type, device and versions are the same"
        else:
            line += "; not bit-equal: machine type, device or versions differ"
        return line

    def record(self, source: Path) -> dict:
        """The ``rerun_of`` entry of the new result.json."""
        return {
            "result": str(source),
            "accuracy": self.recorded,
            "ci95": self.recorded_ci95,
            "equal": self.equal,
            "difference": self.difference,
            "ci95_difference": self.ci95_difference,
            "same_machine": self.same_machine,
            "same_versions": self.same_versions,
        }


def result_path(path: Path) -> Path:
    """RESULT.json itself, or RUN_DIR/result.json; one-line errors otherwise."""
    path = Path(path)
    if path.is_dir():
        if not (path / RESULT).is_file():
            raise FsbenchError(f"{path} holds no {RESULT}: not a finished fsbench run folder")
        return path / RESULT
    if not path.is_file():
        raise FsbenchError(f"{path} does not exist: give a result.json or a run folder")
    return path


def read_result(path: Path) -> dict:
    """A result.json written by fsbench run or pretrain, checked enough to run it again."""
    try:
        result = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError):
        raise FsbenchError(f"{path} is not a result.json (not JSON)") from None
    if not isinstance(result, dict) or not all(
        isinstance(result.get(k), t) for k, t in (("settings", dict), ("accuracy", float | int))
    ):
        raise FsbenchError(
            f"{path} is not a result.json of fsbench run (it needs 'settings' and 'accuracy')"
        )
    if result.get("evaluated_from"):
        run = result["evaluated_from"].get("run")
        raise FsbenchError(
            f"{path} is an evaluation (fsbench eval) of {run}: rerun that run, then evaluate it"
        )
    return result


def version_differences(recorded: dict | None, here: dict) -> list[str]:
    """'torch 2.3.0 recorded, 2.14.1 here' for each package whose version differs."""
    recorded = recorded or {}
    return [
        f"{name} {recorded.get(name)} recorded, {here.get(name)} here"
        for name in sorted(set(recorded) | set(here))
        if recorded.get(name) != here.get(name)
    ]


def check_folders(source: Path, result: dict, options: dict) -> list[str]:
    """The user's data folders must be where the run read them, holding the same files.

    Points the data options at the recorded absolute paths; returns notes for folders an older
    fsbench recorded without a file list.
    """
    folders = (result.get("data") or {}).get("folders") or {}
    notes = []
    for key in FOLDER_OPTIONS:
        if not options.get(key):
            continue
        recorded = folders.get(key)
        path = Path(recorded["path"] if recorded else options[key]).expanduser()
        if not path.exists():
            raise SettingError(
                f"{source}: the run read its data from {path} ({{dataset_dir}}), which is not "
                "there; put the folder back at that path to rerun it",
                "dataset_dir",
            )
        if recorded is None:
            notes.append(f"{path}: no file list recorded (older fsbench), not checked")
            continue
        here = folder_listing(path)
        if here["sha256"] != recorded["sha256"]:
            raise FsbenchError(
                f"{source}: {path} no longer holds the files the run read ({recorded['files']} "
                f"files, {recorded['bytes']} bytes recorded; {here['files']} files, "
                f"{here['bytes']} bytes here)"
            )
        options[key] = str(path)
    return notes


def plan_rerun(path: Path, device: str | None = None, quiet: bool = False) -> RerunPlan:
    """Read RESULT.json (or RUN_DIR/result.json) back into the settings of a run; check them."""
    from fsbench.data import DATASETS
    from fsbench.detection.run import DETECTION_DATASETS
    from fsbench.engine import distributed
    from fsbench.methods import METHODS
    from fsbench.methods.registry import is_user_method
    from fsbench.presets import preset_for

    source = result_path(path)
    result = read_result(source)
    recorded = dict(result["settings"])  # raw, as result.json holds them (an older run: fewer)
    method, dataset = recorded.get("method"), recorded.get("dataset")
    detector = method in DETECTION_METHODS
    if not detector and method not in METHODS and not is_user_method(str(method)):
        known = ", ".join([*METHODS, *DETECTION_METHODS])
        raise FsbenchError(
            f"{source}: method {method!r} is not one this fsbench knows ({known}); "
            "it cannot be rerun here"
        )
    datasets = DETECTION_DATASETS if detector else DATASETS
    if dataset not in datasets:
        raise FsbenchError(
            f"{source}: dataset {dataset!r} is not one this fsbench knows for {method} "
            f"({', '.join(datasets)}); it cannot be rerun here"
        )
    world = int(result.get("world_size") or recorded.get("world_size") or 1)
    if world != distributed.env_world_size():
        raise FsbenchError(
            f"{source} was trained by {world} processes (torchrun): run the rerun under "
            f"torchrun --nproc-per-node {world} -m fsbench rerun {source}"
        )
    settings = complete(recorded)  # a setting added since then: its declared default
    if settings["pretrained"] and not Path(settings["pretrained"]).is_dir():
        raise SettingError(
            f"{source}: the pre-trained run {settings['pretrained']} ({{pretrained}}) is not "
            "there; put it back at that path to rerun this run",
            "pretrained",
        )
    options = dict(settings["data_options"] or {})
    notes = check_folders(source, result, options)
    if "progress" in options:
        options["progress"] = not quiet
    settings["data_options"] = options
    if not detector:  # a detection run has one preset of its own (detection/run.py)
        settings["preset_source"] = (
            result.get("preset_source") or preset_for(str(method), str(dataset)).source
        )
    if settings["threads"] is None and result.get("torch_threads"):
        settings["threads"] = int(result["torch_threads"])  # float sums depend on the threads
    recorded_device = str(result.get("device") or "auto").split()[0]
    chosen = device or ("cuda" if recorded_device.startswith("cuda") else recorded_device)
    differ = version_differences(result.get("versions"), versions())
    was, now = (result.get("git") or {}).get("commit"), (git_commit() or {}).get("commit")
    if was and now and was != now:
        notes.append(f"git commit {was[:10]} recorded, {now[:10]} here")
    return RerunPlan(source, result, settings, chosen, differ, notes)


def default_out(source: Path) -> Path:
    """reruns/<run folder name>: outside the recorded run (tables never mix the two); a
    reproduce cell's seedN folder keeps its cell's name (reruns/mlp-mnist1d-seed42)."""
    folder = Path(source).resolve().parent
    name = folder.name
    if name.startswith("seed") and folder.parent.name:
        name = f"{folder.parent.name}-{name}"
    return Path("reruns") / name


def rerun(
    plan: RerunPlan,
    out: Path,
    *,
    data_root: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    loader=None,
    describe=None,
) -> tuple[dict, Comparison]:
    """Train and test the planned run into ``out``; the new result (with ``rerun_of``) and how
    it compares with the recorded one."""
    from fsbench.engine import distributed
    from fsbench.engine.run import run_setting

    out = Path(out)
    if out.resolve() == plan.source.resolve().parent:
        raise SettingError(
            f"{{out}} {out} is the recorded run's own folder: give another {{out}}", "out"
        )
    earlier = [name for name in (RESULT, CHECKPOINT) if (out / name).exists()]
    if earlier and not overwrite:
        raise SettingError(
            f"{{out}} {out} already holds a run ({', '.join(earlier)}); pass {{overwrite}} to "
            "replace it",
            "out",
            "overwrite",
        )
    if plan.settings["method"] in DETECTION_METHODS:
        from fsbench.detection.run import run_detection

        new = run_detection(
            Settings.from_dict(plan.settings),
            out,
            data_root=Path(data_root) if data_root is not None else None,
            device=plan.device,
            overwrite=overwrite,
            quiet=quiet,
        )
    else:  # run_setting sets the recorded torch threads for the run only (engine.device.run_scope)
        new = run_setting(
            plan.settings,
            out,
            data_root=data_root,
            device=plan.device,
            overwrite=overwrite,
            quiet=quiet,
            loader=loader,
            describe=describe,
        )
    recorded = plan.recorded
    same_machine = recorded.get("machine") == new.get("machine") and recorded.get(
        "device"
    ) == new.get("device")
    comparison = Comparison(
        recorded=float(recorded["accuracy"]),
        recorded_ci95=float(recorded.get("ci95") or 0.0),
        new=float(new["accuracy"]),
        new_ci95=float(new["ci95"]),
        same_machine=same_machine,
        same_versions=not plan.version_differences,
        metric=str(new.get("metric") or "accuracy"),
    )
    new["rerun_of"] = comparison.record(plan.source)
    if distributed.is_main():
        write_json(out / RESULT, new)
    return new, comparison
