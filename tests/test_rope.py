"""The one-matmul decode rope (rag/_rope.py) against a float64 reference, its fall-backs to
`mx.fast.rope`, and a real model's logits with it and without it."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from rag._rope import DecodeRoPE, _Rotations


def reference(x: mx.array, dims: int, traditional: bool, base: float, scale: float, position: int) -> np.ndarray:
    """Rotary embedding of a single position, computed in float64 from its definition."""
    out = np.array(x, dtype=np.float64)
    theta = scale * position * base ** (-np.arange(0, dims, 2) / dims)
    cos, sin = np.cos(theta), np.sin(theta)
    pick = (slice(0, dims, 2), slice(1, dims, 2)) if traditional else (slice(0, dims // 2), slice(dims // 2, dims))
    a, b = out[..., pick[0]].copy(), out[..., pick[1]].copy()
    out[..., pick[0]], out[..., pick[1]] = a * cos - b * sin, a * sin + b * cos
    return out


@pytest.mark.parametrize("traditional", [False, True])
@pytest.mark.parametrize("dims", [64, 32])  # 32 of 64 features: the rest must pass through
@pytest.mark.parametrize("position", [0, 5, 3000])
def test_single_position_matches_the_float64_definition(traditional, dims, position):
    stock = nn.RoPE(dims, traditional=traditional, base=10000, scale=0.5)
    ours = DecodeRoPE(stock, _Rotations(dims, traditional, 10000.0, 0.5))
    x = mx.random.normal((2, 9, 1, 64), key=mx.random.key(position))
    want = reference(x, dims, traditional, 10000.0, 0.5, position)
    err = np.abs(np.array(ours(x, position)) - want).max()
    stock_err = np.abs(np.array(stock(x, offset=position)) - want).max()
    assert err < 1e-5
    assert err <= stock_err + 1e-6  # at least as close as mx.fast.rope (which drifts at large positions)


def test_prompts_half_precision_and_array_offsets_use_the_stock_rope():
    stock = nn.RoPE(64)
    ours = DecodeRoPE(stock, _Rotations(64, False, 10000.0, 1.0))
    prompt = mx.random.normal((1, 4, 7, 64))
    assert mx.array_equal(ours(prompt, 3), stock(prompt, offset=3))
    half = mx.random.normal((1, 4, 1, 64)).astype(mx.float16)
    assert mx.array_equal(ours(half, 3), stock(half, offset=3))
    step = mx.random.normal((1, 4, 1, 64))
    assert mx.array_equal(ours(step, mx.array(3)), stock(step, offset=mx.array(3)))


def test_a_loaded_model_decodes_with_it_and_keeps_its_logits(smollm2):
    from mlx_lm.models.cache import make_prompt_cache

    model = smollm2.model
    ropes = [layer.self_attn.rope for layer in model.model.layers]
    assert all(type(r) is DecodeRoPE for r in ropes)
    assert len({id(r._rotations) for r in ropes}) == 1  # one matrix per step, shared by every layer

    prompt = mx.array([smollm2.encode(smollm2.format([{"role": "user", "content": "Name three rivers."}]))])

    def logits_of_steps(n: int) -> list[np.ndarray]:
        cache = make_prompt_cache(model)
        logits = model(prompt, cache=cache)[:, -1, :]
        out = []
        for token in (11, 504, 29)[:n]:
            logits = model(mx.array([[token]]), cache=cache)[:, -1, :]
            out.append(np.array(logits))
        return out

    with_ours = logits_of_steps(3)
    for layer, stock in zip(model.model.layers, ropes, strict=True):
        layer.self_attn.rope = nn.RoPE(stock.dims, stock.traditional, stock.base, stock.scale)
    try:
        with_stock = logits_of_steps(3)
    finally:
        for layer, rope in zip(model.model.layers, ropes, strict=True):
            layer.self_attn.rope = rope
    for a, b in zip(with_ours, with_stock, strict=True):
        assert np.abs(a - b).max() < 1e-2 * np.abs(b).max()
        assert a.argmax() == b.argmax()
