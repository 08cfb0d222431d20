"""The training loop: seeded sampling, optimiser steps, validation and model selection, checkpoints.

The loop never waits for the device except where it writes something: losses and accuracies stay
tensors and are read (``float``) only at logging steps, validation and checkpoints. Where those go
is a record: ``FolderRecord`` (files in OUT, what the command line writes) or ``MemoryRecord``
(kept in memory, nothing written: a library run without ``out``); the loop is the same.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from fsbench.data.store import ArrayStore
from fsbench.engine import distributed
from fsbench.engine.checkpoints import load_checkpoint, previous_of, save_checkpoint
from fsbench.engine.device import autocast, grad_scaler
from fsbench.engine.stop import RunStopped, StopRequest
from fsbench.errors import FsbenchError
from fsbench.methods.base import Method
from fsbench.results import BEST, CHECKPOINT, METRICS, open_run_log, read_metrics
from fsbench.settings import SettingError, complete

__all__ = [
    "FolderRecord",
    "MemoryRecord",
    "TrainingDiverged",
    "RunRecord",
    "as_record",
    "load_checkpoint",
    "resume_checkpoint",
    "save_checkpoint",
    "train",
]

log = logging.getLogger("fsbench")

# offsets that give the validation and test episode streams their own generators
VAL_STREAM = 1_000_003
TEST_STREAM = 2_000_029
# without a terminal, a plain progress line this often (seconds)
LOG_INTERVAL = 180.0
# an estimate of the whole run is printed once this much training time has passed (seconds)
ESTIMATE_AFTER = 10.0
LONG_CPU_RUN = 3600.0  # seconds: beyond this, a CPU run gets a suggestion


class TrainingDiverged(SettingError):
    """The training loss became NaN or infinite: nothing after it is worth testing."""


def check_finite(logged: dict, iteration: int, total: int) -> None:
    """``TrainingDiverged`` when a logged training loss is NaN or infinite (checked where the loss
    is read anyway, at logging steps: no extra device synchronisation)."""
    loss = logged.get("loss")
    if loss is None or math.isfinite(loss):
        return
    raise TrainingDiverged(
        f"training diverged: the loss is {loss} at iteration {iteration} of {total} (learning "
        f"rate {logged.get('lr')}); nothing was tested and no result written; lower {{lr}} (or "
        "check the data) and start the run again with {overwrite}",
        "lr",
        "overwrite",
    )


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch.Generator on the store's device, seeded."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def show_progress(quiet: bool) -> bool:
    """Progress bars only on a terminal, and never with --quiet."""
    return not quiet and sys.stderr.isatty()


def format_duration(seconds: float) -> str:
    """3 s, 12 min, 4.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class TrainOutcome:
    """What training produced, and which model is to be tested."""

    iteration: int
    seconds: float
    resumed_from: int
    best_iteration: int | None = None  # iteration of the best validation accuracy, if any
    best_val_accuracy: float | None = None
    validations: int = 0


class NoLog:
    """The metrics log of a rank other than 0: it writes nothing (rank 0 logs the mean)."""

    def write(self, record: dict) -> None:
        """Drop the record."""

    def position(self) -> int:
        return 0

    def close(self) -> None:
        """Nothing to close."""


class MetricsWriter(Protocol):
    """Where the loop's metric records go (metrics.jsonl, TensorBoard, a list in memory)."""

    def write(self, record: dict) -> None: ...

    def position(self) -> int: ...

    def close(self) -> None: ...


class RunRecord(Protocol):
    """Where a run keeps its checkpoint, its best-on-validation model and its metrics."""

    def resume_state(self) -> tuple[dict, bool] | None:
        """(the checkpoint to continue, whether it is the latest one) or None."""
        ...

    def open_log(self, settings: dict, position: int | None) -> MetricsWriter:
        """The metrics writer, cut back to ``position`` (a resume) or emptied (None)."""
        ...

    def save_checkpoint(self, state: dict) -> None: ...

    def save_best(self, state: dict) -> None: ...

    def last(self) -> dict:
        """The last checkpoint written."""
        ...

    def best(self) -> dict | None:
        """The best-on-validation state, if one was saved."""
        ...

    def history(self) -> list[dict]:
        """Every metrics record of the run so far."""
        ...


