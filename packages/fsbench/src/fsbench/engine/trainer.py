"""The training loop: seeded sampling, optimiser steps, periodic validation, checkpoints, resume."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from fsbench.data.store import ArrayStore
from fsbench.engine.device import autocast, grad_scaler
from fsbench.methods.base import Method
from fsbench.results import CHECKPOINT, METRICS, MetricsLog, atomic_write_bytes

# offsets that give the validation and test episode streams their own generators
VAL_STREAM = 1_000_003
TEST_STREAM = 2_000_029


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch.Generator on the store's device, seeded."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def show_progress(quiet: bool) -> bool:
    """Progress bars only on a terminal, and never with --quiet."""
    return not quiet and sys.stderr.isatty()


@dataclass
class TrainOutcome:
    """What training produced: the last iteration reached and the seconds spent in this call."""

    iteration: int
    seconds: float
    resumed_from: int


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file, then rename."""
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


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
) -> TrainOutcome:
    """Train ``method`` for settings['iterations'] steps, checkpointing every checkpoint_every.

    With ``resume`` and a checkpoint in ``out_dir``, everything (model, optimiser, scheduler,
    scaler, sampling generator, RNG states, metrics-log position) is restored, so the run
    continues exactly as if it had never stopped.
    """
    out_dir = Path(out_dir)
    iterations = int(settings["iterations"])
    ckpt_every = int(settings.get("checkpoint_every") or 0)
    eval_every = int(settings.get("eval_every") or 0)
    log_every = max(1, iterations // 2000)
    optimizer, scheduler = method.make_optimizer()
    scaler = grad_scaler(device, precision)
    gen = make_generator(train_store.device, int(settings["seed"]))
    start = 0
    log_position = None
    ckpt_path = out_dir / CHECKPOINT
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        method.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["cpu_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start = int(state["iteration"])
        log_position = int(state["metrics_position"])
    log = MetricsLog(out_dir / METRICS, resume_position=log_position)

    def checkpoint(iteration: int) -> None:
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
                "metrics_position": log.position(),
                "settings": settings,
            },
        )

    t0 = time.perf_counter()
    bar = tqdm(
        total=iterations,
        initial=start,
        desc=f"train {method.name}",
        disable=not show_progress(quiet),
        dynamic_ncols=True,
    )
    method.model.train()
    try:
        for it in range(start, iterations):
            batch = method.sample_train(train_store, gen)
            with autocast(device, precision):
                loss, metrics = method.train_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            done = it + 1
            if done % log_every == 0 or done == iterations:
                log.write({"iteration": done, **metrics, "lr": optimizer.param_groups[0]["lr"]})
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.3f}")
            if val_store is not None and eval_every > 0 and done % eval_every == 0:
                vgen = make_generator(val_store.device, int(settings["seed"]) + VAL_STREAM)
                with autocast(device, precision):
                    res = method.evaluate(val_store, vgen, int(settings["eval_episodes"]))
                method.model.train()
                log.write({"iteration": done, "val_accuracy": res.accuracy, "val_ci95": res.ci95})
            if ckpt_every > 0 and done % ckpt_every == 0:
                checkpoint(done)
            bar.update(1)
        if start < iterations or not ckpt_path.exists():
            checkpoint(max(start, iterations))
    finally:
        bar.close()
        log.close()
    return TrainOutcome(max(start, iterations), time.perf_counter() - t0, start)


def default_threads() -> int:
    """All cores the process may use (torch's own default), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
