"""The public `Index`: add folders, search, ask. The one object the CLI, apps and examples use.

Models load lazily on first use and are then shared: searching loads only the embedder, asking also
loads the chat model. The embedder of an existing index is the one recorded in its provenance unless
the caller names another, which must be the same model (`EmbedderMismatch` otherwise).
This module wires stages together; retrieval, prompting and generation live in their own modules, and
what an answer does with its sources (the gate, the retry, refusals, the citation check) in answer.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ingest.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS, ChunkConfig
from ingest.cluster import Cluster
from ingest.cpu import cpu_status
from ingest.discover import discover
from ingest.embed import Embedder, MLXEmbedder
from ingest.errors import LoadError, NotInIndex, RagError
from ingest.loaders import LOADERS
from ingest.ocr import Reader
from ingest.pipeline import WRITE_BATCH_CHUNKS, IndexReport, Progress, index_paths
from ingest.seams import require
from ingest.state import index_location
from ingest.store import (
    DEFAULT_COLLECTION,
    Filter,
    Store,
    check_collection_name,
    check_embedder,
    summarize,
)
from ingest.watch import DEFAULT_DEBOUNCE_MS, watch_paths
from rag import pages
from rag.answer import Retrieved, answer_events
from rag.chat import Conversation
from rag.context import assemble, fit_budget, merge_adjacent, named_document
from rag.defaults import (
    DEFAULT_CONTEXT_TOKENS,
    DEFAULT_EMBED_MODEL,
    DEFAULT_K,
    DEFAULT_LLM,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODE,
    DEFAULT_OCR,
    DEFAULT_PAGE_WIDTH,
)
from rag.generate import Generator, MLXGenerator, elapsed_ms
from rag.overview import overview, scope
from rag.prompt import build_messages
from rag.refusal import Gate, ReadCheck, check_for, gate_for
from rag.rerank import Reranker
from rag.retrieve import retrieve
from rag.retrieve import source_from_row as _source
from rag.types import Answer, Event, IndexStatus, Source, collect

PROMPT_OVERHEAD_TOKENS = 64  # chat-template tokens around the messages


def _fast_paths() -> dict[str, str]:
    """Which speed-ups over other packages' internals this process would use (all off with a GPU)."""
    from ingest import fastpaths
    from ingest.models import mlx_on_cpu

    if not mlx_on_cpu():
        return {name: "off: not used where MLX has a GPU" for name in fastpaths.FAST_PATHS}
    return {name: "on" if ok else f"off: {why}" for name, ok, why in fastpaths.report()}


