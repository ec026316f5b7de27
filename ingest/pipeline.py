"""The ingest pipeline: discover -> load -> chunk -> embed -> write, incremental, with a per-file report.

A re-run does the least work that makes the index match the folder:
- unchanged files (same size and mtime) are skipped without being read; a file whose size/mtime changed
  but whose content hash did not only gets its metadata refreshed;
- a file whose content moved to a new path (rename/move) keeps its chunks and vectors, re-pathed;
- changed files are re-chunked, and only chunks whose text is new are embedded (the others reuse their
  stored vectors: the embedding cache is keyed by embedder fingerprint + chunk text);
- files that disappeared from under the given roots are removed; files that failed before are reported
  again without being retried unless something that decides the outcome changed (their bytes, the
  loader version, a password now given for an encrypted PDF).
Each batch of documents is written in one commit (see store.py), so a crash loses at most the batch in
flight and the next run finishes the work. One bad file becomes a line in the report, never an abort:
any exception while loading, normalising, chunking, tokenizing or embedding it is that file's failure.
This module does not decide which models to use or where the index lives: callers pass them in.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ingest.blocks import describe
from ingest.chunking import Chunk, ChunkConfig, chunk_blocks
from ingest.discover import discover
from ingest.embed import Embedder
from ingest.errors import LoadError, RagError, UnsupportedFile
from ingest.loaders import IMAGE_SUFFIXES, LOADER_VERSION, LOADERS, load
from ingest.ocr import DEFAULT_MODE, Reader
from ingest.store import DEFAULT_COLLECTION, ChunkRow, DocInfo, Store

WRITE_BATCH_CHUNKS = 256  # embed and commit once this many chunks are pending
EMBED_SLICE = 256  # texts per embed call; progress is reported after each


@dataclass
class IndexReport:
    """What an index run did. `failed` and `skipped` hold (path, one-line reason); `renamed` (old, new).

    `embedded` counts chunks sent to the embedder; `reused` counts chunks whose vector came from the
    embedding cache or a renamed file. `ocr_pages` counts pages (and images) whose text came from OCR,
    `ocr_read` those the OCR engine read (the rest came from its cache); `warnings` holds (path, reason)
    for indexed files that lost a page (e.g. one OCR could not read).
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    ocr_pages: int = 0
    ocr_read: int = 0
    warnings: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.renamed)} renamed, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged, {len(self.failed)} failed"
        )


@dataclass(frozen=True)
class Progress:
    """Sent to the progress callback as the run moves through its phases: "discovering" (finding the
    files; `total` not known yet), "loading" a file (`done` counts the files before it), "ocr" (after
    each page read by OCR), "embedding" (after each slice of its chunks), "writing" a batch, "done" with
    a file, and "indexing" at the end (building the search indexes)."""

    path: str
    done: int
    total: int
    chunks: int  # chunks written or pending so far
    embedded: int  # chunks embedded so far
    phase: str = ""
    ocr_pages: int = 0  # pages read by OCR so far (from its cache or not)


