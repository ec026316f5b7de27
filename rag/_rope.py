"""Rotary position embedding for one-token decode steps on the CPU, as one small matmul.

MLX's CPU backend has no rope kernel: `mx.fast.rope` runs as a dozen separate small ops, and a decoder
calls it twice per layer for every generated token (bench/decode.py measures the share). For a single
position the rotation is one fixed (width × width) matrix, the same in
every layer and for queries and keys alike, so it is built once per position (in float64, then
float32) and each call becomes one matmul.

`speed_up_decode(model)` swaps every plain `nn.RoPE` in an mlx-lm model for `DecodeRoPE`. It only acts
on float32 single-position calls with an integer offset; prompts (many positions), batched offsets and
half-precision inputs go to the original `mx.fast.rope` unchanged. Scaled variants (Llama-3, YaRN,
SuScaled) are other classes and are left alone. It changes no weights and no cache, and is not used on
the GPU, where `mx.fast.rope` is a real kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ingest import fastpaths
from ingest.models import mlx_on_cpu


class _Rotations:
    """The rotation matrix for one position, kept for the position last asked for (one decode step)."""

    def __init__(self, dims: int, traditional: bool, base: float, scale: float) -> None:
        self.dims, self.traditional = dims, traditional
        self.freqs = scale * base ** (-np.arange(0, dims, 2, dtype=np.float64) / dims)
        self._last: tuple[tuple[int, int], mx.array] | None = None

    def matrix(self, position: int, width: int) -> mx.array:
        last = self._last  # read once: another thread may replace it meanwhile
        if last is not None and last[0] == (position, width):
            return last[1]
        theta = position * self.freqs
        cos, sin = np.cos(theta), np.sin(theta)
        r = np.eye(width, dtype=np.float64)  # features past `dims` pass through unrotated
        half = self.dims // 2
        i = np.arange(half)
        # Row vector times r: out[a] = x[a]·cos - x[b]·sin, out[b] = x[a]·sin + x[b]·cos for each pair (a, b).
        a, b = (2 * i, 2 * i + 1) if self.traditional else (i, i + half)
        r[a, a], r[b, b], r[b, a], r[a, b] = cos, cos, -sin, sin
        m = mx.array(r.astype(np.float32))
        self._last = ((position, width), m)
        return m


class DecodeRoPE(nn.RoPE):
    """`nn.RoPE` whose single-position float32 calls are one matmul with a shared rotation matrix."""

    def __init__(self, rope: nn.RoPE, rotations: _Rotations) -> None:
        super().__init__(rope.dims, traditional=rope.traditional, base=rope.base, scale=rope.scale)
        self._rotations = rotations

    def __call__(self, x: mx.array, offset: Any = 0) -> mx.array:
        if x.shape[-2] != 1 or x.dtype != mx.float32 or not isinstance(offset, int):
            return super().__call__(x, offset)
        return x @ self._rotations.matrix(offset, x.shape[-1])


def speed_up_decode(model: nn.Module) -> int:
    """Replace each plain `nn.RoPE` in `model` by a `DecodeRoPE` where MLX runs on the CPU; returns how many."""
    if not mlx_on_cpu() or not fastpaths.allowed("decode-rope"):  # GPU, or an nn.RoPE we don't know
        return 0
    shared: dict[tuple, _Rotations] = {}

    def decode_rope(rope: nn.RoPE) -> DecodeRoPE:
        key = (rope.dims, rope.traditional, float(rope.base), float(rope.scale))
        if key not in shared:
            shared[key] = _Rotations(*key)
        return DecodeRoPE(rope, shared[key])

    return len(swap_modules(model, lambda m: type(m) is nn.RoPE, decode_rope))


def swap_modules(
    model: nn.Module, match: Callable[[nn.Module], bool], make: Callable[[Any], nn.Module]
) -> list[tuple[nn.Module, str, nn.Module]]:
    """Replace every submodule `match` accepts by `make(submodule)`; returns (parent, attribute, the
    replaced submodule) for each, so a caller can put them back."""
    swapped = []
    for parent in model.modules():
        for name, child in parent.children().items():
            if isinstance(child, nn.Module) and match(child):
                setattr(parent, name, make(child))
                swapped.append((parent, name, child))
    return swapped