class FolderRecord:
    """A run's record as files in its folder: checkpoint.pt (+ .prev), best.pt, metrics.jsonl."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)

    def resume_state(self) -> tuple[dict, bool] | None:
        path = resume_checkpoint(self.out)
        if path is None:
            return None
        return load_checkpoint(path), path == self.out / CHECKPOINT

    def open_log(self, settings: dict, position: int | None) -> MetricsWriter:
        return open_run_log(self.out, settings, position)

    def save_checkpoint(self, state: dict) -> None:
        save_checkpoint(self.out / CHECKPOINT, state, keep_previous=True)

    def save_best(self, state: dict) -> None:
        save_checkpoint(self.out / BEST, state)

    def last(self) -> dict:
        return load_checkpoint(self.out / CHECKPOINT)

    def best(self) -> dict | None:
        path = self.out / BEST
        return load_checkpoint(path) if path.exists() else None

    def history(self) -> list[dict]:
        return read_metrics(self.out / METRICS)


class MemoryLog:
    """Metric records appended to a list (the in-memory metrics.jsonl)."""

    def __init__(self, records: list[dict], position: int | None) -> None:
        self.records = records
        del self.records[position or 0 :]

    def write(self, record: dict) -> None:
        self.records.append(dict(record))

    def position(self) -> int:
        return len(self.records)

    def close(self) -> None:
        """Nothing to close."""


@dataclass
class MemoryRecord:
    """A run's record kept in memory, nothing written: states are deep copies taken when a file
    would have been written, so they hold the values of that moment."""

    checkpoint: dict | None = None
    best_state: dict | None = None
    records: list[dict] = field(default_factory=list)

    def resume_state(self) -> tuple[dict, bool] | None:
        return (copy.deepcopy(self.checkpoint), True) if self.checkpoint is not None else None

    def open_log(self, settings: dict, position: int | None) -> MetricsWriter:
        return MemoryLog(self.records, position)

    def save_checkpoint(self, state: dict) -> None:
        self.checkpoint = copy.deepcopy(state)

    def save_best(self, state: dict) -> None:
        self.best_state = copy.deepcopy(state)

    def last(self) -> dict:
        if self.checkpoint is None:
            raise FsbenchError("this run has no checkpoint yet: it has not been trained")
        return self.checkpoint

    def best(self) -> dict | None:
        return self.best_state

    def history(self) -> list[dict]:
        return list(self.records)


def as_record(where: Path | str | RunRecord) -> RunRecord:
    """A folder path as its FolderRecord; a record as itself."""
    if isinstance(where, Path | str):
        return FolderRecord(Path(where))
    return where


def rank_state(gen: torch.Generator, method: Method) -> dict:
    """What differs between ranks and a checkpoint must keep for each: RNG streams, method state."""
    return {
        "generator": gen.get_state(),
        "cpu_rng": torch.get_rng_state(),
        "method": method.extra_state(),
    }


def restore_rank_state(state: dict, gen: torch.Generator, method: Method) -> None:
    """This rank's part of a checkpoint written by ``world_size`` ranks."""
    mine = state["ranks"][distributed.rank()]
    gen.set_state(mine["generator"])
    torch.set_rng_state(mine["cpu_rng"])
    method.load_extra_state(mine["method"] or {})


