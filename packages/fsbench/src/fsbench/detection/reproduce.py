"""``fsbench reproduce repmet-detection``: RepMet vs the fine-tuning baseline, 5-way 1- and 5-shot
mAP@0.5 on mnist-detect. Each detector is trained once (training does not depend on the shot)
and tested on the same test episodes at both shots, beside the random-boxes chance level.

No published number stands beside ours: the paper's figures are on ImageNet-LOC and Pascal VOC
with an ImageNet-pre-trained ResNet-101 FPN-DCN, none of which exists offline (see the README).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsbench.detection.run import evaluate_detection_run, load_split, run_detection, settings_for
from fsbench.engine import stop
from fsbench.results import write_json
from fsbench.settings import Settings

METHODS = ("repmet-det", "finetune-det")
SHOTS = (1, 5)
# quick: 600 iterations, 20 episodes of 5 query images per class (128-pixel scenes, as full)
QUICK: dict[str, Any] = {"iterations": 600, "episodes": 20, "query": 5}
FULL: dict[str, Any] = {
    "iterations": 3000,
    "episodes": 500,
    "train_scenes": 2000,
    "test_scenes": 500,
}


@dataclass(frozen=True)
class DetectorJob:
    """One detector of the table: train (or resume) it in ``out``, test it at every shot."""

    settings: Settings
    out: Path
    data_root: Path | None = None
    device: str = "auto"
    quiet: bool = False
    resume: bool = True  # False: start again (--overwrite)
    deadline: float | None = None  # time.time() by which training stops (--time-limit)
    time_limit: float | None = None  # the --time-limit (minutes) behind the deadline


def run_detector(job: DetectorJob) -> dict:
    """The cells of one detector ({"cells": [1-shot, 5-shot]}): one training run (its result is
    the 1-shot cell), then the trained detector evaluated on the same test episodes at 5 shots.
    The entry point of a worker process (``--jobs``)."""
    request = stop.StopRequest(job.deadline, job.time_limit)
    halt = request.before_start()
    if halt is not None:
        raise stop.RunStopped(None, None, *halt, where=str(job.out))
    started = (
        None
        if job.deadline is None or job.time_limit is None
        else (job.deadline - 60 * job.time_limit)
    )
    try:
        first = run_detection(
            job.settings,
            job.out,
            data_root=job.data_root,
            device=job.device,
            resume=job.resume,
            overwrite=not job.resume,
            quiet=job.quiet,
            time_limit=job.time_limit,
            started=started,
        )
    except stop.RunStopped as exc:
        exc.where = exc.where or str(job.out)
        raise
    cells = [first]
    for shot in SHOTS[1:]:
        cells.append(
            evaluate_detection_run(
                job.out,
                job.out / f"eval-5w{shot}s",
                shot=shot,
                data_root=job.data_root,
                device=job.device,
                overwrite=True,
                quiet=job.quiet,
            )
        )
    return {"cells": cells}


def reproduce_repmet_detection(
    out: Path,
    *,
    quick: bool = False,
    data_root: Path | None = None,
    device: str = "auto",
    quiet: bool = False,
    echo=print,
    jobs: int = 1,
    threads: int | None = None,
    iterations: int | None = None,
    time_limit: float | None = None,
    started: float | None = None,
    overwrite: bool = False,
) -> list[dict]:
    """Train both detectors (resuming finished or interrupted runs under ``out``), test each at
    5-way 1- and 5-shot, write ``out/table.md`` and ``out/table.json``; returns the cells.

    ``jobs`` 2 trains and tests the two detectors side by side in two processes; each cell runs on
    ``threads`` torch threads (default 1, as every reproduced table: the results do not depend on
    ``jobs``). ``time_limit`` (minutes after ``started``) stops training as ``run_detection``;
    ``overwrite`` trains again instead of resuming.
    """
    from fsbench.engine.parallel import run_jobs

    out = Path(out)
    preset = {**(QUICK if quick else FULL), "threads": threads or 1}
    if iterations is not None:
        preset["iterations"] = iterations
    deadline = None
    if time_limit is not None:
        deadline = (time.time() if started is None else started) + 60 * time_limit
    todo = []
    for method in METHODS:
        settings = settings_for(method, "mnist-detect", **preset, way=5, shot=SHOTS[0])
        quiet_job = quiet or jobs > 1  # no progress bars from side-by-side workers
        job = DetectorJob(settings, out / method, data_root, device, quiet_job, not overwrite)
        todo.append(dataclasses.replace(job, deadline=deadline, time_limit=time_limit))
    for split in ("train", "test"):  # generate the scenes once, before any worker reads them
        load_split(todo[0].settings, split, data_root)
    for job in todo:
        echo(f"{job.settings.method}: training {job.settings.iterations} iterations in {job.out}")
    found: dict[int, list[dict]] = {}
    for index, result in run_jobs(todo, workers=jobs, runner=run_detector):
        found[index] = result["cells"]
    cells = [cell for index in range(len(todo)) for cell in found[index]]
    table = render(cells, quick)
    (out / "table.md").write_text(table)
    write_json(out / "table.json", {"quick": quick, "cells": cells})
    echo(table)
    return cells


def render(cells: list[dict], quick: bool) -> str:
    """A markdown table: a row per method, mAP@0.5 (%) +- 95% CI per shot, the chance level."""
    head = "| method | " + " | ".join(f"5-way {s}-shot mAP@0.5" for s in SHOTS)
    head += " | random boxes (1 / 5-shot) |"
    lines = [
        f"RepMet detection on mnist-detect ({'quick' if quick else 'full'}; no published number: "
        "the paper's data and ImageNet pre-training are not available offline)",
        "",
        head,
        "|" + "---|" * (len(SHOTS) + 2),
    ]
    for method in METHODS:
        mine = {c["shot"]: c for c in cells if c["method"] == method}
        row = [f"{100 * mine[s]['map50']:.1f} ± {100 * mine[s]['ci95']:.1f}" for s in SHOTS]
        chance = " / ".join(f"{100 * mine[s]['random_boxes_map50']:.1f}" for s in SHOTS)
        lines.append(f"| {method} | " + " | ".join(row) + f" | {chance} |")
    return "\n".join(lines) + "\n"
