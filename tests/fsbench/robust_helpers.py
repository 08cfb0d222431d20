"""Helpers of the robustness tests: tiny runs through the real CLI in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

# a ProtoNets run on the 25-per-class DoubleMNIST of conftest: ~20 ms an iteration on one thread
TINY_RUN = (
    "run", "protonet", "doubled", "--images-per-class", "25", "--device", "cpu", "--threads", "1",
    "--hidden", "8", "--way", "5", "--train-way", "5", "--query", "5", "--train-query", "5",
    "--episodes", "20", "--quiet",
)  # fmt: skip


def tiny_args(data_root: Path, out: Path, iterations: int, *extra: str) -> list[str]:
    """The CLI arguments of a tiny run into ``out``."""
    return [*TINY_RUN, "--data-root", str(data_root), "--iterations", str(iterations),
            "--out", str(out), *extra]  # fmt: skip


def start(args: list[str]) -> subprocess.Popen:
    """``python -m fsbench ARGS`` in a child process (its own session: signals reach it alone)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "fsbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m fsbench ARGS`` to its end."""
    proc = start(args)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Poll ``predicate()`` until true; fail if ``proc`` ended first or the time runs out."""
    t0 = time.monotonic()
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"the process ended early ({proc.returncode}): {proc.stderr.read()}"
            )
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def lines(path: Path) -> int:
    """Complete lines in a file (0 when absent)."""
    try:
        return Path(path).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def checkpoint_iteration(path: Path) -> int:
    """The iteration a checkpoint file was written at."""
    return int(torch.load(path, map_location="cpu", weights_only=False)["iteration"])


def last_line(text: str) -> str:
    """The last non-empty line of a process's output."""
    rows = [ln for ln in text.splitlines() if ln.strip()]
    return rows[-1] if rows else ""


def leftovers(folder: Path) -> list[str]:
    """Temporary files left in a folder."""
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp" in p.name)
