"""Hybrid fusion rules compared on a BEIR collection: chosen on one qrels split, reported on another.

    python bench/fusion.py --workspace /tmp/scifact-ws [--data ../shared/data/scifact] [--choose train] [--report test]

The workspace is one `rag eval retrieval DATA --workspace DIR` made (its index of the corpus, one file
per document). For every judged query of both splits, the vector and full-text candidate lists are
fetched once from that index (the store calls `rag.retrieve` makes, top `--depth` chunks each, 200 as
in `rag eval retrieval`), then
each fusion rule ranks documents from them and is scored with nDCG@10:
  rrf over chunks      reciprocal rank fusion of chunks, sum of w/(k + rank) (what ships, with k=60, w=1)
  rrf over documents   the same over documents: each list's chunks aggregated to their best per document
  convex               alpha * cosine + (1 - alpha) * BM25 per chunk, each min-max normalised per query
with k, the text list's weight, alpha and the candidates per list (50 or 200) on a grid.
Every rule is scored on `--choose` (SciFact's train split, 809 queries) only; the best rule of each
family and the baseline are then scored once on `--report`, with 95% bootstrap intervals and the paired
difference to the baseline. Documents are ranked by their best chunk, as in `rag eval retrieval`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rag
from ingest.normalize import normalize_text
from ingest.store import Store
from rag.eval import retrieval as beir
from rag.eval.metrics import bootstrap_ci, ndcg_at, paired_difference

Hits = list[tuple[str, str, float]]  # (document id, chunk id, score), best first


def candidates(store: Store, embedder, text: str, depth: int) -> tuple[Hits, Hits]:
    query = normalize_text(text)
    vector = embedder.embed([embedder.query_prefix + query])[0]
    vec = [(Path(r.path).stem, r.id, s) for r, s in store.search(vector, depth)]
    txt = [(Path(r.path).stem, r.id, s) for r, s in store.search_text(query, depth)]
    return vec, txt


def documents(scored: dict[str, float]) -> list[str]:
    return sorted(scored, key=lambda d: -scored[d])


def _best_chunk(chunk_scores: dict[str, float], doc_of: dict[str, str]) -> list[str]:
    """Documents ranked by their best chunk (as `rag eval retrieval` ranks them)."""
    scores: dict[str, float] = {}
    for cid, value in chunk_scores.items():
        doc = doc_of[cid]
        scores[doc] = max(scores.get(doc, float("-inf")), value)
    return documents(scores)


def rrf_chunks(vec: Hits, txt: Hits, k: float = 60, w_vec: float = 1.0, w_txt: float = 1.0, cut: int = 50):
    """RRF over chunks (what rag.retrieve.fuse does), then documents by their best chunk."""
    fused: dict[str, float] = {}
    doc_of: dict[str, str] = {}
    for hits, weight in ((vec[:cut], w_vec), (txt[:cut], w_txt)):
        for rank, (doc, cid, _) in enumerate(hits, start=1):
            fused[cid] = fused.get(cid, 0.0) + weight / (k + rank)
            doc_of[cid] = doc
    return _best_chunk(fused, doc_of)


def rrf_documents(vec: Hits, txt: Hits, k: float = 60, w_vec: float = 1.0, w_txt: float = 1.0, cut: int = 50):
    """RRF over documents: each list ranks documents by their best chunk first, then the ranks fuse."""
    fused: dict[str, float] = {}
    for hits, weight in ((vec[:cut], w_vec), (txt[:cut], w_txt)):
        seen: list[str] = []
        for doc, _, _ in hits:
            if doc not in seen:
                seen.append(doc)
        for rank, doc in enumerate(seen, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return documents(fused)


def convex(vec: Hits, txt: Hits, alpha: float = 0.5, cut: int = 50) -> list[str]:
    """alpha * normalised cosine + (1 - alpha) * normalised BM25 per chunk (each list min-max normalised
    over its candidates; absent = 0), then documents by their best chunk."""
    fused: dict[str, float] = {}
    doc_of: dict[str, str] = {}
    for hits, weight in ((vec[:cut], alpha), (txt[:cut], 1 - alpha)):
        if not hits:
            continue
        values = [s for _, _, s in hits]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        for doc, cid, s in hits:
            fused[cid] = fused.get(cid, 0.0) + weight * (s - low) / span
            doc_of[cid] = doc
    return _best_chunk(fused, doc_of)


def single(hits: Hits) -> list[str]:
    return _best_chunk({cid: -rank for rank, (_, cid, _) in enumerate(hits)}, {cid: d for d, cid, _ in hits})


def score(rule: Callable[[Hits, Hits], list[str]], runs: dict, qrels: dict) -> dict[str, float]:
    return {q: ndcg_at(rule(*runs[q]), qrels[q], 10) for q in runs}


def mean(per_query: dict[str, float]) -> float:
    return sum(per_query.values()) / len(per_query)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/scifact"))
    parser.add_argument("--choose", default="train")
    parser.add_argument("--report", default="test")
    parser.add_argument("--depth", type=int, default=200)
    args = parser.parse_args()
    rag.tune_cpu()
    store = Store.open(Path(args.workspace) / "index")
    embedder = rag.MLXEmbedder(store.meta["embedder"]["id"])
    splits = {}
    for split in (args.choose, args.report):
        data = beir.load_beir(Path(args.data), split)
        qrels = {q: {beir._safe(d): g for d, g in data.qrels[q].items()} for q in data.queries}
        runs = {q: candidates(store, embedder, data.queries[q], args.depth) for q in data.queries}
        splits[split] = (runs, qrels)
        print(f"{split}: {len(runs)} queries fetched", file=sys.stderr)
    runs, qrels = splits[args.choose]

    grid = list(itertools.product((10, 30, 60, 100), (0.5, 0.75, 1.0, 1.5, 2.0), (50, 200)))
    families: dict[str, list[tuple[str, Callable]]] = {
        "rrf over chunks": [
            (f"rrf-chunks k={k} w_txt={w} cut={c}", lambda v, t, k=k, w=w, c=c: rrf_chunks(v, t, k, 1.0, w, c))
            for k, w, c in grid
        ],
        "rrf over documents": [
            (f"rrf-docs k={k} w_txt={w} cut={c}", lambda v, t, k=k, w=w, c=c: rrf_documents(v, t, k, 1.0, w, c))
            for k, w, c in grid
        ],
        "convex": [
            (f"convex alpha={a} cut={c}", lambda v, t, a=a, c=c: convex(v, t, a, c))
            for a, c in itertools.product((0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), (50, 200))
        ],
    }
    # What `rag eval retrieval` measures as hybrid: RRF k=60 over the top 200 of each list (it asks for k=200).
    baseline_name, baseline = "rrf-chunks k=60 cut=200 (shipped)", (lambda v, t: rrf_chunks(v, t, 60, 1.0, 1.0, 200))
    base_choose = mean(score(baseline, runs, qrels))
    print(f"\n{args.choose} split ({len(runs)} queries), nDCG@10; baseline {baseline_name}: {base_choose:.4f}")
    best: dict[str, tuple[str, Callable, float]] = {}
    for family, rules in families.items():
        results = sorted(((mean(score(rule, runs, qrels)), name, rule) for name, rule in rules), reverse=True)
        for value, name, _ in results[:5]:
            print(f"  {name:<40}{value:.4f}")
        best[family] = (results[0][1], results[0][2], results[0][0])
    runs, qrels = splits[args.report]
    print(f"\n{args.report} split ({len(runs)} queries), once, nDCG@10 with 95% bootstrap intervals")
    base = score(baseline, runs, qrels)
    lo, hi = bootstrap_ci(list(base.values()))
    print(f"  {baseline_name:<40}{mean(base):.4f} [{lo:.4f}, {hi:.4f}]")
    for family, (name, rule, _) in best.items():
        print(f"  best {family} on {args.choose}:")
        got = score(rule, runs, qrels)
        lo, hi = bootstrap_ci(list(got.values()))
        diff, dlo, dhi = paired_difference(base, got)
        print(f"  {name:<40}{mean(got):.4f} [{lo:.4f}, {hi:.4f}]   vs baseline {diff:+.4f} [{dlo:+.4f}, {dhi:+.4f}]")
    vector_only = score(lambda v, t: single(v), runs, qrels)
    text_only = score(lambda v, t: single(t), runs, qrels)
    print(f"  {'vector only':<40}{mean(vector_only):.4f}")
    print(f"  {'text only':<40}{mean(text_only):.4f}")


if __name__ == "__main__":
    main()
