"""The training loop: seeded sampling, optimiser steps, validation and model selection, checkpoints.

The loop never waits for the device except where it writes something: losses and accuracies stay
tensors and are read (``float``) only at logging steps, validation and checkpoints.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from fsbench.data.store import ArrayStore
from fsbench.engine import distributed
from fsbench.engine.checkpoints import load_checkpoint, previous_of, save_checkpoint
from fsbench.engine.device import autocast, grad_scaler
from fsbench.engine.stop import RunStopped, StopRequest
from fsbench.methods.base import Method
from fsbench.results import BEST, CHECKPOINT, open_run_log
from fsbench.settings import complete

__all__ = ["load_checkpoint", "resume_checkpoint", "save_checkpoint", "train"]

log = logging.getLogger("fsbench")

# offsets that give the validation and test episode streams their own generators
VAL_STREAM = 1_000_003
TEST_STREAM = 2_000_029
# without a terminal, a plain progress line this often (seconds)
LOG_INTERVAL = 180.0
# an estimate of the whole run is printed once this much training time has passed (seconds)
ESTIMATE_AFTER = 10.0
LONG_CPU_RUN = 3600.0  # seconds: beyond this, a CPU run gets a suggestion


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
            self.bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.3f}")
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
    out_dir: Path,
    *,
    device: torch.device,
    precision: str = "fp32",
    resume: bool = False,
    val_store: ArrayStore | None = None,
    quiet: bool = False,
    stop: StopRequest | None = None,
) -> TrainOutcome:
    """Train ``method`` for settings['iterations'] steps, checkpointing every checkpoint_every.

    With ``resume`` and a checkpoint in ``out_dir``, everything (model, optimiser, scheduler,
    scaler, sampling generator, RNG states, metrics-log position, the best validation so far,
    the method's own state) is restored, so the run continues exactly as if it had never stopped.
    With ``select == "best-val"`` the weights of the best validation accuracy go to ``best.pt``.
    Before every iteration ``stop`` is asked whether to stop (a signal, a time limit): then a
    checkpoint is written and ``RunStopped`` raised.
    """
    stop = stop or StopRequest()
    out_dir = Path(out_dir)
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
    ckpt_path = out_dir / CHECKPOINT
    resume_from = resume_checkpoint(out_dir) if resume else None
    if resume_from is not None:
        state = load_checkpoint(resume_from)
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
    log_file = open_run_log(out_dir, settings, log_position) if main else NoLog()

    def checkpoint(iteration: int) -> None:
        distributed.broadcast_module(method.model)  # every rank continues with rank 0's buffers
        ranks = distributed.gather_objects(rank_state(gen, method))
        if not main:
            return
        extra = {"ranks": ranks, "world_size": len(ranks)} if distributed.active() else {}
        t_save = time.perf_counter()
        save_checkpoint(
            ckpt_path,
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
            },
            keep_previous=True,
        )
        timing["save"] = max(timing["save"], time.perf_counter() - t_save)
        timing["saved"] = iteration

    def validate(done: int) -> None:
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
                save_checkpoint(
                    out_dir / BEST,
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
    if resume_from is not None and resume_from == ckpt_path:
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
