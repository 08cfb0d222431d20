"""TensorBoard event files of a run (``--log tensorboard``), written beside metrics.jsonl.

The same records as the metrics log become scalars under ``OUT/tb/``: ``train/loss``,
``train/accuracy``, ``train/lr`` (and any other training metric), ``val/accuracy`` and
``val/ci95``; the test result is ``test/accuracy`` and ``test/ci95`` at the last iteration, and
the settings are the run's hparams. ``tensorboard --logdir runs/`` shows every run side by side.

On ``--resume`` the event files are cut back to the checkpoint (every event past the checkpoint's
last logged iteration, and the earlier test result, are dropped) before the run continues, so a
reader sees each step once. Needs the optional ``tensorboard`` package (``fsbench[tensorboard]``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fsbench.errors import FsbenchError

INSTALL = "pip install 'fsbench[tensorboard]'"
EVENTS_PREFIX = "events.out.tfevents."
# tags written once the run has been tested: a resumed run writes them again at its new end
END_TAGS = ("test/", "_hparams_/session_end_info")
METRICS = {"test/accuracy": 0.0, "test/ci95": 0.0, "val/accuracy": 0.0}


def require() -> None:
    """Raise a one-line FsbenchError when the tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise FsbenchError(
            f"--log tensorboard needs the tensorboard package, which is not installed: {INSTALL}"
        ) from None


def event_files(folder: Path) -> list[Path]:
    """The event files in ``folder``, in the order TensorBoard reads them (by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(EVENTS_PREFIX))


def hparam_values(settings: dict) -> dict[str, float | int | str]:
    """The settings as TensorBoard hparams: numbers and strings as they are, booleans, None,
    lists and dicts as text; data_options flattened to ``data_options.KEY``."""
    flat: dict = {}
    for key, value in settings.items():
        if key == "data_options" and isinstance(value, dict):
            flat.update({f"data_options.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    out: dict[str, float | int | str] = {}
    for key, value in sorted(flat.items()):
        if isinstance(value, bool) or value is None:
            out[key] = str(value)
        elif isinstance(value, int | float | str):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True, default=str)
    return out


def scalar_tags(record: dict) -> list[tuple[str, float]]:
    """A metrics-log record as (tag, value) pairs: val_X -> val/X, every other number train/X."""
    out = []
    for key, value in record.items():
        if key == "iteration" or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        tag = f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"
        out.append((tag, float(value)))
    return out


def _kept(raw: bytes, last_step: int, first: bool) -> bool:
    """Whether one serialized event survives a cut back to ``last_step``."""
    from tensorboard.compat.proto import event_pb2

    event = event_pb2.Event.FromString(raw)
    if event.HasField("file_version"):
        return first  # one file-version record, at the start
    if event.step > last_step:
        return False
    return not any(v.tag.startswith(END_TAGS) for v in event.summary.value)


def cut_back(folder: Path, last_step: int) -> bool:
    """Rewrite the event files of ``folder`` as one file without the events past ``last_step``
    and without the test result; returns whether any event file was there.

    The kept records are copied byte for byte (wall times included) into the name of the first
    file, which sorts before any file a new writer creates.
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.summary.writer.record_writer import RecordWriter

    files = event_files(folder)
    if not files:
        return False
    tmp = folder / f".cut.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        writer = RecordWriter(fh)
        first = True
        for path in files:
            for raw in RawEventFileLoader(str(path)).Load():
                if _kept(raw, last_step, first):
                    writer.write(raw)
                    first = False
        writer.flush()
    os.replace(tmp, files[0])
    for path in files[1:]:
        path.unlink()
    return True


class TensorBoardLog:
    """Scalars and hparams of one run in ``folder``, in the metrics log's interface.

    ``history`` is None for a new run (earlier event files in ``folder`` are removed); for a
    resumed run it is the metrics log as cut back to the checkpoint: the event files are cut to
    the same iteration, or written from it when the run had no event files yet. With ``append``
    the writer only adds (the test result after training).
    """

    def __init__(
        self,
        folder: Path,
        settings: dict | None = None,
        *,
        history: list[dict] | None = None,
        append: bool = False,
    ) -> None:
        require()
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        fresh = False
        if not append:
            if history is None:
                for path in event_files(self.folder):
                    path.unlink()
                fresh = True
            else:
                last = max((int(r.get("iteration", 0)) for r in history), default=0)
                fresh = not cut_back(self.folder, last)
        self.writer = SummaryWriter(log_dir=str(self.folder), flush_secs=10)
        if fresh:
            self._write_hparams(settings or {})
            for record in history or []:
                self.write(record)

    def _events(self):
        """The writer's event-file writer (torch types it as optional; it exists once open)."""
        events = self.writer.file_writer
        if events is None:  # pragma: no cover - only after close()
            raise RuntimeError(f"the TensorBoard writer of {self.folder} is closed")
        return events

    def _write_hparams(self, settings: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        exp, ssi, _ = hparams(hparam_values(settings), METRICS)
        self._events().add_summary(exp)
        self._events().add_summary(ssi)

    def write(self, record: dict) -> None:
        """One metrics-log record as scalars at its iteration; flushed (followable live)."""
        step = int(record.get("iteration", 0))
        for tag, value in scalar_tags(record):
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def write_result(self, result: dict) -> None:
        """The test accuracy and its CI at the run's last iteration, and the end of the session."""
        from torch.utils.tensorboard.summary import hparams

        step = int(result.get("iterations") or 0)
        self.writer.add_scalar("test/accuracy", float(result["accuracy"]), step)
        self.writer.add_scalar("test/ci95", float(result["ci95"]), step)
        _, _, sei = hparams({}, METRICS)
        self._events().add_summary(sei, step)
        self.writer.flush()

    def position(self) -> int:
        """Not a byte position: a resume cuts the event files by iteration instead."""
        return 0

    def close(self) -> None:
        self.writer.close()
