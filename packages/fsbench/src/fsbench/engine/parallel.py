"""Run independent settings (the cells of a table) in worker processes, results as if sequential.

Each cell is seeded and writes into its own directory, so running cells side by side changes
nothing but the wall time, provided each keeps the same torch thread count. Workers are spawned
(a fresh interpreter: no forked OpenMP or CUDA state) and show no progress bars. A stop signal
reaches every worker (forwarded by this process), each checkpoints its cell and stops; the pool
is shut down before ``RunStopped`` leaves ``run_jobs``, so no worker outlives it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsbench.engine import stop
from fsbench.engine.run import load_options, load_store, run_setting
from fsbench.errors import FsbenchError
from fsbench.settings import complete


@dataclass(frozen=True)
class CellJob:
    """One setting to run into ``out``: continue its checkpoint, or start again there."""

    settings: dict
    out: Path
    data_root: str | Path | None = None
    device: str = "auto"
    quiet: bool = False
    resume: bool = False
    deadline: float | None = None  # time.time() by which training stops (--time-limit)
    time_limit: float | None = None  # the --time-limit (minutes) behind the deadline


def run_job(job: CellJob) -> dict:
    """Run one job in this process; the workers' entry point. A stop signal or a deadline that
    has passed before it starts is ``RunStopped`` with nothing written."""
    from fsbench.engine.device import allow_process_tuning

    allow_process_tuning()  # a worker of the command line, as the command's own process
    request = stop.StopRequest(job.deadline, job.time_limit)
    halt = request.before_start()
    if halt is not None:
        raise stop.RunStopped(None, None, *halt, where=str(job.out))
    try:
        return run_setting(
            job.settings,
            job.out,
            data_root=job.data_root,
            device=job.device,
            overwrite=not job.resume,
            resume=job.resume,
            quiet=job.quiet,
            time_limit=job.time_limit,
            started=(
                None
                if job.deadline is None or job.time_limit is None
                else job.deadline - 60 * job.time_limit
            ),
        )
    except stop.RunStopped as exc:
        exc.where = exc.where or str(job.out)
        raise


def prepare_data(jobs: Sequence[CellJob]) -> None:
    """Generate or decode each distinct dataset once, so parallel workers only read caches."""
    import torch

    from fsbench.data import load_split

    seen: set[str] = set()
    for job in jobs:
        options = load_options(job.settings)
        key = repr((job.settings["dataset"], sorted(options.items()), job.data_root))
        if key in seen:
            continue
        seen.add(key)
        settings = complete(job.settings)
        splits = [settings["train_split"], "test"]
        if int(settings["eval_every"]) > 0:
            splits.append("val")
        for split in splits:
            load_store(
                load_split,
                job.settings["dataset"],
                split,
                data_root=job.data_root,
                device=torch.device("cpu"),
                options=options,
            )


def run_jobs(
    jobs: Sequence, workers: int = 1, runner: Callable[[Any], dict] = run_job
) -> Iterator[tuple[int, dict]]:
    """Yield ``(index, result)`` as each job finishes: in this process, or in ``workers`` processes.

    ``runner`` runs one job (a module-level function, so that workers can unpickle it; the
    detection table passes its own)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            yield i, runner(job)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=context,
        initializer=stop.install_handlers,  # a stop signal sets a flag in the worker, too
    )

    def worker_pids() -> list[int]:
        return [p.pid for p in list(getattr(pool, "_processes", {}).values()) if p.pid]

    pending: dict[Future, int] = {pool.submit(runner, job): i for i, job in enumerate(jobs)}
    stopped: list[stop.RunStopped] = []
    try:
        with stop.forward_signals(worker_pids):
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    index = pending.pop(fut)
                    try:
                        result = fut.result()
                    except stop.RunStopped as exc:
                        stopped.append(exc)
                        for other in pending:  # cells not started yet stay unstarted
                            other.cancel()
                        continue
                    except BrokenProcessPool as exc:
                        raise FsbenchError(
                            f"a worker process died while running cell {index} ({exc}); out of "
                            "memory? try fewer --jobs"
                        ) from None
                    yield index, result
                pending = {f: i for f, i in pending.items() if not f.cancelled()}
    finally:
        # on an error drop the queued cells; running ones finish (or stop at) their iteration
        pool.shutdown(wait=True, cancel_futures=True)
    if stopped:
        first = min(stopped, key=lambda e: e.iteration is None)  # one that was running, if any
        others = len(stopped) - 1
        if others:
            first.where += f" (and {others} other cell{'s' if others > 1 else ''})"
        raise first
