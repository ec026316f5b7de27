"""Retrieval: vector, full-text (BM25) or hybrid search over the index, optionally reranked.

Hybrid scores each candidate chunk with a convex combination of its two scores, each z-normalised over
its own list's candidates: 0.5 * z(cosine) + 0.5 * z(BM25), a chunk one list didn't return getting that
list's lowest z (`combined_scores`). Chosen on SciFact's train split over reciprocal rank fusion and
min-max or theoretical-min scaling, per chunk or per document (bench/fusion.py; the numbers are in the
README); the weights are equal, not tuned. Each list contributes its top `candidates`. Every returned
source carries its cosine similarity to the query when vector search found it (`Source.similarity`,
used to decide refusals), whatever the mode's score. A reranker, when given, rescores the top
`rerank_top` combined candidates and they are re-sorted by its score. An index without its full-text
index (a run killed before building it) is searched by vector alone, with an `IndexIncomplete`
warning: readers never build indexes. The query is normalised like indexed text (ingest/normalize.py)
first. This module returns ranked chunks; merging, widening and diversifying them is context.py's job.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

from ingest.embed import Embedder
from ingest.errors import IndexIncomplete, InvalidOption, TextIndexMissing
from ingest.normalize import normalize_text
from ingest.store import ChunkRow, Filter, Store
from rag.defaults import DEFAULT_MODE, SEARCH_MODES
from rag.rerank import Reranker
from rag.types import Source

MODES = SEARCH_MODES
HYBRID_ALPHA = 0.5  # the vector list's weight in hybrid's combination; the text list has 1 - HYBRID_ALPHA
DEFAULT_CANDIDATES = 50
DEFAULT_RERANK_TOP = 20


def retrieve(
    store: Store,
    embedder: Embedder,
    query: str,
    k: int,
    *,
    mode: str = DEFAULT_MODE,
    where: Filter | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    reranker: Reranker | None = None,
    rerank_top: int = DEFAULT_RERANK_TOP,
) -> list[Source]:
    """The k best chunks for `query` in `mode` ("vector", "text" or "hybrid"), best first."""
    if mode not in MODES:
        raise InvalidOption(f"unknown retrieval mode '{mode}'", f"choose one of {', '.join(MODES)}")
    depth = max(k, candidates) if mode == "hybrid" else max(k, rerank_top if reranker else k)
    query = normalize_text(query)  # searched in the form the chunks were indexed in (ligatures, controls...)
    text_hits: list[tuple[ChunkRow, float]] = []
    if mode != "vector":
        try:
            text_hits = store.search_text(query, depth, where)
        except TextIndexMissing as exc:
            warnings.warn(
                IndexIncomplete(f"{exc.message}: searching by meaning (vectors) only — {exc.hint}"), stacklevel=2
            )
            mode = "vector"
    vector = embedder.embed([embedder.query_prefix + query])[0] if mode != "text" else None
    vector_hits = store.search(vector, depth, where) if vector is not None else []
    ranked = (
        combine(vector_hits, text_hits)
        if mode == "hybrid"
        else [source_from_row(r, s) for r, s in vector_hits or text_hits]
    )
    if reranker is not None and ranked:
        ranked = rerank(reranker, query, ranked, rerank_top)
    similarity = {row.id: score for row, score in vector_hits}
    return [replace(s, similarity=similarity.get(s.chunk_id)) for s in ranked[:k]]


def combine(
    vector_hits: Sequence[tuple[ChunkRow, float]],
    text_hits: Sequence[tuple[ChunkRow, float]],
    alpha: float = HYBRID_ALPHA,
) -> list[Source]:
    """Hybrid's ranking: each chunk scored alpha * z(cosine) + (1 - alpha) * z(text score), best first
    (see `combined_scores`)."""
    rows = {row.id: row for hits in (vector_hits, text_hits) for row, _ in hits}
    scores = combined_scores(
        [[(row.id, s) for row, s in vector_hits], [(row.id, s) for row, s in text_hits]], [alpha, 1 - alpha]
    )
    return [source_from_row(rows[cid], score) for cid, score in sorted(scores.items(), key=lambda kv: -kv[1])]


def combined_scores(lists: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float]) -> dict[str, float]:
    """A convex combination of the lists' z-normalised scores: each list's scores become z-scores over
    its own candidates ((score - mean) / standard deviation), so cosine similarities and BM25 scores
    are on one scale; a chunk a list didn't return gets that list's lowest z-score. A list whose
    scores are all equal (one hit, say) gives its hits 1 and the chunks it lacks 0."""
    combined: dict[str, float] = {}
    scaled = []
    for hits, weight in zip(lists, weights, strict=True):
        if not hits:
            continue
        values = [s for _, s in hits]
        mean = sum(values) / len(values)
        deviation = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        if deviation > 1e-12:
            z = {cid: (s - mean) / deviation for cid, s in hits}
            scaled.append((weight, z, min(z.values())))
        else:
            scaled.append((weight, dict.fromkeys((cid for cid, _ in hits), 1.0), 0.0))
    for cid in dict.fromkeys(cid for _, z, _ in scaled for cid in z):  # in list order: ties keep it
        combined[cid] = sum(weight * z.get(cid, floor) for weight, z, floor in scaled)
    return combined


def rerank(reranker: Reranker, query: str, ranked: list[Source], top: int) -> list[Source]:
    """Rescore the first `top` sources with the reranker (score = its relevance) and re-sort them."""
    head, tail = ranked[:top], ranked[top:]
    scores = reranker.score(query, [s.text for s in head])
    rescored = sorted((replace(s, score=float(x)) for s, x in zip(head, scores, strict=True)), key=lambda s: -s.score)
    return rescored + tail


def source_from_row(row: ChunkRow, score: float) -> Source:
    """A stored chunk as a Source with this score."""
    return Source(
        chunk_id=row.id,
        path=row.path,
        text=row.text,
        score=score,
        page=row.page,
        heading=row.heading,
        chunk_index=row.chunk_index,
        char_start=row.char_start,
        char_end=row.char_end,
        collection=row.collection,
        ocr=None if row.ocr is None else round(row.ocr, 4),
    )
