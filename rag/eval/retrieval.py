"""Retrieval evaluation on a BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).

The corpus is written once as one text file per document (`<doc id>.txt`: title, blank line, text) in a
workspace folder and indexed through the normal ingest path, so re-runs reuse the index (an unchanged
folder re-indexes in seconds). Every judged query is then run in each mode and scored with nDCG@10,
Recall@10, Recall@100 and MRR@10 (documents ranked by their best chunk), plus latency p50/p95 of the
whole search call (query embedding + search + rerank). nDCG@10 comes with a 95% bootstrap interval over
the queries, and every pair of modes with their paired difference, so that a 0.005 change is not read
as progress. This module measures; it does not print.
"""

from __future__ import annotations

import csv
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rag
from rag.eval.metrics import bootstrap_ci, mrr_at, ndcg_at, paired_difference, percentile, recall_at

MODES = ("text", "vector", "hybrid", "hybrid+rerank")
DEPTH = 100  # documents ranked per query (Recall@100)


@dataclass
class BeirData:
    name: str
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass
class ModeResult:
    mode: str
    queries: int
    ndcg_10: float
    recall_10: float
    recall_100: float
    mrr_10: float
    p50_ms: float
    p95_ms: float
    per_query: dict[str, float] = field(default_factory=dict)  # query id -> nDCG@10
    ndcg_10_ci: tuple[float, float] = (0.0, 0.0)  # 95% bootstrap interval over the queries


def load_beir(folder: Path, split: str = "test") -> BeirData:
    """Read a BEIR folder; only queries that have judgments in `split` are kept."""
    folder = Path(folder)
    qrels_file = folder / "qrels" / f"{split}.tsv"
    for needed in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_file):
        if not needed.is_file():
            raise rag.RagError(
                f"not a BEIR folder: {needed} is missing", "expected corpus.jsonl, queries.jsonl, qrels/"
            )
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"].strip(), {})[row["corpus-id"].strip()] = int(row["score"].strip())
    queries = {}
    with (folder / "queries.jsonl").open() as f:
        for line in f:
            q = json.loads(line)
            if str(q["_id"]) in qrels:
                queries[str(q["_id"])] = q["text"]
    return BeirData(folder.name, folder / "corpus.jsonl", queries, qrels)


def write_corpus(data: BeirData, out: Path) -> int:
    """Write each corpus document to `out/<id>.txt` (only files whose content differs are rewritten)."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    with data.corpus.open() as f:
        for line in f:
            doc = json.loads(line)
            path = out / f"{_safe(str(doc['_id']))}.txt"
            text = f"{doc.get('title', '').strip()}\n\n{doc.get('text', '').strip()}".strip() + "\n"
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
            count += 1
    return count


def sample_queries(data: BeirData, limit: int | None, seed: int = 0) -> list[str]:
    ids = sorted(data.queries, key=lambda q: (len(q), q))
    if limit is not None and limit < len(ids):
        ids = sorted(random.Random(seed).sample(ids, limit), key=lambda q: (len(q), q))
    return ids


def evaluate(
    index: rag.Index,
    data: BeirData,
    query_ids: Sequence[str],
    mode: str,
    progress: Callable[[int, int], None] | None = None,
) -> ModeResult:
    """Run `query_ids` in `mode` and score them (documents = file stems of the retrieved chunks)."""
    search_mode, rerank = (mode.removesuffix("+rerank"), mode.endswith("+rerank"))
    if query_ids:  # untimed warm-up: loads models and builds a missing full-text index
        index.search(data.queries[query_ids[0]], k=DEPTH * 2, mode=search_mode, rerank=rerank)
    ndcg, r10, r100, mrr, latencies, per_query = [], [], [], [], [], {}
    for i, qid in enumerate(query_ids, start=1):
        started = time.perf_counter()
        hits = index.search(data.queries[qid], k=DEPTH * 2, mode=search_mode, rerank=rerank)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked = [Path(h.path).stem for h in hits]
        qrels = {_safe(doc): grade for doc, grade in data.qrels[qid].items()}
        ndcg.append(ndcg_at(ranked, qrels, 10))
        r10.append(recall_at(ranked, qrels, 10))
        r100.append(recall_at(ranked, qrels, DEPTH))
        mrr.append(mrr_at(ranked, qrels, 10))
        per_query[qid] = ndcg[-1]
        if progress:
            progress(i, len(query_ids))
    mean = statistics.fmean
    return ModeResult(
        mode,
        len(query_ids),
        mean(ndcg),
        mean(r10),
        mean(r100),
        mean(mrr),
        percentile(latencies, 50),
        percentile(latencies, 95),
        per_query,
        bootstrap_ci(ndcg),
    )


def differences(results: Sequence[ModeResult]) -> list[dict]:
    """nDCG@10 of every later mode minus every earlier one, paired by query, with 95% intervals."""
    out = []
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            diff, low, high = paired_difference(a.per_query, b.per_query)
            out.append({"a": a.mode, "b": b.mode, "ndcg_10_diff": diff, "ci": (low, high)})
    return out


def _safe(doc_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)
