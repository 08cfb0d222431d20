"""The short table that benchmarks/gpu_run.sh prints at its end, from what it wrote in OUT_DIR.

Reads OUT_DIR/tests.txt (pytest's output), the speed JSONs in OUT_DIR/speed/ (bench_maml*,
bench_protonet, bench_lite) and OUT_DIR/lite_run/ (bench_lite_run, step b2) with the `nvidia-smi dmon` log beside them, and the table's cells
(metrics.jsonl, result.json); adds to each bench_maml row how busy the GPU was in its window
(dmon's sm column: the share of time a kernel ran), and writes OUT_DIR/summary.md.

    python benchmarks/gpu_summary.py OUT_DIR CELLS_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def dmon_samples(path: Path) -> list[tuple[float, float]]:
    """(unix time, sm %) of each GPU-0 line of `nvidia-smi dmon -s u -o DT` (date, time, gpu, sm)."""
    samples: list[tuple[float, float]] = []
    if not path.is_file():
        return samples
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 4 or line.startswith("#") or parts[2] != "0":
            continue
        try:
            when = time.mktime(time.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S"))
            samples.append((when, float(parts[3])))
        except ValueError:  # a '-' where dmon had no reading
            continue
    return samples


def busy_percent(samples: list[tuple[float, float]], window: list[float]) -> float | None:
    """Mean sm % of the samples inside [start, end] (one-second samples; None if none fall in)."""
    inside = [sm for when, sm in samples if window[0] <= when <= window[1]]
    return round(sum(inside) / len(inside), 1) if inside else None


def maml_rows(speed: Path, samples: list[tuple[float, float]]) -> list[str]:
    """One line per bench_maml row, with GPU busy added to the JSON files in place."""
    lines = []
    for path in sorted(speed.glob("bench_maml*.json")):
        report = json.loads(path.read_text())
        s = report["settings"]
        shape = f"{s['way']}w{s['shot']}s {s['size']}px h{s['hidden']} mb{s['meta_batch']}"
        floors = {(c["device"], c["precision"]): c for c in report.get("costs", [])}
        for row in report["results"]:
            if "window_unix" in row and samples:
                row["gpu_busy_percent"] = busy_percent(samples, row["window_unix"])
            floor = floors.get((row["device"], row["precision"]), {})
            if "error" in row:
                lines.append(f"| {shape} | {row['execution']} | {row['precision']} | error | "
                             f"{row['error'][:60]} | | |")  # fmt: skip
                continue
            lines.append(
                f"| {shape} | {row['execution']}{' -> ' + row['chosen'] if row['execution'] in ('auto', 'measure') else ''} "
                f"| {row['precision']} | {row['iterations_per_second']} "
                f"| {row.get('speedup_vs_loop', '-')}x "
                f"| {floor.get('floor_iterations_per_second', '-')} "
                f"| {row.get('gpu_busy_percent', '-')} |"
            )  # fmt: skip
        path.write_text(json.dumps(report, indent=2) + "\n")
    if lines:
        lines = [
            "| shape | path | precision | it/s | vs loop | floor it/s | GPU busy % |",
            "|---|---|---|---|---|---|---|",
            *lines,
        ]
    return lines


def other_rows(speed: Path) -> list[str]:
    """ProtoNets episodes/s and LITE's memory ratios, one line each."""
    lines = []
    proto = speed / "bench_protonet.json"
    if proto.is_file():
        for r in json.loads(proto.read_text())["results"]:
            lines.append(
                f"protonet {r['device']}: {r['train_episodes_per_second']} train / "
                f"{r['eval_episodes_per_second']} eval episodes/s"
            )
    lite = speed / "bench_lite.json"
    if lite.is_file():
        for r in json.loads(lite.read_text())["full_over_lite"]:
            lines.append(
                f"LITE {r['device']} {r['support_images']} support images: full/LITE memory "
                f"{r['memory']}x, time {r['time']}x"
            )
    run = speed.parent / "lite_run" / "bench_lite_run.json"  # step b2: a whole run's memory
    if run.is_file():
        report = json.loads(run.read_text())
        measure, rows = report["measure"], report["rows"]["ours"]
        points = ", ".join(f"{r[measure]:,} MiB at {r['shot']} shots" for r in rows)
        ratio = rows[-1][measure] / rows[0][measure]
        lines.append(
            f"LITE whole run {report['device']} {report['size']}px ({measure}): {points} "
            f"({ratio:.2f}x)"
        )
    return lines


def cell_rows(cells: Path) -> list[str]:
    """Each table cell: the iteration reached (metrics.jsonl) and its accuracy once finished."""
    lines = []
    for cell in sorted(
        p for p in cells.glob("*") if p.is_dir() and p.name not in ("speed", "lite_run")
    ):
        reached = 0
        metrics = cell / "metrics.jsonl"
        if metrics.is_file():
            for line in metrics.read_text().splitlines():
                reached = max(reached, int(json.loads(line).get("iteration", 0)))
        ckpt = cell / "checkpoint.pt"
        size = f"{ckpt.stat().st_size / 2**20:.2f} MiB" if ckpt.is_file() else "no checkpoint"
        result = cell / "result.json"
        done = ""
        if result.is_file():
            r = json.loads(result.read_text())
            done = f", finished: {100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}"
        lines.append(f"cell {cell.name}: iteration {reached:,} ({size}){done}")
    return lines


def summarize(out: Path, cells: Path) -> str:
    """The whole summary as Markdown (also written to OUT/summary.md)."""
    parts = ["# gpu_run summary", ""]
    tests = out / "tests.txt"
    if tests.is_file():
        last = [line for line in tests.read_text().splitlines() if line.strip()]
        parts.append(f"CUDA tests: {'; '.join(last[-2:]) if last else 'no output'}")
    skipped = out / "speed" / "SKIPPED"
    if skipped.is_file():
        parts.append(f"speed figures: {skipped.read_text().strip()}")
    speed = out / "speed"
    samples = dmon_samples(speed / "dmon.txt")
    parts += ["", *maml_rows(speed, samples), "", *other_rows(speed), "", *cell_rows(cells)]
    text = "\n".join(parts) + "\n"
    (out / "summary.md").write_text(text)
    return text


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), Path(sys.argv[2])), end="")
