"""Files of one run: result.json, the metrics log (JSON lines), the training curve PNG.

Everything is written to a temporary path and renamed, so nothing is ever half-written.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

RESULT = "result.json"
METRICS = "metrics.jsonl"
CURVE = "curve.png"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # the weights of the best validation accuracy (select: best-val)
EPISODES = "episodes.csv"  # per-episode test accuracies


def versions() -> dict[str, str | None]:
    """Versions of python, torch, numpy and the three project packages."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "fsbench", "mdmnist", "mnist1d"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit() -> dict | None:
    """The commit of the fsbench checkout this code runs from (or that the cwd is), if any.

    Tried in order: the folder of the imported fsbench (an editable install), then the current
    directory when it is a checkout of this project (``packages/fsbench`` in it). ``dirty`` says
    whether tracked files differ from the commit.
    """
    here = Path(__file__).resolve().parent
    for folder in (here, Path.cwd()):
        top = _git(folder, "rev-parse", "--show-toplevel")
        if not top or not (Path(top) / "packages" / "fsbench").is_dir():
            continue
        commit = _git(folder, "rev-parse", "HEAD")
        if commit:
            status = _git(folder, "status", "--porcelain", "--untracked-files=no") or ""
            return {"commit": commit, "dirty": bool(status), "checkout": top}
    return None


def write_episodes(path: Path, accuracies: list[float]) -> None:
    """Per-episode accuracies as CSV (episode, accuracy), atomically."""
    lines = ["episode,accuracy"] + [f"{i},{a:.6f}" for i, a in enumerate(accuracies)]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    """Pretty JSON, atomically."""
    atomic_write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode()
    )


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


class MetricsLog:
    """Append-only JSON-lines log whose byte position is checkpointed for exact resume."""

    def __init__(self, path: Path, resume_position: int | None = None) -> None:
        self.path = Path(path)
        if resume_position is None:
            self.path.write_bytes(b"")
        else:
            with open(self.path, "r+b" if self.path.exists() else "wb") as fh:
                fh.truncate(resume_position)
        self._fh = open(self.path, "ab")  # noqa: SIM115 (kept open for the run)

    def write(self, record: dict) -> None:
        """Append one record; flushed, so that the log can be followed while a run trains."""
        self._fh.write((json.dumps(record) + "\n").encode())
        self._fh.flush()

    def position(self) -> int:
        self._fh.flush()
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()


def read_metrics(path: Path) -> list[dict]:
    """All records of a metrics log."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (training losses of single episodes are noisy)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(runs: list[tuple[str, list[dict]]], path: Path, title: str) -> None:
    """Training loss and accuracies of one or more runs against iteration, as one PNG.

    Each run is ``(label, metrics records)``; training values are smoothed over 1% of the run,
    validation accuracies (when logged) are drawn with markers.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, (label, metrics) in enumerate(runs):
        color = f"C{k % 10}"
        train = [m for m in metrics if "loss" in m]
        val = [m for m in metrics if "val_accuracy" in m]
        name = f"{label}: " if label else ""
        if train:
            it = [m["iteration"] for m in train]
            window = max(1, len(train) // 100)
            ax1.plot(it, _smooth([m["loss"] for m in train], window), lw=0.8, color=color)
            ax2.plot(
                it,
                _smooth([m["accuracy"] for m in train], window),
                lw=0.8,
                alpha=0.5 if val else 1.0,
                color=color,
                label=f"{name}train (query)",
            )
        if val:
            ax2.plot(
                [m["iteration"] for m in val],
                [m["val_accuracy"] for m in val],
                "o-",
                ms=2.5,
                lw=1.0,
                color=color,
                label=f"{name}validation",
            )
    losses = [m["loss"] for _, metrics in runs for m in metrics if m.get("loss", 0) > 0]
    if losses and max(losses) > 50 * min(losses):
        ax1.set_yscale("log")  # losses that start far above where they end
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("training loss")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(0, 1)
    ax2.legend(loc="lower right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def plot_curve(metrics: list[dict], path: Path, title: str) -> None:
    """The curve of one run (``plot_curves`` with a single unlabelled run)."""
    plot_curves([("", metrics)], path, title)


def find_results(paths: list[Path]) -> list[tuple[Path, dict]]:
    """Every result.json under the given directories (recursively), with its parsed content."""
    found = []
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(root.rglob(RESULT))
        for f in files:
            try:
                found.append((f, read_json(f)))
            except (OSError, json.JSONDecodeError):
                continue
    return found
