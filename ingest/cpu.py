"""CPU tuning for MLX, done only when the program that owns the process asks for it.

`tune_cpu()` loads an optimized BLAS for MLX's float32 matmuls (ingest/_blas.py: MKL with one thread,
which also sets MKL_NUM_THREADS/OMP_NUM_THREADS=1 where unset) and raises glibc's malloc thresholds so
MLX's large temporaries are reused (ingest/_malloc.py). Both change the whole process — a host app's
numpy or PyTorch would run single-threaded and keep more memory — so importing `rag` or `ingest` does
neither: the `rag` CLI (and so `rag serve` and `rag mcp`) and the benchmarks call `tune_cpu()` first
thing, and an app embedding the library may call it, before anything imports mlx. Linux only; it never
raises. `cpu_status()` says what was done, for `rag status` and `rag doctor`.
"""

from __future__ import annotations

import sys
import warnings

from ingest import _blas, _malloc

_STATE = {"malloc": "not tuned"}


class CpuTuningWarning(RuntimeWarning):
    """`tune_cpu` came too late for the BLAS: mlx was already imported."""


def tune_cpu(blas: str = "auto", malloc: bool = True) -> str:
    """Tune this process for MLX on the CPU (once; later calls do nothing) and return `cpu_status()`.

    Args:
        blas: "auto" (load pip `mkl`'s libmkl_rt if installed), "off" (keep MLX's bundled BLAS), or the
            path of a BLAS shared library to load instead.
        malloc: raise glibc's mmap/trim thresholds (skipped where MALLOC_*_THRESHOLD_ are set).

    Call it before importing mlx: if mlx is already loaded, the BLAS can't take effect, and a
    CpuTuningWarning says so (once).
    """
    if not _blas.tried():
        too_late = "mlx.core" in sys.modules and sys.platform.startswith("linux") and blas.strip().lower() != "off"
        _blas.preload(blas)
        if too_late:
            warnings.warn(CpuTuningWarning(_blas.status()), stacklevel=2)
        if malloc:
            _STATE["malloc"] = "thresholds 32 MB mmap / 64 MB trim" if _malloc.tune() else "left as is"
    return cpu_status()


def cpu_status() -> str:
    """One line: which BLAS MLX uses in this process, and what was done to malloc."""
    if not _blas.tried():
        return "not tuned (rag.tune_cpu() was not called): MLX's bundled BLAS, malloc as is"
    return f"{_blas.status()}; malloc {_STATE['malloc']}"


def blas_loaded() -> bool:
    """True if an optimized BLAS was loaded into this process before MLX."""
    return _blas.loaded()
