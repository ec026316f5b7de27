"""Decode speed of the real float32 LLMs against the memory-bandwidth bound, and time to first token.

Generating one token reads every weight once, so decode can go no faster than
    bound (tokens/s) = read bandwidth (bytes/s) / weight bytes.
The read bandwidth is measured here, in the same run, the way decode uses the machine: one thread
streaming a large float32 matrix through a matrix-vector product (MKL sgemv through MLX, the kernel
decode runs) and through numpy's sum (a plain read), best of both; a buffer far larger than the caches.
Then each model prefills a prompt and decodes `--tokens` tokens (greedy, through rag's MLXGenerator),
`--repeat` times, bandwidth and decode alternating; medians are printed with decode / bound. Each repeat
also decodes once with mlx-lm's own rope (`mx.fast.rope`) in place of rag's one-matmul decode rope
(rag/_rope.py), so the last column is that change's speed-up, measured side by side.

    python bench/decode.py --models ~/.cache/rag-test-models/SmolLM2-135M-Instruct \\
        ~/.cache/rag-test-models/Qwen2.5-0.5B-Instruct --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rag
from rag.generate import MLXGenerator  # noqa: E402

rag.tune_cpu(os.environ.get("RAG_BLAS", "auto"))  # before mlx loads, as the CLI does

PROMPT_WORDS = "The boiler manual explains how to reset the heating system after a power cut. " * 40


def read_bandwidth(mbytes: int = 1024) -> dict[str, float]:
    """GB/s reading a float32 buffer of `mbytes` MB: MLX matrix-vector product and numpy sum (best of 5)."""
    import mlx.core as mx  # after rag.tune_cpu() above
    import numpy as np

    cols = 4096
    rows = mbytes * 1024 * 1024 // (4 * cols)
    w = mx.random.normal((rows, cols), dtype=mx.float32)
    v = mx.random.normal((cols,), dtype=mx.float32)
    mx.eval(w, v)
    gemv = []
    for _ in range(5):
        t = time.perf_counter()
        mx.eval(w @ v)
        gemv.append(rows * cols * 4 / (time.perf_counter() - t) / 1e9)
    a = np.array(w)
    del w
    total = []
    for _ in range(5):
        t = time.perf_counter()
        a.sum()
        total.append(a.nbytes / (time.perf_counter() - t) / 1e9)
    return {"gemv_gbs": max(gemv), "numpy_sum_gbs": max(total)}


@contextmanager
def stock_rope(model):
    """Inside the block, `model` runs mlx-lm's own `nn.RoPE` instead of rag's `DecodeRoPE`."""
    import mlx.nn as nn

    from rag._rope import DecodeRoPE, swap_modules

    def stock(rope: DecodeRoPE) -> nn.RoPE:
        return nn.RoPE(rope.dims, rope.traditional, rope.base, rope.scale)

    swapped = swap_modules(model, lambda m: isinstance(m, DecodeRoPE), stock)
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def weight_bytes(model) -> int:
    from mlx.utils import tree_flatten

    return sum(p.nbytes for _, p in tree_flatten(model.parameters()))


def decode_run(gen: MLXGenerator, tokens: int) -> dict[str, float]:
    gen._cache = None  # no prompt-cache reuse: measure a full prefill every time
    messages = [{"role": "user", "content": PROMPT_WORDS + "\nWhat does the manual explain?"}]
    started = time.perf_counter()
    first = None
    last = None
    for piece in gen.stream(messages, max_tokens=tokens):
        if first is None:
            first = time.perf_counter() - started
        last = piece
    return {
        "ttft_s": first or 0.0,
        "prompt_tokens": last.prompt_tokens,
        "prompt_tps": last.prompt_tps,
        "generated": last.generated_tokens,
        "decode_tps": last.generation_tps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rows = []
    for spec in args.models:
        gen = MLXGenerator(spec)
        size = weight_bytes(gen.model)
        decode_run(gen, 4)  # warm-up
        bws, runs, stock = [], [], []
        for _ in range(args.repeat):
            bw = read_bandwidth()
            bws.append(max(bw.values()))
            runs.append(decode_run(gen, args.tokens))
            with stock_rope(gen.model):
                stock.append(decode_run(gen, args.tokens)["decode_tps"])
        bandwidth = statistics.median(bws)
        decode = statistics.median(r["decode_tps"] for r in runs)
        bound = bandwidth * 1e9 / size
        rows.append(
            {
                "model": Path(spec).name,
                "weights_gb": size / 1e9,
                "bandwidth_gbs": bandwidth,
                "bound_tps": bound,
                "decode_tps": decode,
                "decode_vs_bound": decode / bound,
                "prompt_tokens": runs[0]["prompt_tokens"],
                "prefill_tps": statistics.median(r["prompt_tps"] for r in runs),
                "ttft_s": statistics.median(r["ttft_s"] for r in runs),
                "stock_rope_decode_tps": statistics.median(stock),
                "rope_speedup": decode / statistics.median(stock),
                "repeats": args.repeat,
            }
        )
        del gen
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    head = f"{'model':<24} {'weights GB':>10} {'read GB/s':>9} {'bound tok/s':>11} {'decode tok/s':>12} {'decode/bound':>12} {'prefill tok/s':>13} {'TTFT s':>7} {'stock-rope tok/s':>16} {'speed-up':>8}"
    print(head)
    for r in rows:
        print(
            f"{r['model']:<24} {r['weights_gb']:>10.2f} {r['bandwidth_gbs']:>9.1f} {r['bound_tps']:>11.1f} "
            f"{r['decode_tps']:>12.2f} {r['decode_vs_bound']:>12.2f} {r['prefill_tps']:>13.1f} {r['ttft_s']:>7.2f} "
            f"{r['stock_rope_decode_tps']:>16.2f} {r['rope_speedup']:>7.2f}x"
        )
    print(f"(medians of {args.repeat}; prompt {rows[0]['prompt_tokens']} tokens, {args.tokens} generated)")


if __name__ == "__main__":
    main()