class Index:
    """A document index on disk (LanceDB) plus the models that read and answer from it.

    Args:
        path: the index folder (created by the first `add`).
        embed_model: hub id, local folder, or an Embedder object. Default: the index's own model,
            or mlx-community/Qwen3-Embedding-0.6B-8bit for a new index.
        llm: hub id, local folder, or a Generator object. Default: mlx-community/Qwen3-4B-4bit.
        reranker: hub id, local folder or a Reranker object (reranking on by default), False (off), or
            None: mlx-community/Qwen3-Reranker-0.6B-4bit, on by default only where MLX has a GPU.
        storage_options: for an index in object storage (`path` = "s3://bucket/prefix", "gs://…",
            "az://…"): LanceDB's storage options, e.g. {"aws_endpoint": "http://127.0.0.1:9000",
            "allow_http": "true"} for an S3-compatible server; credentials may come from AWS_* variables.
    A model object must be an instance of a subclass of rag.Embedder, rag.Generator or rag.Reranker
    (see examples/custom_models.py); anything else raises RagError here, naming what it lacks.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        embed_model: str | os.PathLike[str] | Embedder | None = None,
        llm: str | os.PathLike[str] | Generator | None = None,
        reranker: str | os.PathLike[str] | bool | Reranker | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        self.path: Path | str = index_location(path)  # a URI stays a string
        self.storage_options = dict(storage_options or {})
        # An object is checked here, at the door: one that isn't the interface fails naming what it lacks,
        # instead of being taken for a model name and failing to load.
        self._embedder: Embedder | None = _model_object(embed_model, Embedder, "embed_model")
        self._generator: Generator | None = _model_object(llm, Generator, "llm")
        self._reranker: Reranker | None = _model_object(reranker, Reranker, "reranker")
        self._embed_spec = embed_model
        self._llm_spec = llm if llm is not None else DEFAULT_LLM
        self._rerank_spec = reranker
        self._store: Store | None = None
        self._gate: Gate | None = None

    # -- models, loaded on first use -----------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self._store is not None or Store.exists(self.path, self.storage_options)

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
            self._store = Store.open(self.path, self.storage_options)
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
        ocr: str | Reader = DEFAULT_OCR,
        cluster: Cluster | None = None,
    ) -> IndexReport:
        """Bring `collection` in line with these files and folders: new and changed files are indexed,
        unchanged ones skipped, renamed ones re-pathed, deleted ones removed. Bad files are listed in
        `report.failed`, never raised. `password` is tried on encrypted PDFs; every `batch_chunks`
        chunks are embedded and committed together. If another run is writing to this index, this one
        waits for it (telling `on_wait` first) and then does only what is left. `ocr` reads scanned PDF
        pages and images: "auto" (pages without a usable text layer), "force" (every page) or "off", or an
        `ingest.ocr.Reader` (another engine, resolution or cache). `cluster` (an `ingest.cluster.Cluster`)
        spreads loading and embedding over a Ray cluster (the `[cluster]` extra); the index ends the same."""
        check_collection_name(collection)
        self._check_paths(paths)
        store = self._writable()
        stored = store.meta["chunking"]
        chunking = ChunkConfig(stored["max_tokens"], stored["overlap_tokens"])
        if cluster is not None:
            from ingest.cluster import index_paths_ray

            if not isinstance(ocr, str):
                raise RagError("a cluster run takes the OCR mode by name", "pass ocr='auto', 'force' or 'off'")
            batch = None if batch_chunks == WRITE_BATCH_CHUNKS else batch_chunks
            return index_paths_ray(
                paths, store, self.embedder, chunking, cluster=cluster, collection=collection, password=password,
                progress=progress, batch_chunks=batch, on_wait=on_wait, ocr=ocr,
            )  # fmt: skip
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
            ocr=ocr,
        )

    def watch(
        self,
        *paths: str | os.PathLike[str],
        collection: str = DEFAULT_COLLECTION,
        password: str | None = None,
        on_report: Callable[[IndexReport], None] | None = None,
        stop: threading.Event | None = None,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
        ocr: str | Reader = DEFAULT_OCR,
    ) -> None:
        """Index `paths`, then keep the index in sync as files change, until `stop` is set (or Ctrl-C).

        Bursts of file events are debounced and batched into one incremental `add` run each;
        `on_report` receives every run's report (the first one included).
        """

        def sync() -> IndexReport:
            return self.add(*paths, collection=collection, password=password, ocr=ocr)

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
            mode: "hybrid" (default: vector + full-text, scores combined), "vector" or "text".
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
        found = retrieve(store, self.embedder, query, k, mode=mode, where=where, reranker=reranker)
        # Only an empty result asks whether the collection exists: a search that finds something doesn't
        # pay for reading the document list.
        if not found and collection is not None and collection not in store.collections():
            raise NotInIndex(
                f"no collection '{collection}' in {self.path}", "see `rag collection list` for the collections"
            )
        return found

    def sources(self, question: str, k: int = DEFAULT_K, *, widen: int = 0, **search_options) -> list[Source]:
        """The k sources to answer `question` from: retrieved (3k candidates, same options as `search`),
        diversified across documents, widened by `widen` neighbouring chunks, adjacent chunks merged."""
        ranked = self.search(question, k * 3, **search_options)
        return assemble(ranked, k, store=self._open(), widen=widen)

    @property
    def reranker(self) -> Reranker | None:
        """The reranker (loaded on first use), or None if reranking is off for this index."""
        if self._reranker is None and self._rerank_spec is not False:
            from rag.defaults import DEFAULT_RERANK_MODEL
            from rag.rerank import MLXReranker

            spec = self._rerank_spec
            self._reranker = MLXReranker(DEFAULT_RERANK_MODEL if spec is None or spec is True else str(spec))
        return self._reranker

    def _rerank_by_default(self) -> bool:
        if self._rerank_spec is False:
            return False
        if self._rerank_spec is not None:
            return True
        from ingest.models import mlx_on_cpu

        return not mlx_on_cpu()  # auto: on with a GPU (Apple silicon), off on CPU-only machines

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

    def neighbours(self, source: Source, widen: int = 1) -> list[Source]:
        """The chunks of `source`'s document from `widen` before it to `widen` after it, itself
        included, in reading order, each with score 0.0 (consecutive chunks overlap by up to 32 tokens)."""
        indexes = range(source.chunk_index - widen, source.chunk_index + widen + 1)
        return [_source(row, 0.0) for row in self._open().neighbours(source.collection, source.path, indexes)]

    def document_file(self, path: str, collection: str | None = None) -> Path:
        """The file on this machine of the indexed document whose path is exactly `path` (`Source.path`,
        or a `documents()` entry's): no other path is ever resolved, so nothing outside the index is
        reachable through it. Raises NotInIndex for any other path, LoadError if the file is gone."""
        if not any(d["path"] == path for d in self.documents(collection=collection)):
            raise NotInIndex(f"no document '{path}' in {self.path}", "see `rag docs` for what is indexed")
        file = Path(path)
        if not file.is_file():
            raise LoadError(f"{path}: the file is no longer there (run `rag index` to update the index)")
        return file

    def page_image(self, path: str, page: int | None = None, *, width: int = DEFAULT_PAGE_WIDTH) -> bytes:
        """Page `page` (1-based) of an indexed PDF, or frame `page` of an indexed image (None: the first),
        as PNG, `width` pixels wide. Raises NotInIndex (as `document_file`), LoadError if the document
        has no pages or that page can't be drawn."""
        file = self.document_file(path)
        if not pages.has_pages(path):
            raise LoadError(f"{file.name} has no page images: only PDFs and images do")
        return pages.page_image(file, page, width)

    def locate(self, source: Source, quote: str) -> pages.PageView:
        """Where `quote` (e.g. an `Evidence.snippet`) is on the page of `source` (a PDF page or an image):
        boxes from the PDF's text layer, or from OCR's lines for a page the index read by OCR (its OCR
        cache, else read again). No boxes when it isn't found there; NotInIndex, LoadError as `page_image`."""
        file = self.document_file(source.path)
        return pages.locate(file, source.page, quote, ocr=source.ocr is not None, ocr_cache=self._open().ocr_cache)

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
            raise NotInIndex(f"no collection '{name}' in {self.path}", "see `rag collection list` for the collections")
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
            meta = self._embedder_meta(with_dim=True)
            self._store = Store.open_or_create(self.path, meta, asdict(chunking), self.storage_options)
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
        sources: Sequence[Source] | None = None,
        **search_options,
    ) -> Iterator[Event]:
        """Answer `question` from the index, streaming: a SourcesEvent, then TokenEvents (and
        ThinkingEvents if `thinking`), then a DoneEvent carrying the full, checked Answer.

        Sources come from `context` (search options: mode, rerank, path_globs, file_types), cut to fit
        `context_tokens` (capped by the model's window) minus the answer's `max_tokens`; a question that
        names an indexed document ("summarise report.pdf") gets that whole document when it fits.
        What happens to them is the answer policy (rag/answer.py): unless `allow_general`, a question
        whose sources fall below the calibrated relevance gate, or whose answer says the sources don't
        hold it, ends as a refusal (Answer.refused, Answer.refusal_reason says why), with the standard
        "not found in your documents" text and the closest sources; [n] citations are checked against
        the sources. What the TokenEvents carry is exactly `Answer.text`; a looping reply ends at its
        first repetition (`Answer.stopped_reason`). `sources` answers from these instead of retrieving
        (an app's own retrieval; `rag eval answers --oracle` gives the gold paragraph): they are cut to
        the budget the same way; the relevance gate doesn't judge them (the model may still refuse)."""
        self._open()  # a missing index fails before any model loads
        self.embedder, self.generator  # load both models before the clock starts  # noqa: B018
        started = time.perf_counter()
        budget = self._source_budget(question, max_tokens, context_tokens)
        if sources is not None:
            shown = fit_budget(list(sources), self.generator.count_tokens, budget)
            retrieved = Retrieved(question, shown, shown, False, started, elapsed_ms(started), chosen=True)
        else:
            shown, judged, whole, query = self._answer_sources(question, k, widen, collection, budget, search_options)
            retrieved = Retrieved(question, shown, judged, whole, started, elapsed_ms(started), query=query)
        yield from answer_events(
            retrieved,
            self.generator,
            self.gate,
            read_check=self.check,
            allow_general=allow_general,
            thinking=thinking,
            max_tokens=max_tokens,
        )

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

    @cached_property
    def check(self) -> ReadCheck | None:
        """The read check calibrated for this index's chat model (None: the model has none)."""
        return check_for(getattr(self.generator, "id", None))

    def _source_budget(self, question: str, max_tokens: int, context_tokens: int) -> int:
        """Tokens left for source text: the context window (capped by `context_tokens`) minus the
        prompt's fixed parts and the answer."""
        count = self.generator.count_tokens
        window = min(self.generator.context_window or context_tokens, context_tokens)
        fixed = sum(count(m["content"]) for m in build_messages(question, [])) + PROMPT_OVERHEAD_TOKENS
        return max(window - fixed - max_tokens, 0)

    def _answer_sources(
        self, question: str, k: int, widen: int, collection: str | None, budget: int, search_options: dict
    ) -> tuple[list[Source], list[Source], bool, str]:
        """(the sources to answer from, the sources the refusal gate judges, whether they are what the
        question asks for as a whole, what was searched for). The gate always judges its calibrated
        number of best sources, so answering from fewer (a small `k` for a small model) doesn't make it
        refuse more. A question naming an indexed document gets that whole document when it fits; one
        about the documents in general ("what is this folder about?") their overview (rag/overview.py);
        one about a topic in general ("summarise my notes on X") is searched for by its topic."""
        count = self.generator.count_tokens
        store = self._open()
        named = named_document(question, list(store.documents(collection)))
        if named:
            whole = merge_adjacent([_source(row, 1.0) for row in store.document_chunks(named, collection)])
            if whole and fit_budget(whole, count, budget) == whole:  # all of it fits, uncut
                return whole, whole, True, question
        about = scope(question)
        if about is not None and about.topic is None:
            shown = fit_budget(overview([_source(row, 1.0) for row in store.first_chunks(collection)]), count, budget)
            if shown:
                return shown, shown, True, question
        query = about.topic if about is not None and about.topic else question
        ranked = self.sources(query, max(k, self.gate.k), widen=widen, collection=collection, **search_options)
        return fit_budget(ranked[:k], count, budget), ranked[: self.gate.k], False, query

    def ask(self, question: str, **options) -> Answer:
        """Answer `question` (same options as `stream_answer`); returns the finished Answer."""
        return collect(self.stream_answer(question, **options))

    def status(self) -> IndexStatus:
        """What is in the index and how it was built (no model is loaded)."""
        if not self.exists:
            return IndexStatus(path=str(self.path), exists=False, blas=cpu_status(), fast_paths=_fast_paths())
        store = self._open()
        meta = store.meta
        docs = store.document_list()  # one read, of one table version: the numbers agree
        documents, chunks, collections = summarize(docs)
        ocr = [d["ocr_pages"] for d in docs]
        return IndexStatus(
            path=str(self.path),
            exists=True,
            documents=documents,
            chunks=chunks,
            collections=collections,
            failures=store.failures(),
            skipped=store.skipped(),
            ocr_pages=sum(ocr),
            ocr_documents=sum(n > 0 for n in ocr),
            embedder=meta["embedder"]["id"],
            dim=meta["embedder"]["dim"],
            chunking=meta.get("chunking", {}),
            created=meta.get("created", ""),
            blas=cpu_status(),
            fast_paths=_fast_paths(),
        )

    def _check_query_embedder(self, store: Store) -> None:
        if self._embed_spec is not None:
            check_embedder(store.meta, self._embedder_meta(), self.path)


def open_index(
    path: str | os.PathLike[str],
    *,
    embed_model: str | os.PathLike[str] | Embedder | None = None,
    llm: str | os.PathLike[str] | Generator | None = None,
    reranker: str | os.PathLike[str] | bool | Reranker | None = None,
    storage_options: dict[str, str] | None = None,
) -> Index:
    """Open (or prepare to create) the index at `path`. See `Index` for the arguments.

    >>> index = open_index("~/.local/share/rag/index", embed_model="path/to/all-MiniLM-L6-v2")
    >>> index.add("~/Documents")  # doctest: +SKIP
    """
    return Index(path, embed_model=embed_model, llm=llm, reranker=reranker, storage_options=storage_options)


def _model_object(value: object, seam: type, argument: str) -> Any:
    """`value` if it is a model object (checked against `seam`: RagError if it doesn't fit); None for
    a spec (a hub id or folder) or None/True/False, which the model properties resolve on first use."""
    if value is None or isinstance(value, str | os.PathLike | bool):
        return None
    return require(value, seam, argument)
