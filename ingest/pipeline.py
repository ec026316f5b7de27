"""The ingest pipeline: discover -> load -> chunk -> embed -> write, with a per-file report.

Files whose content hash is already stored under the same path are skipped; changed files have their
chunks replaced. Chunks are embedded in batches across files and written a few documents at a time, each
document in one commit. One bad file becomes a line in the report, never an aborted run.
This module does not decide which models to use or where the index lives: callers pass them in.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.chunking import Chunk, ChunkConfig, chunk_blocks
from ingest.discover import discover
from ingest.embed import Embedder
from ingest.errors import LoadError, UnsupportedFile
from ingest.loaders import LOADERS, load
from ingest.store import ChunkRow, Store

WRITE_BATCH_CHUNKS = 256  # embed and commit once this many chunks are pending


@dataclass
class IndexReport:
    """What an index run did. `failed` and `skipped` hold (path, one-line reason)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Progress:
    """Sent to the progress callback after each file."""

    path: str
    done: int
    total: int
    chunks: int


@dataclass
class _Pending:
    paths: list[str] = field(default_factory=list)
    rows: list[ChunkRow] = field(default_factory=list)
    is_new: dict[str, bool] = field(default_factory=dict)


def index_paths(
    paths: Iterable[str | Path],
    store: Store,
    embedder: Embedder,
    chunking: ChunkConfig = ChunkConfig(),
    progress: Callable[[Progress], None] | None = None,
) -> IndexReport:
    """Index files and folders into `store`. Returns an IndexReport; raises only for bad arguments.

    Args:
        paths: files and/or folders to index (folders are walked, hidden entries skipped).
        store: an open Store whose embedder matches `embedder`.
        embedder: makes the vectors; its `token_spans` (if any) measures chunks.
        chunking: chunk size and overlap in tokens. Default 256 / 32.
        progress: called after each file with a Progress.
    """
    started = time.perf_counter()
    report = IndexReport()
    paths = list(paths)
    files = list(discover(paths))
    stored = store.documents()
    pending = _Pending()
    for done, path in enumerate(files, start=1):
        key = str(path)
        try:
            if path.suffix.lower() not in LOADERS:
                raise UnsupportedFile(f"unsupported file type '{path.suffix or path.name}'")
            data_hash = _hash_file(path)
            if stored.get(key) == data_hash:
                report.unchanged.append(key)
            else:
                chunks = chunk_blocks(load(path), embedder.token_spans, chunking)
                pending.paths.append(key)
                pending.is_new[key] = key not in stored
                pending.rows.extend(_rows(key, data_hash, chunks))
        except UnsupportedFile as exc:
            (report.failed if _named(path, paths) else report.skipped).append((key, str(exc)))
        except (LoadError, OSError, RecursionError, MemoryError) as exc:
            report.failed.append((key, _reason(exc)))
        if len(pending.rows) >= WRITE_BATCH_CHUNKS:
            _flush(pending, store, embedder, report)
        if progress:
            progress(Progress(key, done, len(files), report.chunks + len(pending.rows)))
    _flush(pending, store, embedder, report)
    report.seconds = time.perf_counter() - started
    return report


def _flush(pending: _Pending, store: Store, embedder: Embedder, report: IndexReport) -> None:
    if not pending.paths:
        return
    vectors = embedder.embed([r.text for r in pending.rows]) if pending.rows else np.zeros((0, 1))
    store.replace_documents(pending.paths, pending.rows, vectors)
    for key in pending.paths:
        (report.added if pending.is_new[key] else report.updated).append(key)
    report.chunks += len(pending.rows)
    pending.paths, pending.rows, pending.is_new = [], [], {}


def _rows(path: str, doc_hash: str, chunks: list[Chunk]) -> list[ChunkRow]:
    return [
        ChunkRow(
            id=hashlib.sha1(f"{path}\0{doc_hash}\0{i}".encode()).hexdigest()[:20],
            path=path,
            doc_hash=doc_hash,
            chunk_index=i,
            text=c.text,
            heading=" > ".join(c.heading),
            page=c.page,
            char_start=c.start,
            char_end=c.end,
        )
        for i, c in enumerate(chunks)
    ]


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _named(path: Path, given: Iterable[str | Path]) -> bool:
    return any(Path(g).expanduser().resolve() == path for g in given)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"unreadable: {exc.strerror or exc}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
