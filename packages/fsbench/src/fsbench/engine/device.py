"""Device choice, determinism, and mixed precision (CUDA only).

A run changes process-wide torch state (seeds, thread count, deterministic-algorithm and cuDNN
flags) only inside ``run_scope``, which puts everything back as it found it: a library call has
no lasting side effect. ``set_deterministic`` is the explicit process-wide switch, and
``allow_process_tuning`` (called by the command line) lets runs tune malloc for the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fsbench.settings import PRECISIONS, SettingError

# set_deterministic's choice (None: the engine's own per device) and whether this process lets
# runs tune malloc (the command line does; a library call does not)
_state: dict[str, Any] = {"deterministic": None, "tune_process": False}


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is a user error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingError(
                "{device} cuda: no CUDA GPU is available here (torch.cuda.is_available() is "
                "False); use {device} cpu or auto",
                "device",
            )
        return torch.device(choice)
    raise SettingError(f"{{device}} must be auto, cpu or cuda, got {choice!r}", "device")


def seed_everything(seed: int, cuda: bool = True) -> None:
    """Seed python, numpy and torch (all devices; with ``cuda`` False the CPU only, so that a
    CPU run leaves the GPUs' generators alone)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if cuda:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Make glibc malloc reuse freed memory instead of returning it to the kernel; False if not glibc.

    glibc serves every block above 32 MB with a fresh mmap and unmaps it on free, so each training
    step page-faults (and zeroes) its activations anew: ProtoNets 20-way 64x64 spent half its time
    in the kernel. The same as ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824``.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to tune
        return False


def allow_process_tuning(enabled: bool = True) -> None:
    """Let runs in this process tune it for training (malloc keeps freed memory on CPU, see
    ``keep_freed_memory``): the command line's choice; a library caller may make it too."""
    _state["tune_process"] = bool(enabled)


def set_deterministic(enabled: bool | None = True) -> None:
    """Deterministic kernels for this process and every run in it (the explicit switch).

    True: ``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN deterministic and
    not benchmarking, also in CUDA runs (slower, repeatable). False: all three off, also in CPU
    runs. None: back to the engine's own choice per run (deterministic on CPU; cuDNN benchmark on
    CUDA), applied inside each run only.
    """
    _state["deterministic"] = enabled
    if enabled is None:
        return
    torch.use_deterministic_algorithms(bool(enabled), warn_only=True)
    torch.backends.cudnn.deterministic = bool(enabled)
    torch.backends.cudnn.benchmark = False


def configure_backend(device: torch.device) -> None:
    """Deterministic kernels on CPU, cudnn.benchmark and TF32 on CUDA (``set_deterministic``
    overrides either); malloc that keeps freed memory on CPU when the process allows it."""
    forced = _state["deterministic"]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = not forced
        if forced is not None:  # else cuDNN's deterministic flag stays as the caller set it
            torch.backends.cudnn.deterministic = forced
        torch.use_deterministic_algorithms(bool(forced), warn_only=bool(forced))
    else:
        torch.use_deterministic_algorithms(forced is not False, warn_only=True)
        if _state["tune_process"]:
            keep_freed_memory()


@dataclass
class ProcessState:
    """What a run may change in the process: RNG states, threads, backend flags."""

    python_rng: Any
    numpy_rng: Any
    threads: int
    deterministic: bool
    warn_only: bool
    cudnn_benchmark: bool
    cudnn_deterministic: bool
    matmul_tf32: bool
    cudnn_tf32: bool

    @classmethod
    def save(cls) -> ProcessState:
        return cls(
            random.getstate(),
            np.random.get_state(),
            torch.get_num_threads(),
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic,
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
        )

    def restore(self) -> None:
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=self.warn_only)
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.backends.cuda.matmul.allow_tf32 = self.matmul_tf32
        torch.backends.cudnn.allow_tf32 = self.cudnn_tf32


@contextlib.contextmanager
def run_scope(device: torch.device, seed: int | None, threads: int | None = None) -> Iterator[None]:
    """Inside: the run's thread count, backend flags and global seeds (python, numpy, torch);
    after: the process as it was before (RNG states of the CPU and of ``device`` included), so
    a library run leaves no trace and gives the numbers of the command-line run."""
    saved = ProcessState.save()
    # torch.manual_seed seeds every GPU: keep (and give back) the states of them all
    cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        try:
            if threads:
                torch.set_num_threads(int(threads))
            configure_backend(device)
            if seed is not None:
                seed_everything(int(seed), cuda=device.type == "cuda")
            yield
        finally:
            saved.restore()


def resolve_precision(choice: str, device: torch.device) -> str:
    """fp32 (TF32 matmuls on CUDA) unless bf16/fp16 autocast is asked for, which needs CUDA.

    Reproductions train in fp32: mixed precision is a speed option a user turns on, never a
    silent default behind a number printed beside a published one.
    """
    if choice not in PRECISIONS:
        raise SettingError(
            f"{{precision}} must be one of {', '.join(PRECISIONS)}, got {choice!r}", "precision"
        )
    if device.type != "cuda" and choice != "fp32":
        raise SettingError(f"{{precision}} {choice} is for CUDA only; use fp32 on CPU", "precision")
    if choice == "bf16" and not torch.cuda.is_bf16_supported():
        raise SettingError(
            "{precision} bf16: this GPU does not support bfloat16; use fp32 or fp16", "precision"
        )
    return choice


def autocast(device: torch.device, precision: str):
    """The autocast context for a precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))