def index_paths(
    paths: Iterable[str | os.PathLike[str]],
    store: Store,
    embedder: Embedder,
    chunking: ChunkConfig = ChunkConfig(),
    *,
    collection: str = DEFAULT_COLLECTION,
    password: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    batch_chunks: int = WRITE_BATCH_CHUNKS,
    on_wait: Callable[[str], None] | None = None,
    ocr: str | Reader = DEFAULT_MODE,
) -> IndexReport:
    """Bring `collection` in `store` in line with the files under `paths`. Returns an IndexReport.

    Args:
        paths: files and/or folders (folders are walked, hidden entries skipped). Documents stored from
            under these paths that no longer exist are removed; others are left alone.
        store: an open Store whose embedder matches `embedder`.
        embedder: makes the vectors; its `token_spans` measures chunks.
        chunking: chunk size and overlap in tokens. Default 256 / 32.
        collection: which collection of the index to update. Default "default".
        password: tried on encrypted PDFs.
        progress: called after each file, and while a big file's chunks are embedded, with a Progress.
        batch_chunks: embed and commit whenever this many chunks are pending. Default 256.
        on_wait: told (one line) if another index run holds the index's writer lock; this run then
            waits for it and starts from what it wrote.
        ocr: "auto" (default: scanned pages and images), "force" (every PDF page) or "off"; or a
            configured ocr.Reader. Results are cached in the index's ocr-cache/ folder.
    """
    given = [str(p) for p in paths]
    tell = progress or (lambda _progress: None)
    reader = ocr if isinstance(ocr, Reader) else Reader(ocr, cache=store.ocr_cache)
    with store.write_lock(on_wait):
        run = _Run(store, embedder, chunking, collection, password, given, reader)  # reads the state after the lock
        run.batch_chunks = batch_chunks
        tell(Progress("", 0, 0, 0, 0, "discovering"))
        files = list(discover(run.given))
        run.plan_removals({str(f) for f in files})
        for done, path in enumerate(files, start=1):
            # phases of this file (it may take minutes): loading, embedding slices, writing
            run.on_phase = functools.partial(_tell_phase, tell, run, path, done - 1, len(files))
            run.on_phase("loading")
            run.visit(path)
            tell(run.progress(path, done, len(files), "done"))
        last = files[-1] if files else Path("")  # the last batch is embedded and written after the last file
        run.on_phase = functools.partial(_tell_phase, tell, run, last, len(files), len(files))
        return run.finish()


@dataclass
class _Pending:
    """One document's change waiting for the next commit: the paths whose chunks go, the rows that
    replace them, vectors already known (by row position, for renames), and the report entry it makes."""

    doomed: list[str]
    rows: list[ChunkRow]
    outcome: tuple[list, object]
    known: dict[int, np.ndarray] = field(default_factory=dict)
    stat: os.stat_result | None = None


@dataclass(frozen=True)
class _Job:
    """A file that must be loaded: where it is, what it was when planned, and whether it replaces a version."""

    path: Path
    key: str
    stat: os.stat_result
    digest: str
    updated: bool


def load_and_chunk(
    path: Path, token_spans: Callable[[str], list[tuple[int, int]]], chunking: ChunkConfig, password, ocr: Reader
) -> tuple[list[Chunk], list[str]]:
    """Load one file (OCR through `ocr`) and cut it into chunks measured by `token_spans`: the chunks,
    and the pages it lost ("page 3: OCR failed: …"). Raises what loading raises; an unexpected error
    inside a stage becomes a LoadError naming the stage."""
    with _stage("loading"):
        ocr.problems.clear()
        blocks = load(path, password=password, ocr=ocr)
        problems = list(ocr.problems)
    with _stage("chunking"):
        chunks = chunk_blocks(blocks, token_spans, chunking)
    return chunks, problems


def _tell_phase(tell, run, path: Path, done: int, total: int, phase: str) -> None:
    tell(run.progress(path, done, total, phase))


