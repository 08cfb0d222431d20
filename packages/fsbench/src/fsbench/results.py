"""Files of one run: result.json, the metrics log (JSON lines), the training curve PNG.

Everything is written to a temporary path and renamed, so nothing is ever half-written; a full
disk or quota is one ``DiskFullError`` naming the file and the free space, the temporary removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

from fsbench.errors import FsbenchError

RESULT = "result.json"
METRICS = "metrics.jsonl"
CURVE = "curve.png"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # the weights of the best validation accuracy (select: best-val)
EPISODES = "episodes.csv"  # per-episode test accuracies
TENSORBOARD = "tb"  # TensorBoard event files (--log tensorboard)


def versions() -> dict[str, str | None]:
    """Versions of python, torch, numpy and the three project packages (by distribution name)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "fsbench", "mdmnist", "mnist1d-fast"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine() -> dict[str, str]:
    """The machine type a run ran on (bit-equal reruns are expected on the same type only)."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"arch": platform.machine(), "system": platform.system(), "cpu": cpu}


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


# the errors of a write that found no room: no space left, or the user's quota used up
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(FsbenchError):
    """A write found no space (or no quota) left: the message names the file and the free space."""


def format_bytes(n: int) -> str:
    """12 bytes, 3.4 kB, 1.2 MB, 5.6 GB (powers of 1000, like df -H)."""
    if n < 1000:
        return f"{n} bytes"
    size = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            break
    return f"{size:.1f} {unit}"


def free_space(path: Path) -> str:
    """The free space of the filesystem holding ``path`` (or its nearest existing parent)."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f"{format_bytes(shutil.disk_usage(folder).free)} free"
    except OSError:
        return "free space unknown"


def disk_full_error(path: Path, exc: OSError, size: int | None = None) -> DiskFullError:
    """The one-line error of a write to ``path`` (of ``size`` bytes, when known) that failed
    with ENOSPC or EDQUOT."""
    what = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on the device"
    needs = f" ({format_bytes(size)})" if size is not None else ""
    return DiskFullError(
        f"cannot write {path}{needs}: {what} ({free_space(path)}); free some space first"
    )


@contextlib.contextmanager
def disk_full_as_error(
    path: Path, tmp: Path | None = None, size: int | None = None
) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT inside the block into ``DiskFullError`` for ``path`` (``size`` bytes
    to write, when known); on any failure remove ``tmp`` (the half-written temporary), so a
    full disk is not filled further."""
    try:
        yield
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(path, exc, size) from None
        raise


def atomic_write_bytes(
    path: Path, data: bytes, before_rename: Callable[[], None] | None = None
) -> None:
    """Write ``data`` to ``path`` through a temporary file, flushed to disk, and a rename.

    The flush (fsync) makes a full disk show itself before the rename, so the old ``path`` stays
    whole; ``DiskFullError`` names ``path`` and the free space, and no temporary is left behind.
    ``before_rename`` runs once the new data are safely on disk (e.g. to keep the old file).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with disk_full_as_error(path, tmp, len(data)):
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename()
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
        with disk_full_as_error(self.path):
            if resume_position is None:
                open(self.path, "wb").close()
            else:
                with open(self.path, "r+b" if self.path.exists() else "wb") as fh:
                    fh.truncate(resume_position)
            self._fh = open(self.path, "ab")  # noqa: SIM115 (kept open for the run)

    def write(self, record: dict) -> None:
        """Append one record; flushed, so that the log can be followed while a run trains.

        A full disk is ``DiskFullError``; a partial line it leaves lies beyond the checkpointed
        position and is cut away on --resume.
        """
        with disk_full_as_error(self.path):
            self._fh.write((json.dumps(record) + "\n").encode())
            self._fh.flush()

    def position(self) -> int:
        with disk_full_as_error(self.path):
            self._fh.flush()
        return self._fh.tell()

    def close(self) -> None:
        """Close the file; a flush that fails now (after a full disk was reported) is dropped."""
        with contextlib.suppress(OSError):
            self._fh.close()


class RunLog:
    """The metrics log and the optional writers beside it (TensorBoard): one interface for the
    trainer; the checkpointed position is the metrics log's."""

    def __init__(self, metrics: MetricsLog, others: list) -> None:
        self.metrics, self.others = metrics, others

    def write(self, record: dict) -> None:
        """The record to every writer."""
        self.metrics.write(record)
        for other in self.others:
            other.write(record)

    def position(self) -> int:
        return self.metrics.position()

    def close(self) -> None:
        self.metrics.close()
        for other in self.others:
            other.close()


def open_run_log(
    out_dir: Path, settings: dict, resume_position: int | None = None
) -> MetricsLog | RunLog:
    """The logs a run writes: metrics.jsonl, and TensorBoard event files in OUT/tb with
    ``settings['log'] == 'tensorboard'`` (cut back to the checkpoint on resume, like the log)."""
    metrics = MetricsLog(Path(out_dir) / METRICS, resume_position)
    if settings.get("log") != "tensorboard":
        return metrics
    from fsbench.tensorboard_log import TensorBoardLog

    history = None if resume_position is None else read_metrics(Path(out_dir) / METRICS)
    return RunLog(metrics, [TensorBoardLog(Path(out_dir) / TENSORBOARD, settings, history=history)])


def log_result(out_dir: Path, result: dict) -> None:
    """The test result into the run's optional logs (TensorBoard), after training."""
    if (result.get("settings") or {}).get("log") == "tensorboard":
        from fsbench.tensorboard_log import TensorBoardLog

        tb = TensorBoardLog(Path(out_dir) / TENSORBOARD, append=True)
        tb.write_result(result)
        tb.close()


def check_logs(settings: dict) -> None:
    """Before a run starts: the optional logs it asks for can be written (package installed)."""
    if settings.get("log") == "tensorboard":
        from fsbench.tensorboard_log import require

        require()


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
    try:
        with disk_full_as_error(path, tmp):
            fig.savefig(tmp, dpi=100)
            os.replace(tmp, path)
    finally:
        plt.close(fig)


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
