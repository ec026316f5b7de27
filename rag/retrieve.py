"""Retrieval: vector, full-text (BM25) or hybrid search over the index, optionally reranked.

Hybrid fuses the two ranked lists with reciprocal rank fusion, score(d) = sum over lists of
1 / (RRF_K + rank), which needs no score calibration between cosine similarities and BM25 scores
(Cormack et al., 2009; k = 60). Each list contributes its top `candidates`. Every returned source carries its cosine similarity to the query
when vector search found it (`Source.similarity`, used to decide refusals), whatever the mode's score. A reranker, when given,
rescores the top `rerank_top` fused candidates and they are re-sorted by its score.
An index without its full-text index (a run killed before building it) is searched by vector alone,
with an `IndexIncomplete` warning: readers never build indexes. The query is normalised like indexed text (ingest/normalize.py) first. This module returns ranked chunks; merging, widening and diversifying them is context.py's job.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

from ingest.embed import Embedder
from ingest.errors import IndexIncomplete, InvalidOption, TextIndexMissing
from ingest.normalize import normalize_text
from ingest.store import RRF_K, ChunkRow, Filter, Store, fuse_ranked
from rag.defaults import DEFAULT_MODE, SEARCH_MODES
from rag.rerank import Reranker
from rag.types import Source

MODES = SEARCH_MODES
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
        fuse([vector_hits, text_hits])
        if mode == "hybrid"
        else [source_from_row(r, s) for r, s in vector_hits or text_hits]
    )
    if reranker is not None and ranked:
        ranked = rerank(reranker, query, ranked, rerank_top)
    similarity = {row.id: score for row, score in vector_hits}
    return [replace(s, similarity=similarity.get(s.chunk_id)) for s in ranked[:k]]


def fuse(lists: Sequence[Sequence[tuple[ChunkRow, float]]], rrf_k: int = RRF_K) -> list[Source]:
    """Reciprocal rank fusion of ranked (row, score) lists into Sources scored by fused score."""
    return [source_from_row(row, score) for row, score in fuse_ranked(lists, rrf_k)]


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
    )