def resume_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint --resume continues: checkpoint.pt, else checkpoint.prev.pt (left when the
    user deleted a damaged checkpoint.pt), else None."""
    path = Path(out_dir) / CHECKPOINT
    for candidate in (path, previous_of(path)):
        if candidate.exists():
            return candidate
    return None


class Progress:
    """A tqdm bar on a terminal; otherwise one plain log line every LOG_INTERVAL seconds.

    Either way, once ESTIMATE_AFTER seconds of training have passed, one line estimates the whole
    run and, for a long CPU run, says what to do instead.
    """

    def __init__(self, method: Method, start: int, total: int, device, quiet: bool) -> None:
        self.start, self.total, self.device, self.quiet = start, total, device, quiet
        self.bar = tqdm(
            total=total,
            initial=start,
            desc=f"train {method.name}",
            disable=not show_progress(quiet),
            dynamic_ncols=True,
        )
        self.t0 = time.perf_counter()
        self.t_first: float | None = None  # after the first iteration (warm-up excluded)
        self.estimated = False
        self.last_line = self.t0
        self.postfix: dict[str, float] = {}

    def update(self, done: int, metrics: dict[str, float] | None) -> None:
        now = time.perf_counter()
        if metrics is not None:
            self.postfix = metrics
            labels = {"loss": "loss", "acc": "accuracy"}  # a user's method may log only its loss
            self.bar.set_postfix(
                {k: f"{metrics[m]:.3f}" for k, m in labels.items() if m in metrics}
            )
        self.bar.update(1)
        if self.t_first is None:
            self.t_first = now
            return
        rate = (done - self.start - 1) / max(now - self.t_first, 1e-9)  # iterations per second
        left = (self.total - done) / rate if rate > 0 else float("inf")
        if not self.estimated and now - self.t0 >= ESTIMATE_AFTER and done < self.total:
            self.estimated = True
            self._estimate(rate, left)
        if not self.bar.disable or self.quiet or now - self.last_line < LOG_INTERVAL:
            return
        self.last_line = now
        shown = ", ".join(f"{k} {v:.3f}" for k, v in self.postfix.items() if k != "lr")
        log.info(
            "iteration %d/%d%s, %.2f it/s, %s left",
            done,
            self.total,
            f", {shown}" if shown else "",
            rate,
            format_duration(left),
        )

    def _estimate(self, rate: float, left: float) -> None:
        if self.quiet:
            return
        per_it = 1.0 / rate if rate > 0 else float("inf")
        line = (
            f"estimate: {format_duration(per_it)} per iteration"
            if per_it >= 1
            else f"estimate: {rate:.1f} iterations/s"
        )
        line += f", about {format_duration(left)} for the {self.total - self.start:,} iterations"
        if self.device.type == "cpu" and left > LONG_CPU_RUN:
            line += (
                " on CPU; a GPU machine runs this much faster (--device cuda), or try a short "
                "run first (fewer --iterations, or fsbench reproduce TABLE --quick)"
            )
        log.info(line)

    def close(self) -> None:
        self.bar.close()


def train(
    method: Method,
    train_store: ArrayStore,
    settings: dict,
    out_dir: Path | str | RunRecord,
    *,
    device: torch.device,
    precision: str = "fp32",
    resume: bool = False,
    val_store: ArrayStore | None = None,
    quiet: bool = False,
    stop: StopRequest | None = None,
) -> TrainOutcome:
    """Train ``method`` for settings['iterations'] steps, checkpointing every checkpoint_every.

    ``out_dir``: the run's folder, or a record (``MemoryRecord``: nothing is written). With
    ``resume`` and a checkpoint in ``out_dir``, everything (model, optimiser, scheduler,
    scaler, sampling generator, RNG states, metrics-log position, the best validation so far,
    the method's own state) is restored, so the run continues exactly as if it had never stopped.
    With ``select == "best-val"`` the weights of the best validation accuracy go to ``best.pt``.
    Before every iteration ``stop`` is asked whether to stop (a signal, a time limit): then a
    checkpoint is written and ``RunStopped`` raised.
    """
    stop = stop or StopRequest()
    record = as_record(out_dir)
    iterations = method.iterations(train_store)  # also lets the method see the split first
    settings = complete(settings)
    ckpt_every = int(settings["checkpoint_every"])
    eval_every = method.eval_interval() if val_store is not None else 0
    keep_best = settings["select"] == "best-val"
    log_every = max(1, iterations // 2000)
    optimizer, scheduler = method.make_optimizer()
    scaler = grad_scaler(device, precision)
    gen = make_generator(train_store.device, distributed.rank_seed(int(settings["seed"])))
    main = distributed.is_main()
    start = 0
    log_position = None
    best: dict = {"iteration": None, "accuracy": None, "validations": 0}
    resume_from = record.resume_state() if resume else None
    if resume_from is not None:
        state = resume_from[0]
        method.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["cpu_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        method.load_extra_state(state.get("method") or {})
        if "ranks" in state:  # written by several ranks: each takes back its own streams
            restore_rank_state(state, gen, method)
        best = dict(state.get("best") or best)
        start = int(state["iteration"])
        log_position = int(state["metrics_position"])
    log_file: MetricsWriter = record.open_log(settings, log_position) if main else NoLog()

    def checkpoint(iteration: int) -> None:
        distributed.broadcast_module(method.model)  # every rank continues with rank 0's buffers
        ranks = distributed.gather_objects(rank_state(gen, method))
        if not main:
            return
        extra = {"ranks": ranks, "world_size": len(ranks)} if distributed.active() else {}
        t_save = time.perf_counter()
        record.save_checkpoint(
            {
                "model": method.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "generator": gen.get_state(),
                "cpu_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "iteration": iteration,
                "total_iterations": iterations,
                "metrics_position": log_file.position(),
                "settings": settings,
                "input_transform": train_store.meta.get(
                    "transform"
                ),  # data.transform.InputTransform
                "method": method.extra_state(),
                "best": best,
                **extra,
            }
        )
        timing["save"] = max(timing["save"], time.perf_counter() - t_save)
        timing["saved"] = iteration

    def validate(done: int) -> None:
        assert val_store is not None  # validations happen only with a val split
        vgen = make_generator(val_store.device, int(settings["seed"]) + VAL_STREAM)
        distributed.broadcast_module(method.model)  # rank 0's batch-norm statistics everywhere
        with autocast(device, precision):
            res = method.evaluate(
                val_store,
                vgen,
                int(settings["eval_episodes"]),
                way=settings["val_way"] or settings["way"],
                shot=settings["val_shot"] or settings["train_shot"],
                **distributed.eval_share(method),
            )
        method.model.train()
        log_file.write({"iteration": done, "val_accuracy": res.accuracy, "val_ci95": res.ci95})
        best["validations"] += 1
        if best["accuracy"] is None or res.accuracy > best["accuracy"]:
            best.update(iteration=done, accuracy=res.accuracy)
            if keep_best and main:
                record.save_best(
                    {
                        "model": method.model.state_dict(),
                        "method": method.extra_state(),  # tested with the weights
                        "iteration": done,
                        "val": res.accuracy,
                    },
                )

    def stop_here(it: int) -> None:
        """At an iteration boundary: checkpoint and raise RunStopped if a stop is due."""
        now = time.perf_counter()
        if it > start:
            timing["step"] = max(timing["step"], now - timing["top"])
        timing["top"] = now
        due = stop.due(timing["step"], timing["save"] or timing["step"])
        if distributed.active():  # every rank stops at the same boundary: rank 0 decides
            due = distributed.broadcast_object(due)
        if due is None:
            return
        if timing["saved"] != it:  # written at this boundary already (or resumed from it)
            checkpoint(it)
        raise RunStopped(it, iterations, due[0], due[1])

    # the slowest iteration and checkpoint so far (seconds), and the iteration last saved
    timing = {"step": 0.0, "save": 0.0, "top": 0.0, "saved": -1}
    if resume_from is not None and resume_from[1]:  # the latest checkpoint: this very boundary
        timing["saved"] = start
    t0 = time.perf_counter()
    progress = Progress(method, start, iterations, device, quiet or not main)
    method.model.train()
    try:
        for it in range(start, iterations):
            stop_here(it)
            batch = method.sample_train(train_store, gen, it)
            with autocast(device, precision):
                loss, metrics = method.train_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            distributed.all_reduce_mean_grads(method.model)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            done = it + 1
            logged = None
            if done % log_every == 0 or done == iterations:
                logged = distributed.mean_metrics({k: float(v) for k, v in metrics.items()})
                logged["lr"] = optimizer.param_groups[0]["lr"]
                log_file.write({"iteration": done, **logged})
                check_finite(logged, done, iterations)
            if eval_every > 0 and done % eval_every == 0:
                validate(done)
            if ckpt_every > 0 and done % ckpt_every == 0:
                checkpoint(done)
            progress.update(done, logged)
        if distributed.broadcast_object(timing["saved"] != max(start, iterations)):
            checkpoint(max(start, iterations))
    finally:
        progress.close()
        log_file.close()
    return TrainOutcome(
        max(start, iterations),
        time.perf_counter() - t0,
        start,
        best_iteration=best["iteration"],
        best_val_accuracy=best["accuracy"],
        validations=best["validations"],
    )
