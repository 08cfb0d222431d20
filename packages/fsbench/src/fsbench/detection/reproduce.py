"""``fsbench reproduce repmet-detection``: RepMet vs the fine-tuning baseline, 5-way 1- and 5-shot
mAP@0.5 on mnist-detect. Each detector is trained once (training does not depend on the shot)
and tested on the same test episodes at both shots, beside the random-boxes chance level.

No published number stands beside ours: the paper's figures are on ImageNet-LOC and Pascal VOC
with an ImageNet-pre-trained ResNet-101 FPN-DCN, none of which exists offline (see the README).
"""

from __future__ import annotations

from pathlib import Path

from fsbench.detection.run import evaluate_detection_run, run_detection, settings_for
from fsbench.results import write_json

METHODS = ("repmet-det", "finetune-det")
SHOTS = (1, 5)
# quick: 600 iterations, 20 episodes of 5 query images per class (128-pixel scenes, as full);
# measured on one thread: finetune-det's training and 1-shot test 3.2 CPU minutes together, its
# 5-shot test 6.1, repmet-det's 5-shot test 4.2 (see the README)
QUICK = {"iterations": 600, "episodes": 20, "query": 5}
FULL = {"iterations": 3000, "episodes": 500, "train_scenes": 2000, "test_scenes": 500}


def reproduce_repmet_detection(
    out: Path,
    *,
    quick: bool = False,
    data_root: Path | None = None,
    device: str = "auto",
    quiet: bool = False,
    echo=print,
) -> list[dict]:
    """Train both detectors (resuming finished or interrupted runs under ``out``), test each at
    5-way 1- and 5-shot, write ``out/table.md`` and ``out/table.json``; returns the cells."""
    out = Path(out)
    preset = QUICK if quick else FULL
    cells = []
    for method in METHODS:
        settings = settings_for(method, "mnist-detect", **preset, way=5, shot=SHOTS[0])
        run_dir = out / method
        echo(f"{method}: training {settings.iterations} iterations in {run_dir}")
        first = run_detection(
            settings, run_dir, data_root=data_root, device=device, resume=True, quiet=quiet
        )
        cells.append(first)
        for shot in SHOTS[1:]:
            cells.append(
                evaluate_detection_run(
                    run_dir,
                    run_dir / f"eval-5w{shot}s",
                    shot=shot,
                    data_root=data_root,
                    device=device,
                    overwrite=True,
                    quiet=quiet,
                )
            )
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
