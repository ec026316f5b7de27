"""The public `Index`: add folders, search, ask. The one object the CLI, apps and examples use.

Models load lazily on first use and are then shared: searching loads only the embedder, asking also
loads the chat model. The embedder of an existing index is the one recorded in its provenance unless
the caller names another, which must be the same model (`EmbedderMismatch` otherwise).
This module wires stages together; retrieval, prompting and generation live in their own modules.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ingest import _blas
from ingest.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS, ChunkConfig
from ingest.discover import discover
from ingest.embed import Embedder, MLXEmbedder
from ingest.errors import NotInIndex, RagError
from ingest.loaders import LOADERS
from ingest.pipeline import WRITE_BATCH_CHUNKS, IndexReport, Progress, index_paths
from ingest.store import DEFAULT_COLLECTION, META_FILE, Filter, Store, check_collection_name, check_embedder
from ingest.watch import DEFAULT_DEBOUNCE_MS, watch_paths
from rag.chat import Conversation
from rag.citations import check, words
from rag.context import assemble, fit_budget, merge_adjacent, named_document
from rag.defaults import (
    DEFAULT_CONTEXT_TOKENS,
    DEFAULT_EMBED_MODEL,
    DEFAULT_K,
    DEFAULT_LLM,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODE,
)
from rag.generate import Generator, MLXGenerator, elapsed_ms
from rag.prompt import build_messages, is_refusal, not_found_text
from rag.refusal import Gate, gate_for
from rag.retrieve import retrieve
from rag.retrieve import source_from_row as _source
from rag.stream import ReplyFilter
from rag.types import (
    Answer,
    DoneEvent,
    Event,
    IndexStatus,
    Source,
    SourcesEvent,
    ThinkingEvent,
    Timings,
    TokenEvent,
    collect,
)

PROMPT_OVERHEAD_TOKENS = 64  # chat-template tokens around the messages


def _rough_tokens(text: str) -> int:
    return len(text) // 3 + 1


class Index:
    """A document index on disk (LanceDB) plus the models that read and answer from it.

    Args:
        path: the index folder (created by the first `add`).
        embed_model: hub id, local folder, or an Embedder object. Default: the index's own model,
            or mlx-community/Qwen3-Embedding-0.6B-8bit for a new index.
        llm: hub id, local folder, or a Generator object. Default: mlx-community/Qwen3-4B-4bit.
        reranker: hub id, local folder or a Reranker object (reranking on by default), False (off), or
            None: mlx-community/Qwen3-Reranker-0.6B-4bit, on by default only where MLX has a GPU.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        embed_model: str | Embedder | None = None,
        llm: str | Generator | None = None,
        reranker: str | bool | object | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self._rerank_spec = reranker
        self._reranker = None if isinstance(reranker, str | bool) or reranker is None else reranker
        self._embed_spec = embed_model
        self._llm_spec = llm if llm is not None else DEFAULT_LLM
        self._embedder: Embedder | None = embed_model if isinstance(embed_model, Embedder) else None
        self._generator: Generator | None = llm if isinstance(llm, Generator) else None
        self._store: Store | None = None
        self._gate: Gate | None = None

    # -- models, loaded on first use -----------------------------------------------------------

    @property
    def exists(self) -> bool:
        return (self.path / META_FILE).is_file()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            spec = self._embed_spec
            if spec is None:
                spec = self._open().meta["embedder"]["id"] if self.exists else DEFAULT_EMBED_MODEL
            self._embedder = MLXEmbedder(str(spec))
        return self._embedder

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = MLXGenerator(str(self._llm_spec))
        return self._generator

    def _open(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.path)
        return self._store

    def _embedder_meta(self, with_dim: bool = False) -> dict:
        e = self.embedder
        meta = {"id": e.id, "fingerprint": e.fingerprint, "max_tokens": e.max_tokens}
        return meta | {"dim": e.dim} if with_dim else meta  # dim loads the weights: only for a new index

    # -- the API -------------------------------------------------------------------------------

    def add(
        self,
        *paths: str | os.PathLike[str],
        collection: str = DEFAULT_COLLECTION,
        password: str | None = None,
        progress: Callable[[Progress], None] | None = None,
        batch_chunks: int = WRITE_BATCH_CHUNKS,
        on_wait: Callable[[str], None] | None = None,
    ) -> IndexReport:
        """Bring `collection` in line with these files and folders: new and changed files are indexed,
        unchanged ones skipped, renamed ones re-pathed, deleted ones removed. Bad files are listed in
        `report.failed`, never raised. `password` is tried on encrypted PDFs; every `batch_chunks`
        chunks are embedded and committed together. If another run is writing to this index, this one
        waits for it (telling `on_wait` first) and then does only what is left."""
        check_collection_name(collection)
        self._check_paths(paths)
        store = self._writable()
        stored = store.meta["chunking"]
        chunking = ChunkConfig(stored["max_tokens"], stored["overlap_tokens"])
        return index_paths(
            paths,
            store,
            self.embedder,
            chunking,
            collection=collection,
            password=password,
            progress=progress,
            batch_chunks=batch_chunks,
            on_wait=on_wait,
        )

    def watch(
        self,
        *paths: str | os.PathLike[str],
        collection: str = DEFAULT_COLLECTION,
        password: str | None = None,
        on_report: Callable[[IndexReport], None] | None = None,
        stop: threading.Event | None = None,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    ) -> None:
        """Index `paths`, then keep the index in sync as files change, until `stop` is set (or Ctrl-C).

        Bursts of file events are debounced and batched into one incremental `add` run each;
        `on_report` receives every run's report (the first one included).
        """

        def sync() -> IndexReport:
            return self.add(*paths, collection=collection, password=password)

        watch_paths(paths, sync, on_report=on_report, stop=stop, debounce_ms=debounce_ms)

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        collection: str | None = None,
        *,
        mode: str = DEFAULT_MODE,
        rerank: bool | None = None,
        path_globs: Sequence[str] = (),
        file_types: Sequence[str] = (),
    ) -> list[Source]:
        """The k best chunks for `query`, best first.

        Args:
            mode: "hybrid" (default: vector + full-text, fused by reciprocal rank), "vector" or "text".
            rerank: rescore the top candidates with the reranker; None = the index's default (on where
                MLX has a GPU, off on CPU-only machines, where it costs seconds per passage).
            collection, path_globs ("*.pdf", "reports/**"), file_types ("pdf", "md"): filters.
        """
        store = self._open()
        self._check_query_embedder(store)
        where = Filter(collection, tuple(path_globs), tuple(file_types))
        reranker = self.reranker if (rerank if rerank is not None else self._rerank_by_default()) else None
        if rerank and reranker is None:
            raise RagError("reranking was asked for but no reranker is configured", "pass reranker=MODEL")
        return retrieve(store, self.embedder, query, k, mode=mode, where=where, reranker=reranker)

    def context(self, question: str, k: int = DEFAULT_K, *, widen: int = 0, **search_options) -> list[Source]:
        """The k sources to answer `question` from: retrieved (3k candidates, same options as `search`),
        diversified across documents, widened by `widen` neighbouring chunks, adjacent chunks merged."""
        ranked = self.search(question, k * 3, **search_options)
        return assemble(ranked, k, store=self._open(), widen=widen)

    @property
    def reranker(self):
        """The reranker (loaded on first use), or None if reranking is off for this index."""
        if self._reranker is None and self._rerank_spec is not False:
            from rag.defaults import DEFAULT_RERANK_MODEL
            from rag.rerank import MLXReranker

            spec = self._rerank_spec if isinstance(self._rerank_spec, str) else DEFAULT_RERANK_MODEL
            self._reranker = MLXReranker(spec)
        return self._reranker

    def _rerank_by_default(self) -> bool:
        if self._rerank_spec is False:
            return False
        if self._rerank_spec is not None:
            return True
        from ingest.models import needs_float32

        return not needs_float32()  # auto: on with a GPU (Apple silicon), off on CPU-only machines

    def get_chunk(self, chunk_id: str) -> Source:
        """The stored chunk with this id (a `Source.chunk_id` from `search` or an answer), score 0.0.

        Raises NotInIndex if the index holds no such chunk (e.g. its document changed since)."""
        row = self._open().chunk(chunk_id)
        if row is None:
            raise NotInIndex(f"no chunk with id '{chunk_id}' in {self.path}")
        return _source(row, 0.0)

    def get_document(self, path: str | os.PathLike[str], collection: str | None = None) -> list[Source]:
        """Every chunk of the indexed document at `path`, in reading order, each with score 0.0.

        Args:
            path: the document's path as indexed (`Source.path`); a relative path is resolved.
            collection: look only in this collection; None (default) returns the document's chunks from
                every collection that holds it, collection by collection.
        Consecutive chunks overlap by up to 32 tokens. Raises NotInIndex if the document is not indexed.
        """
        store = self._open()
        for key in dict.fromkeys([str(path), str(Path(path).expanduser().resolve())]):
            rows = store.document_chunks(key, collection)
            if rows:
                return [_source(row, 0.0) for row in rows]
        where = f" (collection {collection})" if collection else ""
        raise NotInIndex(f"no document '{path}' in {self.path}{where}")

    def documents(
        self, *, collection: str | None = None, path_globs: Sequence[str] = (), file_types: Sequence[str] = ()
    ) -> list[dict]:
        """The indexed documents (filtered like `search`): dicts with collection, path, chunks, pages
        (highest page number, or None), size and mtime_ns as indexed. [] when there is no index yet."""
        if not self.exists:
            return []
        where = Filter(collection, tuple(path_globs), tuple(file_types))
        return self._open().document_list(where)

    def documents_at(self, *paths: str | os.PathLike[str], collection: str | None = None) -> list[dict]:
        """The indexed documents (as `documents` lists them) at these paths: each path is a document, or
        a folder holding documents. Raises NotInIndex if a path matches none."""
        stored = self._open().document_list(Filter(collection))
        found: dict[tuple[str, str], dict] = {}
        for given in paths:
            keys = {str(given), str(Path(given).expanduser().resolve())}
            hits = [
                d for d in stored if d["path"] in keys or any(d["path"].startswith(k.rstrip("/") + "/") for k in keys)
            ]
            if not hits:
                raise NotInIndex(f"nothing indexed at '{given}'", "see `rag docs` for what is indexed")
            found.update({(d["collection"], d["path"]): d for d in hits})
        return list(found.values())

    def remove(self, *paths: str | os.PathLike[str], collection: str | None = None) -> list[str]:
        """Take documents out of the index (your files are not touched): each path is a document, or a
        folder whose documents all go. Returns the documents removed; raises NotInIndex if a path matches
        none. A removed file that is still in an indexed folder comes back with the next `add` of it."""
        chosen: dict[str, set[str]] = {}
        for d in self.documents_at(*paths, collection=collection):
            chosen.setdefault(d["collection"], set()).add(d["path"])
        store = self._open()
        with store.write_lock():
            for name, doomed in chosen.items():
                store.replace_documents(name, sorted(doomed), [], np.zeros((0, store.dim), dtype=np.float32))
                failures = store.failures(name)
                kept = {p: f for p, f in failures.items() if p not in doomed}
                if kept != failures:
                    store.set_failures(name, kept)
            store.refresh_catalog()
        return sorted({p for doomed in chosen.values() for p in doomed})

    def collections(self) -> dict[str, tuple[int, int]]:
        """Collection name -> (documents, chunks)."""
        return self._open().collections() if self.exists else {}

    def remove_collection(self, name: str) -> int:
        """Delete a collection's documents from the index; returns how many chunks were removed."""
        store = self._open()
        if name not in store.collections() and not store.failures(name):
            raise RagError(f"no collection '{name}' in {self.path}", "see `rag status` for the collections")
        return store.drop_collection(name)

    def _check_paths(self, paths) -> None:
        """Refuse missing paths, and a first run with nothing readable, before anything is created."""
        for given in paths:
            if not Path(given).expanduser().exists():
                raise RagError(f"no such file or folder: {given}", "check the path")
        named_file = any(Path(given).expanduser().is_file() for given in paths)  # fails or loads: reported
        if not self.exists and not named_file and not any(f.suffix.lower() in LOADERS for f in discover(paths)):
            kinds = ", ".join(sorted({".pdf", ".md", ".txt", ".docx", ".html", ".epub", ".rst"}))
            raise RagError(
                f"nothing to index under {', '.join(map(str, paths))}: no file of a type rag reads",
                f"it reads {kinds}, and source/config files; no index was created",
            )

    def _writable(self) -> Store:
        if not self.exists:
            chunking = ChunkConfig(min(DEFAULT_CHUNK_TOKENS, self.embedder.max_tokens - 2), DEFAULT_OVERLAP_TOKENS)
            self._store = Store.open_or_create(self.path, self._embedder_meta(with_dim=True), asdict(chunking))
        store = self._open()
        check_embedder(store.meta, self._embedder_meta(), self.path)
        return store

    def stream_answer(
        self,
        question: str,
        *,
        k: int = DEFAULT_K,
        collection: str | None = None,
        thinking: bool = False,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        widen: int = 0,
        allow_general: bool = False,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        **search_options,
    ) -> Iterator[Event]:
        """Answer `question` from the index, streaming: a SourcesEvent, then TokenEvents (and
        ThinkingEvents if `thinking`), then a DoneEvent carrying the full, checked Answer.

        Sources come from `context` (search options: mode, rerank, path_globs, file_types), cut to fit
        `context_tokens` (capped by the model's window) minus the answer's `max_tokens`; a question that
        names an indexed document ("summarise report.pdf") gets that whole document when it fits.
        Unless `allow_general`, a question whose sources fall below the calibrated relevance gate
        (refusal.py), or whose answer says the sources don't hold it, ends as a refusal: Answer.refused,
        with the standard "not found in your documents" text and the closest sources. [n] citations
        are checked against the sources (see citations.py). What the TokenEvents carry is exactly
        `Answer.text` (stream.py holds back what may not belong to it, and ends a looping reply at its
        first repetition: `Answer.stopped_reason`)."""
        self._open()  # a missing index fails before any model loads
        self.embedder, self.generator  # load both models before the clock starts  # noqa: B018
        started = time.perf_counter()
        budget = self._source_budget(question, max_tokens, context_tokens)
        sources, judged, whole = self._answer_sources(question, k, widen, collection, budget, search_options)
        retrieval_ms = elapsed_ms(started)
        yield SourcesEvent(sources)
        if not allow_general and not whole:
            refuse, why = self.gate.refuses(question, judged)
            if refuse:
                text = not_found_text(question)
                yield TokenEvent(text)
                timings = Timings(retrieval_ms=retrieval_ms, total_ms=elapsed_ms(started))
                yield DoneEvent(Answer(question, text, sources, timings, refused=True, refusal_reason=why))
                return
        reply = _Reply(started, len(sources), {w for s in sources for w in words(s.location)})
        messages = build_messages(question, sources, allow_general=allow_general)
        yield from reply.stream(self.generator.stream(messages, max_tokens=max_tokens, thinking=thinking))
        # nothing was shown: bare [n] markers / source labels, or "not in the sources" where retrieval is
        # surer than for 95% of unanswerable questions. Ask once more, plainly, without the citation format.
        held = reply.held_back
        retry = held == "no words" or (
            held == "refusal" and self.gate.probability(question, judged) > self.gate.confident
        )
        if retry and not allow_general and not whole:
            plain = build_messages(question, sources, plain=True)
            yield from reply.stream(self.generator.stream(plain, max_tokens=max_tokens, thinking=thinking))
        yield from reply.close(release=allow_general)
        last = reply.last
        timings = Timings(
            retrieval_ms=retrieval_ms,
            first_token_ms=reply.first_token_ms,
            total_ms=elapsed_ms(started),
            prompt_tokens=last.prompt_tokens if last else 0,
            cached_prompt_tokens=getattr(last, "cached_tokens", 0) if last else 0,
            generated_tokens=last.generated_tokens if last else 0,
            tokens_per_s=last.generation_tps if last else 0.0,
        )
        stopped = reply.stopped or ("max_tokens" if last and last.generated_tokens >= max_tokens else "end")
        thinking_text = "".join(reply.thought).strip()
        shown = reply.filter.shown
        reason = ""
        if not shown:  # nothing of the reply was shown: no words, or a refusal
            reason = (
                "the model gave no answer"
                if reply.held_back == "no words"
                else "the model found no answer in the sources"
            )
            shown = not_found_text(question)
            yield TokenEvent(shown)
        elif not allow_general and is_refusal(shown):  # a refusal in the model's own words, already shown
            reason = "the model found no answer in the sources"
        if reason:
            answer = Answer(question, shown, sources, timings, thinking_text, True, reason, stopped_reason=stopped)
        else:
            checked = check(shown, sources)
            assert checked.text == shown  # the text was checked while it streamed: it reads as it was shown
            answer = Answer(
                question,
                shown,
                sources,
                timings,
                thinking_text,
                invalid_citations=tuple(reply.filter.invalid),
                unsupported_citations=checked.unsupported,
                sentences=checked.sentences,
                evidence=checked.evidence,
                stopped_reason=stopped,
            )
        yield DoneEvent(answer)

    def chat(self, **ask_options) -> Conversation:
        """A conversation over this index: follow-ups are rewritten into standalone questions before
        retrieval; `ask_options` (k, collection, mode, allow_general, ...) apply to every answer.

        >>> chat = index.chat(k=3)  # doctest: +SKIP
        >>> chat.ask("Which boilers does the manual cover?")  # doctest: +SKIP
        >>> chat.ask("And how do I reset the second one?")  # doctest: +SKIP
        """
        return Conversation(self, **ask_options)

    @property
    def gate(self) -> Gate:
        """The refusal gate calibrated for this index's embedder (coverage-only when there is none)."""
        if self._gate is None:
            self._gate = gate_for(self.embedder.id)
        return self._gate

    def _source_budget(self, question: str, max_tokens: int, context_tokens: int) -> int:
        """Tokens left for source text: the context window (capped by `context_tokens`) minus the
        prompt's fixed parts and the answer."""
        count = getattr(self.generator, "count_tokens", None) or _rough_tokens
        window = min(getattr(self.generator, "context_window", context_tokens) or context_tokens, context_tokens)
        fixed = sum(count(m["content"]) for m in build_messages(question, [])) + PROMPT_OVERHEAD_TOKENS
        return max(window - fixed - max_tokens, 0)

    def _answer_sources(
        self, question: str, k: int, widen: int, collection: str | None, budget: int, search_options: dict
    ) -> tuple[list[Source], list[Source], bool]:
        """(the sources to answer from, the sources the refusal gate judges, whether they are one whole
        named document). The gate always judges its calibrated number of best sources, so answering from
        fewer (a small `k` for a small model) doesn't make it refuse more."""
        count = getattr(self.generator, "count_tokens", None) or _rough_tokens
        store = self._open()
        named = named_document(question, list(store.documents(collection)))
        if named:
            whole = merge_adjacent([_source(row, 1.0) for row in store.document_chunks(named, collection)])
            if whole and fit_budget(whole, count, budget) == whole:  # all of it fits, uncut
                return whole, whole, True
        ranked = self.context(question, max(k, self.gate.k), widen=widen, collection=collection, **search_options)
        return fit_budget(ranked[:k], count, budget), ranked[: self.gate.k], False

    def ask(self, question: str, **options) -> Answer:
        """Answer `question` (same options as `stream_answer`); returns the finished Answer."""
        return collect(self.stream_answer(question, **options))

    def status(self) -> IndexStatus:
        """What is in the index and how it was built (no model is loaded)."""
        if not self.exists:
            return IndexStatus(path=str(self.path), exists=False, blas=_blas.status())
        store = self._open()
        meta = store.meta
        documents, chunks, collections = store.summary()  # one table version: the numbers agree
        return IndexStatus(
            path=str(self.path),
            exists=True,
            documents=documents,
            chunks=chunks,
            collections=collections,
            failures=store.failures(),
            skipped=store.skipped(),
            embedder=meta["embedder"]["id"],
            dim=meta["embedder"]["dim"],
            chunking=meta.get("chunking", {}),
            created=meta.get("created", ""),
            blas=_blas.status(),
        )

    def _check_query_embedder(self, store: Store) -> None:
        if self._embed_spec is not None:
            check_embedder(store.meta, self._embedder_meta(), self.path)


