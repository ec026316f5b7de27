"""Retrieval latency at 10k-1M chunks, exact scan vs the ANN index, through the real `ingest.store.Store`:

    python bench/query.py [--sizes 10000,100000,1000000] [--queries 100] [--compare] [--json] \
        [--embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2]
    python bench/query.py --grow 50000:500000   # an index built small, then grown 10x

For each size a store is written in a temp dir (in batches of 50,000 rows through `Store.replace_documents`,
the ingest write path) with synthetic 384-d vectors shaped like MiniLM's (see `Mixture`), then searched:
1. without a vector index (`none`: LanceDB scans every vector; these results are the exact top 10),
2. after `Store.sync_vector_index` built the project's ANN index (its threshold lowered to 0 here).
Per row: index build seconds; `Store.search` latency p50/p95 (k=10) for held-out query vectors;
recall@10 of the results vs the exact ones, unfiltered and with a collection filter that keeps ~1% of
the chunks (prefilter); and the user-visible latency: embed the query text with the real MiniLM, then
search. `--compare` also builds the other LanceDB index types (IVF_PQ, IVF_HNSW_SQ, IVF_FLAT, IVF_RQ) with
the query settings that gave them recall >= 0.95, queried on the table directly (not through Store).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import ingest.store as store_mod
from ingest.embed import MLXEmbedder
from ingest.store import ChunkRow, Filter, Store

DIM = 384
BATCH = 50_000
RARE = "rare"  # the collection of ~1% of the documents, for filtered searches
DEFAULT_MODEL = Path.home() / ".cache" / "rag-test-models" / "all-MiniLM-L6-v2"
QUERIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact" / "queries.jsonl"


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Mixture:
    """Gaussian mixture shaped like MiniLM chunk embeddings: a shared mean direction (real embeddings all
    lean one way), topics, documents around topics, chunks around their document, all with an anisotropic
    spread (eigenvalues ~ i^-0.87, fitted to MiniLM vectors of SciFact, in a random basis).

    The parameters were set so that, at 10k vectors, the nearest-neighbour cosines (chunk-chunk top 1 0.73,
    query-chunk top 1 0.62) and how many true top-10 neighbours an IVF with sqrt(n) partitions finds when
    probing 1/3/10 partitions (0.45/0.78/0.93) are close to, and slightly harder than, real MiniLM vectors
    of SciFact (0.77, 0.65; 0.51/0.74/0.91). Queries are new points near random documents.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        spectrum = np.arange(1, DIM + 1, dtype=np.float64) ** -0.87
        self.scale = np.sqrt(spectrum / spectrum.sum()).astype(np.float32)
        self.basis = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0].astype(np.float32)
        self.mean = _unit(rng.standard_normal(DIM)) * 0.35
        topics = _unit(self._noise(max(20, n // 500), rng))
        self.n, self.n_docs = n, max(1, n // 5)
        self.docs = _unit(topics[rng.integers(0, len(topics), self.n_docs)] + 1.5 * self._noise(self.n_docs, rng))

    def _noise(self, m: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.standard_normal((m, DIM), dtype=np.float32) * self.scale) @ self.basis

    def chunks(self, start: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of chunks start..start+m and their document numbers (consecutive chunks share one)."""
        doc = (np.arange(start, start + m) * self.n_docs) // self.n
        section = _unit(self.docs[doc] + 0.5 * self._noise(m, rng))
        return _unit(self.mean + section + 0.5 * self._noise(m, rng)), doc

    def queries(self, m: int, rng: np.random.Generator) -> np.ndarray:
        doc = rng.integers(0, self.n_docs, m)
        return _unit(self.mean + self.docs[doc] + 1.2 * self._noise(m, rng))


def build_store(root: Path, n: int, mix: Mixture) -> Store:
    store = Store.open_or_create(root, {"id": "synthetic", "fingerprint": "synthetic", "dim": DIM}, {})
    rng = np.random.default_rng(1)
    for start in range(0, n, BATCH):
        vectors, docs = mix.chunks(start, min(BATCH, n - start), rng)
        by_collection: dict[str, list[int]] = {}
        for i, doc in enumerate(docs):
            by_collection.setdefault(RARE if doc % 100 == 7 else store_mod.DEFAULT_COLLECTION, []).append(i)
        for collection, idx in by_collection.items():
            rows = [_row(collection, start + i, int(docs[i])) for i in idx]
            store.replace_documents(collection, [], rows, vectors[idx])
    return store


def _row(collection: str, number: int, doc: int) -> ChunkRow:
    text = f"Synthetic chunk {number} of document {doc}. " * 6
    return ChunkRow(
        id=f"c{number}", collection=collection, path=f"/docs/{doc // 1000}/doc{doc}.md", doc_hash=f"h{doc}",
        doc_size=len(text), doc_mtime_ns=0, chunk_index=number, text=text, text_hash=f"t{number}", heading="",
        page=None, char_start=0, char_end=len(text),
    )  # fmt: skip


def timed(fn, items) -> tuple[list[float], list]:
    """(milliseconds per call, results) of fn over items."""
    ms, out = [], []
    for item in items:
        started = time.perf_counter()
        out.append(fn(item))
        ms.append((time.perf_counter() - started) * 1000)
    return ms, out


def recall(got: list[list[str]], exact: list[list[str]]) -> float:
    return statistics.mean(len(set(g) & set(e)) / max(1, len(e)) for g, e in zip(got, exact, strict=True))


def p50_p95(ms: list[float]) -> tuple[float, float]:
    return statistics.median(ms), float(np.percentile(ms, 95))


def measure(store: Store, queries, texts, embedder, exact=None, label="none", build_s=0.0) -> tuple[dict, tuple]:
    rare = Filter(collection=RARE)
    ms, hits = timed(lambda v: [r.id for r, _ in store.search(v, 10)], queries)
    _, rare_hits = timed(lambda v: [r.id for r, _ in store.search(v, 10, rare)], queries[: len(queries) // 2])
    e2e, _ = timed(lambda t: store.search(embedder.embed([t])[0], 10), texts)
    exact = exact or (hits, rare_hits)
    result = {
        "size": store.count_chunks(), "index": label, "build_s": build_s,
        "p50_ms": p50_p95(ms)[0], "p95_ms": p50_p95(ms)[1],
        "recall_at_10": recall(hits, exact[0]), "filtered_recall_at_10": recall(rare_hits, exact[1]),
        "embed_search_p50_ms": p50_p95(e2e)[0], "embed_search_p95_ms": p50_p95(e2e)[1],
    }  # fmt: skip
    return result, exact


# Other index types, with the query settings at which they reached recall@10 >= 0.95 at 100k in a sweep of
# nprobes / refine_factor / ef. IVF_PQ's default 24 sub-vectors reached 0.84 with refine_factor 10 (at 20k),
# 48 sub-vectors 0.93 (refine 10) and 0.97 (refine 20), so 96.
def _candidates():
    from lancedb.index import HnswSq, IvfFlat, IvfPq, IvfRq

    return {
        "IVF_PQ(96 subvectors) refine 5": (IvfPq(distance_type="cosine", num_sub_vectors=96), {"refine_factor": 5}),
        "IVF_HNSW_SQ ef 200": (HnswSq(distance_type="cosine"), {"ef": 200}),
        "IVF_FLAT nprobes 40": (IvfFlat(distance_type="cosine"), {"nprobes": 40}),
        "IVF_RQ refine 20": (IvfRq(distance_type="cosine"), {"refine_factor": 20}),
    }


def compare(store: Store, queries, exact) -> list[dict]:
    results = []
    for label, (config, params) in _candidates().items():
        started = time.perf_counter()
        store._table.create_index("vector", config=config, replace=True)
        build_s = time.perf_counter() - started

        def search(v, params=params):
            query = store._table.search(v, vector_column_name="vector").distance_type("cosine").limit(10)
            for name, value in params.items():
                query = getattr(query, name)(value)
            return query.select(["id", "_distance"]).to_arrow().column("id").to_pylist()

        ms, hits = timed(search, queries)
        p50, p95 = p50_p95(ms)
        results.append({"size": store.count_chunks(), "index": label, "build_s": build_s, "p50_ms": p50, "p95_ms": p95,
                        "recall_at_10": recall(hits, exact[0])})  # fmt: skip
    return results


def grow(start: int, end: int, n_queries: int, as_json: bool) -> None:
    """The index built at `start` chunks, then `end - start` more written in batches, each followed by
    `sync_vector_index` (which folds them in, not retraining), vs the index rebuilt at `end` and exact."""
    store_mod.VECTOR_INDEX_MIN_ROWS = 0
    mix = Mixture(end)
    rng = np.random.default_rng(5)
    queries = list(mix.queries(n_queries, np.random.default_rng(99)))
    results = []
    with tempfile.TemporaryDirectory(prefix="rag-bench-query-") as tmp:
        store = build_store(Path(tmp), start, mix)
        store.sync_vector_index()
        for first in range(start, end, BATCH):
            vectors, docs = mix.chunks(first, min(BATCH, end - first), rng)
            rows = [_row(store_mod.DEFAULT_COLLECTION, first + i, int(d)) for i, d in enumerate(docs)]
            store.replace_documents(store_mod.DEFAULT_COLLECTION, [], rows, vectors)
            store.sync_vector_index()
        runs = {f"grown from {start:,}": timed(lambda v: [r.id for r, _ in store.search(v, 10)], queries)}
        store._table.drop_index(store._vector_index_name())
        runs["none"] = timed(lambda v: [r.id for r, _ in store.search(v, 10)], queries)
        store.sync_vector_index()
        runs[f"rebuilt at {end:,}"] = timed(lambda v: [r.id for r, _ in store.search(v, 10)], queries)
        for label, (ms, hits) in runs.items():
            p50, p95 = p50_p95(ms)
            results.append({"size": end, "index": label, "p50_ms": p50, "p95_ms": p95,
                            "recall_at_10": recall(hits, runs["none"][1])})  # fmt: skip
    if as_json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'chunks':>9}  {'index':<24}{'p50 ms':>8}{'p95 ms':>8}{'recall@10':>10}")
    for r in results:
        print(f"{r['size']:>9,}  {r['index']:<24}{r['p50_ms']:>8.1f}{r['p95_ms']:>8.1f}{r['recall_at_10']:>10.3f}")


def query_texts(n: int) -> list[str]:
    if QUERIES.is_file():
        with QUERIES.open() as f:
            return [json.loads(line)["text"] for _, line in zip(range(n), f, strict=False)]
    return [f"what is known about topic number {i} and its effects?" for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--embed-model", default=str(DEFAULT_MODEL))
    p.add_argument("--compare", action="store_true", help="also build and query the other LanceDB index types")
    p.add_argument("--grow", metavar="FROM:TO", help="instead: index at FROM chunks, grow to TO, compare to fresh")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.grow:
        grow(*(int(s) for s in args.grow.split(":")), args.queries, args.json)
        return

    embedder = MLXEmbedder(args.embed_model)
    texts = query_texts(min(args.queries, 50))
    embedder.embed(texts[:2])  # warm-up: load the weights
    store_mod.VECTOR_INDEX_MIN_ROWS = 0  # index every size, to compare with the exact scan
    ann = f"IVF_SQ nprobes {store_mod.VECTOR_NPROBES} refine {store_mod.VECTOR_REFINE_FACTOR}"
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="rag-bench-query-") as tmp:
            mix = Mixture(n)
            store = build_store(Path(tmp), n, mix)
            queries = list(mix.queries(args.queries, np.random.default_rng(99)))
            result, exact = measure(store, queries, texts, embedder)
            results.append(result)
            started = time.perf_counter()
            store.sync_vector_index()
            results.append(measure(store, queries, texts, embedder, exact, ann, time.perf_counter() - started)[0])
            if args.compare:
                results.extend(compare(store, queries, exact))
        if not args.json:
            print_rows(results[-(2 + 4 * args.compare) :], header=len(results) <= 2 + 4 * args.compare)
    if args.json:
        print(json.dumps(results, indent=2))


def print_rows(rows: list[dict], header: bool) -> None:
    if header:
        print(f"{'chunks':>9}  {'index':<34}{'build s':>8}{'p50 ms':>8}{'p95 ms':>8}{'recall@10':>10}"
              f"{'filtered':>9}{'embed+search p50':>17}{'p95':>7}")  # fmt: skip
    for r in rows:
        extra = ""
        if "filtered_recall_at_10" in r:
            extra = (
                f"{r['filtered_recall_at_10']:>9.3f}{r['embed_search_p50_ms']:>17.1f}{r['embed_search_p95_ms']:>7.1f}"
            )
        print(f"{r['size']:>9,}  {r['index']:<34}{r['build_s']:>8.1f}{r['p50_ms']:>8.1f}{r['p95_ms']:>8.1f}"
              f"{r['recall_at_10']:>10.3f}{extra}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
