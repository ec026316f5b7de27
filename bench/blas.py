"""BLAS preload on vs off, side by side in one run: indexing chunks/s and LLM decode tokens/s.

    python bench/blas.py --data ../shared/data/pdfs --embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2 \
        --llm ~/.cache/rag-test-models/SmolLM2-135M-Instruct [--repeat 3] [--json]

Each measurement runs in a fresh subprocess (the BLAS must be chosen before MLX loads), alternating
on/off so machine noise hits both; medians are reported with the on/off ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def child(args: argparse.Namespace) -> dict:
    import rag

    rag.tune_cpu(os.environ.get("RAG_BLAS", "auto"))

    result: dict = {"blas": rag.cpu_status()}
    if args.data:
        with tempfile.TemporaryDirectory() as tmp:
            index = rag.open_index(tmp, embed_model=args.embed_model)
            index.embedder  # load outside the timed region  # noqa: B018
            report = index.add(*args.data)
        result |= {
            "files": len(report.added),
            "failed": len(report.failed),
            "chunks": report.chunks,
            "index_s": report.seconds,
            "chunks_per_s": report.chunks_per_second,
        }
    if args.llm:
        gen = rag.MLXGenerator(args.llm)
        messages = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
        *_, last = gen.stream(messages, max_tokens=args.tokens)
        result |= {"prompt_tps": last.prompt_tps, "decode_tps": last.generation_tps, "tokens": last.generated_tokens}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="*", default=[])
    p.add_argument("--embed-model")
    p.add_argument("--llm")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for _ in range(args.repeat):
        for mode, env in (("on", "auto"), ("off", "off")):
            cmd = [sys.executable, __file__, "--child", "--tokens", str(args.tokens)] + sys.argv[1:]
            started = time.perf_counter()
            out = subprocess.run(cmd, env=dict(os.environ, RAG_BLAS=env), capture_output=True, text=True, check=True)
            runs[mode].append(
                json.loads(out.stdout.strip().splitlines()[-1]) | {"wall_s": time.perf_counter() - started}
            )
            print(f"  {mode}: {runs[mode][-1]}", file=sys.stderr)
    keys = [k for k in ("chunks_per_s", "index_s", "decode_tps", "prompt_tps") if k in runs["on"][0]]
    table = {k: {m: statistics.median(r[k] for r in runs[m]) for m in runs} for k in keys}
    for k in keys:
        table[k]["ratio_on_off"] = table[k]["on"] / table[k]["off"] if table[k]["off"] else float("nan")
    if args.json:
        print(json.dumps({"table": table, "runs": runs}, indent=2))
        return
    first = runs["on"][0]
    print(f"BLAS on:  {first['blas']}\nBLAS off: {runs['off'][0]['blas']}")
    if "chunks" in first:
        print(
            f"data: {' '.join(args.data)} — {first['files']} files indexed, {first['failed']} failed, {first['chunks']} chunks"
        )
    print(f"{'metric':<14}{'on':>12}{'off':>12}{'on/off':>10}   (median of {args.repeat})")
    for k in keys:
        row = table[k]
        print(f"{k:<14}{row['on']:>12.2f}{row['off']:>12.2f}{row['ratio_on_off']:>9.1f}x")


if __name__ == "__main__":
    main()