class _Run:
    """State of one index run; `visit` each file, then `finish`."""

    def __init__(self, store, embedder, chunking, collection, password, given, ocr: Reader) -> None:
        self.store, self.embedder, self.chunking = store, embedder, chunking
        self.collection, self.password, self.given = collection, password, given
        self.started = time.perf_counter()
        self.batch_chunks = WRITE_BATCH_CHUNKS
        self.report = IndexReport()
        self.roots = [Path(p).expanduser().resolve() for p in given]
        self.stored: dict[str, DocInfo] = store.documents(collection)
        self.failed_before = store.failures(collection)
        self.failures = {p: f for p, f in self.failed_before.items() if not self._under_roots(p)}
        self.skipped_before = store.skipped(collection)
        self.skipped = {p: r for p, r in self.skipped_before.items() if not self._under_roots(p)}
        self.gone: dict[str, DocInfo] = {}
        self.pending: list[_Pending] = []  # documents to write in the next commit
        self.on_phase: Callable[[str], None] = lambda phase: None  # told "embedding", "writing", ...
        self.text_index_seen = False
        self.ocr = ocr  # its counters may hold earlier runs' pages: this run reports its own
        self.ocr_pages_before, self.ocr_calls_before = ocr.pages, ocr.calls
        ocr.on_page = lambda: self.on_phase("ocr")

    def progress(self, path: Path, done: int, total: int, phase: str) -> Progress:
        chunks = self.report.chunks + self.pending_chunks
        pages = self.ocr.pages - self.ocr_pages_before
        return Progress(_printable(str(path)), done, total, chunks, self.report.embedded, phase, pages)

    @property
    def pending_chunks(self) -> int:
        return sum(len(p.rows) for p in self.pending)

    def plan_removals(self, present: set[str]) -> None:
        self.gone = {p: d for p, d in self.stored.items() if p not in present and self._under_roots(p)}

    def visit(self, path: Path) -> None:
        """Index one file. Whatever goes wrong with it (unreadable, corrupt, a bug in a loader, the
        tokenizer or the embedder) becomes its one-line failure; the run goes on with the next file."""
        key = str(path)
        stat = None
        try:
            stat = self.stat(path)
            job = self.plan(path, stat)
            if job is not None:
                self.accept(job, *self.load_chunks(path))
        except Exception as exc:  # noqa: BLE001 - containment: one file never aborts the run
            self.contain(path, key, stat, exc)
        if self.pending_chunks >= self.batch_chunks:
            self.flush()

    def stat(self, path: Path) -> os.stat_result:
        _check_name(str(path))
        return path.stat()

    def contain(self, path: Path, key: str, stat: os.stat_result | None, exc: BaseException) -> None:
        """Record what went wrong with one file: a type we don't read, met in a folder, is skipped (named
        in the report); a file named on the command line, or one whose content is not what its supported
        suffix says, has failed; so has any file that raised anything else."""
        if isinstance(exc, UnsupportedFile):
            named = any(Path(g).expanduser().resolve() == path for g in self.given)
            if named or (path.suffix.lower() in LOADERS and not self._unread_image(path)):
                self._fail(key, str(exc), stat)
            else:
                self.report.skipped.append((_printable(key), str(exc)))
                self.skipped[_printable(key)] = str(exc)
        else:
            self._fail(key, _reason(exc), stat)

    def plan(self, path: Path, stat: os.stat_result) -> _Job | None:
        """Decide what a file needs without reading its content more than to hash it: nothing (unchanged,
        only touched, renamed, or a failure not worth retrying; all recorded here), or loading (the job)."""
        key = str(path)
        info = self.stored.get(key)
        if info and (info.size, info.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            self.report.unchanged.append(key)
            return None
        failure = self.failed_before.get(key)
        if failure and not self._worth_retrying(failure, stat):
            self._fail(key, failure["reason"], stat)  # nothing that decides the outcome changed: report it
            return None
        if path.suffix.lower() not in LOADERS:
            raise UnsupportedFile(f"unsupported file type '{path.suffix or path.name}'")
        digest = _hash_file(path)
        if info and info.doc_hash == digest:
            self.store.touch(self.collection, key, stat.st_size, stat.st_mtime_ns)
            self.report.unchanged.append(key)
            return None
        moved_from = None if info else next((p for p, d in self.gone.items() if d.doc_hash == digest), None)
        if moved_from:
            self._rename(moved_from, key, stat)
            return None
        return _Job(path, key, stat, digest, updated=info is not None)

    def load_chunks(self, path: Path) -> tuple[list[Chunk], list[str]]:
        """Load and chunk one file here: its chunks, and the pages it lost (OCR problems)."""
        return load_and_chunk(path, self.embedder.token_spans, self.chunking, self.password, self.ocr)

    def accept(self, job: _Job, chunks: list[Chunk], problems: list[str]) -> None:
        """Queue a loaded file's chunks for the next commit."""
        self.report.warnings += [(_printable(job.key), problem) for problem in problems]
        outcome = (self.report.updated if job.updated else self.report.added, job.key)
        rows = self._rows(job.key, job.digest, job.stat, chunks)
        self.pending.append(_Pending([job.key], rows, outcome, stat=job.stat))

    def _unread_image(self, path: Path) -> bool:
        """An image met with OCR off: skipped (a type not read), not failed."""
        return path.suffix.lower() in IMAGE_SUFFIXES and not self.ocr.on

    def _worth_retrying(self, failure: dict, stat: os.stat_result) -> bool:
        """A file that failed before is tried again when its bytes changed, when this run reads files
        differently (a new loader version), or when a password now given could open it."""
        if (failure.get("size"), failure.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
            return True
        if failure.get("loader") != LOADER_VERSION or failure.get("ocr", DEFAULT_MODE) != self.ocr.mode:
            return True
        return bool(self.password) and str(failure.get("reason", "")).startswith("encrypted PDF")

    def _rename(self, old: str, new: str, stat: os.stat_result) -> None:
        del self.gone[old]
        rows, vectors = self.store.rows(self.collection, [old])
        moved = [
            replace(
                r,
                id=_chunk_id(self.collection, new, r.doc_hash, r.chunk_index),
                path=new,
                doc_size=stat.st_size,
                doc_mtime_ns=stat.st_mtime_ns,
            )
            for r in rows
        ]
        self.report.reused += len(rows)
        self.pending.append(_Pending([old, new], moved, (self.report.renamed, (old, new)), dict(enumerate(vectors))))

    def _fail(self, key: str, reason: str, stat: os.stat_result | None) -> None:
        key = _printable(key)
        self.report.failed.append((key, reason))
        self.failures[key] = {
            "reason": reason,
            "size": stat and stat.st_size,
            "mtime_ns": stat and stat.st_mtime_ns,
            "loader": LOADER_VERSION,
            "ocr": self.ocr.mode,
        }
        if key in self.stored:  # it changed into something unreadable: its old chunks are stale
            self.pending.append(_Pending([key], [], (self.report.removed, key)))

    def _rows(self, key: str, digest: str, stat: os.stat_result, chunks: list[Chunk]) -> list[ChunkRow]:
        prefix = self.embedder.fingerprint.encode() + b"\0"
        return [
            ChunkRow(
                id=_chunk_id(self.collection, key, digest, i),
                collection=self.collection,
                path=key,
                doc_hash=digest,
                doc_size=stat.st_size,
                doc_mtime_ns=stat.st_mtime_ns,
                chunk_index=i,
                text=c.text,
                text_hash=hashlib.sha256(prefix + c.text.encode()).hexdigest()[:32],
                heading=" > ".join(c.heading),
                page=c.page,
                char_start=c.start,
                char_end=c.end,
                ocr=c.ocr,
            )
            for i, c in enumerate(chunks)
        ]

    def flush(self) -> None:
        """Embed what the pending documents need and write them in one commit. If embedding the batch
        fails, each document is embedded on its own: the ones that fail become failures, the rest land."""
        if not self.pending:
            return
        try:
            vectors = self._vectors(self.pending)
        except Exception:  # noqa: BLE001 - find the document(s) the embedder could not take
            vectors = self._vectors_one_by_one()
        rows = [r for p in self.pending for r in p.rows]
        self.on_phase("writing")
        self.store.replace_documents(self.collection, [d for p in self.pending for d in p.doomed], rows, vectors)
        if rows and not self.text_index_seen:  # a first index run: text search works from its first commit
            self.store.ensure_text_index()
            self.text_index_seen = True
        for p in self.pending:
            p.outcome[0].append(p.outcome[1])
        self.report.chunks += len(rows)
        self.pending = []

    def _vectors_one_by_one(self) -> np.ndarray:
        """Embed the pending documents one at a time; each one that fails is recorded as failed (and its
        old chunks, if it had any, are removed), and drops out of the commit."""
        pending, self.pending, parts = self.pending, [], []
        for p in pending:
            try:
                parts.append(self._vectors([p]))
                self.pending.append(p)
            except Exception as exc:  # noqa: BLE001
                self._fail(p.doomed[-1], _reason(exc), p.stat)  # queues the removal of stale chunks
        return np.concatenate(parts) if parts else np.zeros((0, self.store.dim), dtype=np.float32)

    def _vectors(self, pending: list[_Pending]) -> np.ndarray:
        """Vectors for the rows of `pending`: known ones, cached ones, and the rest embedded (once per text)."""
        rows = [r for p in pending for r in p.rows]
        out = np.zeros((len(rows), self.store.dim), dtype=np.float32)
        known, base = {}, 0
        for p in pending:
            known.update({base + i: v for i, v in p.known.items()})
            base += len(p.rows)
        for i, vector in known.items():
            out[i] = vector
        todo = [i for i in range(len(rows)) if i not in known]
        cache = self.store.cached_vectors(rows[i].text_hash for i in todo)
        missing: dict[str, str] = {}
        for i in todo:
            if rows[i].text_hash not in cache:
                missing.setdefault(rows[i].text_hash, rows[i].text)
        hashes, texts = list(missing), list(missing.values())
        for at in range(0, len(texts), EMBED_SLICE):  # in slices, so a big file's progress shows
            with _stage("embedding"):
                embedded = self.embedder.embed(texts[at : at + EMBED_SLICE])
            cache.update(zip(hashes[at : at + EMBED_SLICE], embedded, strict=True))
            self.report.embedded += len(embedded)
            self.on_phase("embedding")
        for i in todo:
            out[i] = cache[rows[i].text_hash]
        self.report.reused += len(todo) - len(missing)
        return out

    def finish(self) -> IndexReport:
        self.flush()
        if self.gone:
            self.store.replace_documents(self.collection, list(self.gone), [], np.zeros((0, self.store.dim)))
            self.report.removed.extend(sorted(self.gone))
        # Indexes follow the rows; a run killed after its last commit left them behind, and the next
        # run (even with nothing to change) builds what is missing: readers never do.
        if self.report.chunks or self.report.removed or not self.store.text_index_complete():
            self.on_phase("indexing")
            self.store.sync_text_index()  # full-text search follows the vectors
            self.store.sync_vector_index()  # ANN index once the table is large enough
        if self.failures != self.failed_before:
            self.store.set_failures(self.collection, self.failures)
        if self.skipped != self.skipped_before:
            self.store.set_skipped(self.collection, self.skipped)
        self.store.refresh_catalog()  # after the last commit, so status and docs read it without LanceDB
        self.report.ocr_pages = self.ocr.pages - self.ocr_pages_before
        self.report.ocr_read = self.ocr.calls - self.ocr_calls_before
        self.report.seconds = time.perf_counter() - self.started
        return self.report

    def _under_roots(self, path: str) -> bool:
        p = Path(path)
        return any(p == root or root in p.parents for root in self.roots)


@contextmanager
def _stage(name: str):
    """Turn an unexpected exception inside one stage of one file into a LoadError naming the stage."""
    try:
        yield
    except (RagError, OSError):
        raise
    except RecursionError:
        raise LoadError(f"{name} failed: too deeply nested to read") from None
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"{name} failed: {type(exc).__name__}: {describe(exc)}") from exc


def _check_name(key: str) -> None:
    """Refuse a path that is not valid Unicode (undecodable bytes in a file name): it cannot be stored."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise LoadError("its file name is not valid UTF-8: rename it") from None


def _printable(key: str) -> str:
    """`key` with undecodable file-name bytes shown as U+FFFD, so it can be reported and recorded."""
    try:
        return key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return key.encode("utf-8", "replace").decode("utf-8")


def _chunk_id(collection: str, path: str, digest: str, index: int) -> str:
    return hashlib.sha1(f"{collection}\0{path}\0{digest}\0{index}".encode()).hexdigest()[:24]


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    """One printable line for a file's failure; unexpected exceptions keep their type for bug reports."""
    if isinstance(exc, OSError):
        return _printable(f"unreadable: {exc.strerror or exc}")
    if isinstance(exc, RecursionError):
        return "too deeply nested to read"
    line = str(exc).splitlines()[0] if str(exc).strip() else ""
    if not isinstance(exc, RagError):
        line = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return _printable(line)[:300]
