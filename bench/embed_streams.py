"""Embedding throughput with one MLX CPU stream vs one per core, side by side in one run.

    python bench/embed_streams.py --embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2 \
        [--data ../shared/data/scifact/corpus.jsonl] [--n 160] [--repeat 2] [--json]

Texts are SciFact abstracts (title + text). Prints texts/s per stream count (median) and the largest
difference between the vectors the two settings produce.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

import rag

rag.tune_cpu(os.environ.get("RAG_BLAS", "auto"))  # before mlx loads, as the CLI does


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embed-model", required=True)
    p.add_argument("--data", default="../shared/data/scifact/corpus.jsonl")
    p.add_argument("--n", type=int, default=160)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import mlx.core as mx

    texts = []
    with open(args.data) as f:
        for line in f:
            doc = json.loads(line)
            texts.append(f"{doc['title']}\n\n{doc['text']}")
            if len(texts) == args.n:
                break
    embedder = rag.MLXEmbedder(args.embed_model)
    embedder.embed(["warm-up"])
    cores = len(embedder._streams())
    rates: dict[int, list[float]] = {1: [], cores: []}
    vectors: dict[int, np.ndarray] = {}
    for _ in range(args.repeat):
        for n in rates:
            embedder._local.streams = [mx.new_stream(mx.cpu) for _ in range(n)]
            started = time.perf_counter()
            vectors[n] = embedder.embed(texts)
            rates[n].append(len(texts) / (time.perf_counter() - started))
    result = {f"{n}_streams_texts_per_s": statistics.median(r) for n, r in rates.items()}
    result["ratio"] = result[f"{cores}_streams_texts_per_s"] / result["1_streams_texts_per_s"]
    result["max_abs_diff"] = float(np.abs(vectors[1] - vectors[cores]).max())
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:<26}{v:.4g}" for k, v in result.items()))


if __name__ == "__main__":
    main()
