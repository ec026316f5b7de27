"""Load an optimized BLAS into the process before MLX is imported (Linux CPU only).

The mlx-cpu wheel bundles a reference BLAS. MLX resolves `cblas_sgemm` at load time, so a faster BLAS
loaded with RTLD_GLOBAL *before the first `import mlx`* takes its place for float32 matmuls (bench/blas.py
measures it; the README has the figures). We use the pip `mkl` package's libmkl_rt with one thread: MKL's
own threads collapse when another process shares the cores. Debian's OpenBLAS is deliberately not
searched for: its single-row products make LLM decoding slower than the bundled BLAS.

Nothing happens on import: `preload` is called by `ingest.cpu.tune_cpu`, which the program that owns the
process (the CLI, the server, a benchmark) calls before MLX loads. `choice` is "auto" (find MKL), "off"
(use MLX's bundled BLAS) or the path of a BLAS library to load instead. It does nothing on macOS (MLX
uses Accelerate/Metal there) and never raises: on failure MLX still works, only slower, and `status()`
says why.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

_STATE: dict[str, str] = {"blas": "bundled reference BLAS (not preloaded)", "detail": ""}


def _candidates() -> list[Path]:
    names = ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so")
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(sys.executable))])
    return [Path(p) / "lib" / n for p in prefixes for n in names]


def preload(choice: str = "auto") -> None:
    """Load the optimized BLAS once; later calls do nothing."""
    if _STATE.get("done"):
        return
    _STATE["done"] = "1"
    choice = choice.strip() or "auto"
    if not sys.platform.startswith("linux"):
        _STATE["blas"] = "platform default (not Linux)"
        return
    if choice.lower() in ("off", "0", "none", "false"):
        _STATE["blas"] = "bundled reference BLAS (turned off: RAG_BLAS=off)"
        return
    if "mlx.core" in sys.modules:
        _STATE["detail"] = "mlx was imported before rag.tune_cpu(); call it before importing mlx to get the fast BLAS"
        return
    paths = [Path(choice)] if choice.lower() != "auto" else _candidates()
    for path in paths:
        if not path.exists():
            continue
        # One thread: MKL's own threading collapses when another process shares the 2 cores.
        for var in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            _STATE["detail"] = f"could not load {path}: {exc}"
            continue
        _STATE["blas"] = f"{path.name} ({path}), {os.environ.get('MKL_NUM_THREADS', '?')} thread(s)"
        _STATE["loaded"] = "1"
        return
    if not _STATE["detail"]:
        _STATE["detail"] = "no libmkl_rt found; `pip install mkl` for ~15x faster float32 on CPU"


def loaded() -> bool:
    """True if an optimized BLAS was loaded into this process before MLX."""
    return _STATE.get("loaded") == "1"


def tried() -> bool:
    """True once `preload` has run in this process."""
    return _STATE.get("done") == "1"


def status() -> str:
    """One line saying which BLAS MLX uses in this process, for `rag status`."""
    detail = _STATE.get("detail", "")
    return f"{_STATE['blas']}; {detail}" if detail else _STATE["blas"]