class _Reply:
    """Streams a generator's pieces as events, showing only what stream.ReplyFilter lets through (so a
    reply of bare [n] markers or a refusal is never shown and can be asked again, and a looping reply
    ends at its first repetition). A second `stream` replaces a reply nothing of which was shown."""

    def __init__(self, started: float, n_sources: int, labels: set[str] = frozenset()) -> None:
        self.started = started
        self.n_sources, self.labels = n_sources, labels
        self.filter = ReplyFilter(n_sources, labels)
        self.thought: list[str] = []
        self.first_token_ms = 0.0
        self.last = None

    @property
    def held_back(self) -> str:
        return self.filter.held_back

    @property
    def stopped(self) -> str:
        return self.filter.stopped

    def stream(self, pieces) -> Iterator[Event]:
        if not self.filter.shown:
            self.filter = ReplyFilter(self.n_sources, self.labels)
        try:
            for piece in pieces:
                self.last = piece
                if piece.thinking:
                    self.thought.append(piece.thinking)
                    yield ThinkingEvent(piece.thinking)
                yield from self._show(self.filter.feed(piece.text))
                if self.filter.stopped:
                    break  # the reply loops: stop generating
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def close(self, release: bool = False) -> Iterator[Event]:
        """The rest of the answer; `release`: also a refusal or a reply without words."""
        yield from self._show(self.filter.close(release))

    def _show(self, text: str) -> Iterator[Event]:
        if text:
            self.first_token_ms = self.first_token_ms or elapsed_ms(self.started)
            yield TokenEvent(text)


def open_index(
    path: str | os.PathLike[str],
    *,
    embed_model: str | Embedder | None = None,
    llm: str | Generator | None = None,
    reranker: str | bool | object | None = None,
) -> Index:
    """Open (or prepare to create) the index at `path`. See `Index` for the arguments.

    >>> index = open_index("~/.local/share/rag/index", embed_model="path/to/all-MiniLM-L6-v2")
    >>> index.add("~/Documents")  # doctest: +SKIP
    """
    return Index(path, embed_model=embed_model, llm=llm, reranker=reranker)
