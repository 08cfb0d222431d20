"""Device choice, determinism, and mixed precision (CUDA only)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import random

import numpy as np
import torch

from fsbench.errors import FsbenchError
from fsbench.settings import PRECISIONS


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is a user error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FsbenchError(
                "--device cuda: no CUDA GPU is available here (torch.cuda.is_available() is False); "
                "use --device cpu or auto"
            )
        return torch.device(choice)
    raise FsbenchError(f"--device must be auto, cpu or cuda, got {choice!r}")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


def configure_backend(device: torch.device) -> None:
    """Deterministic kernels and malloc that keeps freed memory on CPU; cudnn.benchmark on CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.use_deterministic_algorithms(False)
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)
        keep_freed_memory()


def resolve_precision(choice: str, device: torch.device) -> str:
    """fp32 (TF32 matmuls on CUDA) unless bf16/fp16 autocast is asked for, which needs CUDA.

    Reproductions train in fp32: mixed precision is a speed option a user turns on, never a
    silent default behind a number printed beside a published one.
    """
    if choice not in PRECISIONS:
        raise FsbenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if device.type != "cuda" and choice != "fp32":
        raise FsbenchError(f"--precision {choice} is for CUDA only; use fp32 on CPU")
    if choice == "bf16" and not torch.cuda.is_bf16_supported():
        raise FsbenchError("--precision bf16: this GPU does not support bfloat16; use fp32 or fp16")
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
