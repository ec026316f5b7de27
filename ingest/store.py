"""The index: one LanceDB table of chunks, plus `index.json` (provenance) and `failures.json`.

An index is a local folder or an object-store location (s3://, gs://, az://; see state.py for where the
state lives there and what holds for concurrent writers). Layout of an index folder:
    index.json      schema version, embedder (id, fingerprint, dim), chunking settings
    chunks.lance/   one row per chunk: collection, document path/hash/size/mtime, position, text, vector,
                    OCR confidence (null unless the chunk's page was read by OCR)
    ocr-cache/      what OCR read on each page, keyed by the page's pixels (ingest/ocr.py): derived data
    failures.json   files that could not be indexed, per collection, with the reason (for `rag status`)
    skipped.json    files of types rag doesn't read, met in indexed folders, per collection
    catalog.json    the document list as of the table's latest version (ingest/catalog.py), so that
                    `rag status` and `rag docs` don't need LanceDB; derived, rebuilt when stale
    write.lock      held by the one index run writing at a time (`write_lock`)

Every change to a set of documents is ONE LanceDB commit (`merge_insert` that inserts the new chunks and
deletes the documents' old ones), so after a crash at any moment each document is either fully present,
in its old or new version, or absent — never half-written or duplicated. Readers see whole commits.
The store refuses vectors from a different embedder (`EmbedderMismatch`).
From `VECTOR_INDEX_MIN_ROWS` chunks on, vector search goes through an ANN index (IVF_SQ, see
`sync_vector_index`); smaller tables are scanned exactly.
This module knows nothing about files, models or prompts: it stores and finds rows.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingest import catalog
from ingest.errors import EmbedderMismatch, IndexIncomplete, IndexNotFound, RagError, TextIndexMissing
from ingest.normalize import cjk_pairs, cjk_runs, has_cjk
from ingest.state import FolderState, TableCache, TableState, connect, index_location, is_remote
from ingest.state import quote as _quote

SCHEMA_VERSION = 2
TABLE = "chunks"
META_FILE = "index.json"
OCR_CACHE = "ocr-cache"  # folder of OCR results (ingest/ocr.py Reader), derived data
FAILURES_FILE = "failures.json"
SKIPPED_FILE = "skipped.json"
LOCK_FILE = "write.lock"
DEFAULT_COLLECTION = "default"

# Vector (ANN) index from this many chunks; below it an exact scan is as fast and exact by definition.
# Chosen with `bench/query.py` (its numbers are in the README).
VECTOR_INDEX_MIN_ROWS = 10_000
VECTOR_NPROBES = 20  # IVF partitions searched per query (at least; more when a filter leaves too few rows)
# Re-rank refine_factor x k candidates with the full float32 vectors: the scores are then exact cosine
# similarities instead of the 8-bit codes' approximations, and recall@10 rises (bench/query.py).
VECTOR_REFINE_FACTOR = 2
RRF_K = 60  # reciprocal rank fusion's constant (`fuse_ranked`)
PHRASE_CANDIDATES = 50  # chunks fetched per CJK phrase of a query (`_phrase_matches`)


@dataclass(frozen=True)
class ChunkRow:
    """One stored chunk, without its vector."""

    id: str
    collection: str
    path: str
    doc_hash: str
    doc_size: int
    doc_mtime_ns: int
    chunk_index: int
    text: str
    text_hash: str  # hash of embedder fingerprint + text: the key of the embedding cache
    heading: str  # heading path joined with " > ", "" when none
    page: int | None
    char_start: int
    char_end: int
    ocr: float | None = None  # mean OCR confidence of the page this chunk was read from; None: a text layer


@dataclass(frozen=True)
class DocInfo:
    """What the store knows about one indexed document."""

    path: str
    doc_hash: str
    size: int
    mtime_ns: int


_TYPES = {
    "id": pa.string(),
    "collection": pa.string(),
    "path": pa.string(),
    "doc_hash": pa.string(),
    "doc_size": pa.int64(),
    "doc_mtime_ns": pa.int64(),
    "chunk_index": pa.int32(),
    "text": pa.string(),
    "text_hash": pa.string(),
    "heading": pa.string(),
    "page": pa.int32(),
    "char_start": pa.int64(),
    "char_end": pa.int64(),
    "ocr": pa.float32(),
}
ROW_FIELDS = [f.name for f in fields(ChunkRow)]
NULLABLE = ("page", "ocr")
OCR = "ocr"


PAIRS = "cjk_pairs"  # derived from text at write time (normalize.cjk_pairs); has its own full-text index
# Columns an older index lacks until its next write adds them, empty (`_add_late_columns`).
LATE_COLUMNS = {PAIRS: "CAST(NULL AS STRING)", OCR: "CAST(NULL AS FLOAT)"}


def chunk_schema(dim: int) -> pa.Schema:
    columns = [pa.field(name, _TYPES[name], nullable=name in NULLABLE) for name in ROW_FIELDS]
    # The pairs column comes last and may be null, as on an index that gained it later (`_add_late_columns`).
    return pa.schema(
        columns + [pa.field("vector", pa.list_(pa.float32(), dim), nullable=False), pa.field(PAIRS, pa.string())]
    )


class Store:
    """An index. Use `Store.open` for an existing one, `Store.open_or_create` to write.

    `root` is a folder (Path) or an object-store URI (str); `storage_options` go to LanceDB as they are
    (credentials, `aws_endpoint` for an S3-compatible store, `allow_http` for one on plain HTTP)."""

    def __init__(self, root: Path | str, meta: dict[str, Any], storage_options: dict[str, str] | None = None) -> None:
        self.root = index_location(root)
        self.remote = is_remote(self.root)
        self.storage_options = dict(storage_options or {})
        self.meta = meta
        self.dim = int(meta["embedder"]["dim"])
        self._table_dir = Path(self.root) / f"{TABLE}.lance"  # local only: the catalog stamps it
        self._lance_table = None  # LanceDB is opened on first use: the catalog answers without it
        self._fields: list[str] | None = None
        self._db = None
        self._state = _state(self.root, self.storage_options) if self.remote else FolderState(Path(self.root))

    @property
    def table_uri(self) -> str:
        """The Lance dataset of the chunks (for writers that commit fragments themselves, ingest/cluster.py)."""
        return f"{self.root}/{TABLE}.lance" if self.remote else str(self._table_dir)

    @property
    def ocr_cache(self) -> Path | TableCache:
        """Where OCR results are kept: the ocr-cache folder, or the ocr_cache table in object storage."""
        return TableCache(str(self.root), self.storage_options) if self.remote else Path(self.root) / OCR_CACHE

    @property
    def _table(self):
        if self._lance_table is None:
            db = self._db = self._db or connect(self.root, self.storage_options)
            if TABLE in db.list_tables().tables:
                self._lance_table = db.open_table(TABLE)
            else:
                self._lance_table = db.create_table(TABLE, schema=chunk_schema(self.dim), exist_ok=True)
        return self._lance_table

    @staticmethod
    def exists(root: Path | str, storage_options: dict[str, str] | None = None) -> bool:
        """Whether there is an index at `root` (its provenance, index.json, is there)."""
        root = index_location(root)
        if not is_remote(root):
            return (Path(root) / META_FILE).is_file()
        return bool(_state(root, storage_options).read(META_FILE))

    @classmethod
    def open(cls, root: Path | str, storage_options: dict[str, str] | None = None) -> Store:
        """Open an existing index; raises IndexNotFound if there is none at `root`."""
        root = index_location(root)
        state = _state(root, storage_options) if is_remote(root) else FolderState(Path(root))
        meta = state.read(META_FILE)
        if not meta:
            raise IndexNotFound(f"no index at {root}")
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise IndexNotFound(
                f"the index at {root} has schema version {meta.get('schema_version')}, "
                f"this version of rag reads {SCHEMA_VERSION}",
                "re-create it: delete the folder and run `rag index` again",
            )
        return cls(root, meta, storage_options)

    @classmethod
    def open_or_create(
        cls,
        root: Path | str,
        embedder: dict[str, Any],
        chunking: dict[str, Any],
        storage_options: dict[str, str] | None = None,
    ) -> Store:
        """Open the index at `root` for writing with this embedder, creating it if needed.

        Raises EmbedderMismatch if the index was built with another embedding model.
        """
        root = index_location(root)
        if cls.exists(root, storage_options):
            store = cls.open(root, storage_options)
            check_embedder(store.meta, embedder, root)
            return store
        if not is_remote(root):
            Path(root).mkdir(parents=True, exist_ok=True)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "embedder": embedder,
            "chunking": chunking,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        store = cls(root, meta, storage_options)
        store._state.write(META_FILE, meta)
        return store

    # -- reading -------------------------------------------------------------------------------

    def documents(self, collection: str | None = None) -> dict[str, DocInfo]:
        """Stored documents of `collection` (all collections if None), by path."""
        where = _and("chunk_index = 0", _collection_filter(collection))
        table = self._scan(["path", "doc_hash", "doc_size", "doc_mtime_ns"], where)
        cols = [table.column(c).to_pylist() for c in ("path", "doc_hash", "doc_size", "doc_mtime_ns")]
        return {p: DocInfo(p, h, s, m) for p, h, s, m in zip(*cols, strict=True)}

    def collections(self) -> dict[str, tuple[int, int]]:
        """Map of collection name -> (documents, chunks)."""
        return self.summary()[2]

    def summary(self) -> tuple[int, int, dict[str, tuple[int, int]]]:
        """(documents, chunks, collection -> (documents, chunks)), all from ONE table version, so the
        numbers agree with each other even while another process writes. A document indexed in two
        collections counts once in the total."""
        return summarize(self._all_documents())

    def document_list(self, where: Filter | None = None) -> list[dict[str, Any]]:
        """One entry per (collection, document) matching `where`: collection, path, chunks, pages (the
        highest page number, None without pages), ocr_pages (pages read by OCR; an image counts as one),
        size and mtime_ns as indexed. Sorted by path."""
        docs = self._all_documents()
        return [d for d in docs if where.matches(d["collection"], d["path"])] if where else docs

    def refresh_catalog(self) -> None:
        """Bring catalog.json up to date with the table (writers call it after their last commit)."""
        self._all_documents()

    def _all_documents(self) -> list[dict[str, Any]]:
        """Every document, from the catalog when it describes the latest table version, else from one
        scan of the table (which then becomes the catalog)."""
        if not self.remote and (cached := catalog.load(Path(self.root), self._table_dir)) is not None:
            return cached
        before = None if self.remote else catalog.stamp(self._table_dir)
        columns = ["collection", "path", "chunk_index", "page", "doc_size", "doc_mtime_ns"]
        columns += [OCR] if OCR in self._row_fields else []
        docs: dict[tuple[str, str], dict[str, Any]] = {}
        ocr_pages: dict[tuple[str, str], set] = {}
        for r in self._scan(columns).to_pylist():
            key = (r["collection"], r["path"])
            entry = docs.setdefault(key, {"collection": key[0], "path": key[1], "chunks": 0, "pages": None})
            entry["chunks"] += 1
            entry |= {"size": r["doc_size"], "mtime_ns": r["doc_mtime_ns"]}
            if r["page"] is not None:
                entry["pages"] = max(entry["pages"] or 0, r["page"])
            if r.get(OCR) is not None:
                ocr_pages.setdefault(key, set()).add(r["page"])
        for key, entry in docs.items():
            entry["ocr_pages"] = len(ocr_pages.get(key, ()))
        found = sorted(docs.values(), key=lambda d: (d["path"], d["collection"]))
        if before is not None:
            catalog.save(Path(self.root), self._table_dir, found, before)
        return found

    def count_chunks(self, collection: str | None = None) -> int:
        return self._table.count_rows(_collection_filter(collection))

    def rows(self, collection: str, paths: Iterable[str]) -> tuple[list[ChunkRow], np.ndarray]:
        """All chunks (and vectors) of the given documents, in path then chunk order."""
        paths = list(paths)
        if not paths:
            return [], np.zeros((0, self.dim), dtype=np.float32)
        where = _and(_collection_filter(collection), _in("path", paths))
        table = self._scan(self._row_fields + ["vector"], where).sort_by(
            [("path", "ascending"), ("chunk_index", "ascending")]
        )
        return [_row(r) for r in table.drop_columns(["vector"]).to_pylist()], _vectors(table, self.dim)

    def chunk(self, chunk_id: str) -> ChunkRow | None:
        """The chunk with this id, or None."""
        rows = self._scan(self._row_fields, _in("id", [chunk_id])).to_pylist()
        return _row(rows[0]) if rows else None

    def document_chunks(self, path: str, collection: str | None = None) -> list[ChunkRow]:
        """Every chunk of the document at `path` in `collection` (all if None), by collection then position."""
        table = self._scan(self._row_fields, _and(_in("path", [path]), _collection_filter(collection)))
        table = table.sort_by([("collection", "ascending"), ("chunk_index", "ascending")])
        return [_row(r) for r in table.to_pylist()]

    def first_chunks(self, collection: str | None = None) -> list[ChunkRow]:
        """The first chunk of every document in `collection` (all if None), by path then collection."""
        table = self._scan(self._row_fields, _and("chunk_index = 0", _collection_filter(collection)))
        table = table.sort_by([("path", "ascending"), ("collection", "ascending")])
        return [_row(r) for r in table.to_pylist()]

    def cached_vectors(self, text_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors for any of these text hashes (the embedding cache)."""
        hashes = sorted(set(text_hashes))
        if not hashes:
            return {}
        table = self._scan(["text_hash", "vector"], _in("text_hash", hashes))
        return dict(zip(table.column("text_hash").to_pylist(), _vectors(table, self.dim), strict=True))

    def search(self, vector: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[ChunkRow, float]]:
        """The k nearest chunks by cosine similarity, best first, as (row, score in [-1, 1])."""
        query = self._table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
        query = query.distance_type("cosine").limit(k).select(self._row_fields + ["_distance"])
        # Used only once a vector index exists; maximum 0 lets a narrow filter probe more partitions.
        query = query.minimum_nprobes(VECTOR_NPROBES).maximum_nprobes(0).refine_factor(VECTOR_REFINE_FACTOR)
        if where and where.sql():
            query = query.where(where.sql(), prefilter=True)
        return [(_row(r), 1.0 - float(r["_distance"])) for r in query.to_arrow().to_pylist()]

    def search_text(
        self, text: str, k: int, where: Filter | None = None, *, pairs: bool = True
    ) -> list[tuple[ChunkRow, float]]:
        """The k best full-text matches for `text`, best first, as (row, score): BM25 over words. For a
        query with CJK text, that list is fused (reciprocal rank) with BM25 over character pairs, and
        chunks holding the query's CJK phrases verbatim come first (`_phrase_matches`), so a piece cut
        from inside a Chinese word, or across ICU's word breaks, finds its page. Chunks holding the
        query's codes verbatim come before all of those (`_code_matches`). Readers never build
        indexes: without a full-text index (a run killed before building it) this raises
        TextIndexMissing, and the caller decides how to fall back. `pairs=False` searches words alone
        (bench/cjk_text.py compares the two)."""
        if not text.strip() or not self.count_chunks():
            return []
        indexed = self._text_indexed_columns()
        if "text" not in indexed:
            raise TextIndexMissing(
                f"the index at {self.root} has no full-text index yet",
                "run `rag index` on your folders again: it builds the missing index",
            )
        words = self._bm25("text", text, k, where)
        ranked = words
        query_pairs = cjk_pairs(text) if pairs else ""
        if query_pairs and PAIRS in indexed:
            unique = " ".join(dict.fromkeys(query_pairs.split()))
            fused = fuse_ranked([words, self._bm25(PAIRS, unique, k, where)])
            ranked = _first(self._phrase_matches(text, fused, words, k, where), fused, k)
        elif query_pairs:
            warnings.warn(
                IndexIncomplete(
                    f"the index at {self.root} has no character-pair index, so pieces of Chinese, Japanese or "
                    "Korean words may not be found",
                    "run `rag index` on your folders again: it adds the pair index",
                ),
                stacklevel=3,
            )
        codes = self._code_matches(text, where)
        position = _positions(ranked)
        return _first(sorted(codes, key=lambda hit: (-hit[1], position.get(hit[0].id, len(ranked)))), ranked, k)

    def _bm25(self, column: str, text: str, k: int, where: Filter | None) -> list[tuple[ChunkRow, float]]:
        return [(_row(r), float(r["_score"])) for r in self._fts(text, k, where, column)]

    def _fts(self, query: Any, k: int, where: Filter | None, column: str | None = None) -> list[dict[str, Any]]:
        """The k best records of a full-text query (a string over `column`, or a LanceDB query object)."""
        search = self._table.search(query, query_type="fts", fts_columns=column).limit(k)
        search = search.select(self._row_fields + ["_score"])
        if where and where.sql():
            search = search.where(where.sql(), prefilter=True)
        return search.to_arrow().to_pylist()

    def _phrase_matches(
        self,
        text: str,
        candidates: list[tuple[ChunkRow, float]],
        words: list[tuple[ChunkRow, float]],
        k: int,
        where: Filter | None,
    ) -> list[tuple[ChunkRow, int]]:
        """Chunks holding the query's CJK phrases (runs of 3 or more CJK characters) verbatim, with how
        many they hold: among the `candidates` and the chunks the pair index finds holding a phrase (a
        run of consecutive pairs). Those holding more phrases first, then in word-BM25 order (`words`),
        so that of many chunks sharing a stock phrase ("此命令为 … 的别名") the one the rest of the query
        picks comes first; then in the pair index's order."""
        from lancedb.query import PhraseQuery

        phrases = cjk_runs(text, 3)[:4]
        if not phrases:
            return []
        rows = {row.id: row for row, _ in candidates}
        found: dict[str, int] = {}
        for phrase in phrases:
            query = PhraseQuery(cjk_pairs(phrase), PAIRS, slop=0, document_granularity=None)
            for record in self._fts(query, max(k, PHRASE_CANDIDATES), where):
                row = rows.setdefault(record["id"], _row(record))
                found.setdefault(row.id, len(found))
        held = {i: n for i, row in rows.items() if (n := sum(p in row.text for p in phrases))}
        position = _positions(words)
        ids = sorted(held, key=lambda i: (-held[i], position.get(i, len(words)), found.get(i, len(found))))
        return [(rows[i], held[i]) for i in ids]

    def _code_matches(self, text: str, where: Filter | None) -> list[tuple[ChunkRow, int]]:
        """Every chunk that contains the query's code-like tokens verbatim (case-insensitive), with how
        many it contains. Word tokenizers split "8-2-6-3" or "C++" into pieces too short to index; a
        substring scan finds them. Only for queries that have such tokens."""
        codes = code_tokens(text)
        if not codes:
            return []
        likes = [f"lower(text) LIKE {_quote('%' + _like_escape(c.lower()) + '%')}" for c in codes]
        rows = self._scan(self._row_fields, _and("(" + " OR ".join(likes) + ")", where.sql() if where else None))
        hits = []
        for record in rows.to_pylist():
            body = record["text"].lower()
            hits.append((_row(record), sum(c.lower() in body for c in codes)))
        return hits  # all of them: search_text orders them by codes held, then by rank

    def neighbours(self, collection: str, path: str, indexes: Iterable[int]) -> list[ChunkRow]:
        """Chunks of one document at the given chunk indexes (those that exist), in order. Only those
        rows are read: a cited chunk of a 2,000-chunk PDF doesn't read the other chunks."""
        wanted = sorted({int(i) for i in indexes if i >= 0})
        if not wanted:
            return []
        where = _and(
            _in("path", [path]), _collection_filter(collection), f"chunk_index IN ({', '.join(map(str, wanted))})"
        )
        table = self._scan(self._row_fields, where).sort_by([("chunk_index", "ascending")])
        return [_row(r) for r in table.to_pylist()]

    def has_text_index(self) -> bool:
        """Whether the word (BM25) index exists: full-text search works."""
        return "text" in self._text_indexed_columns()

    def text_index_complete(self) -> bool:
        """Whether both full-text indexes exist (words, and CJK character pairs)."""
        return {"text", PAIRS} <= self._text_indexed_columns()

    def _text_indexed_columns(self) -> set[str]:
        return {c for i in self._table.list_indices() if i.index_type == "FTS" for c in i.columns}

    def ensure_text_index(self) -> None:
        """Create the full-text indexes (words, CJK pairs) that are missing (writers only). Rows added
        later are searched too (unindexed rows are scanned) until `sync_text_index` folds them in."""
        indexed = self._text_indexed_columns()
        if "text" not in indexed:
            self._table.create_index("text", config=_fts_config(), replace=True)
        if PAIRS not in indexed:
            self._add_late_columns()
            self._fill_pairs()
            self._table.create_index(PAIRS, config=_pairs_config(), replace=True)

    def sync_text_index(self) -> None:
        """Bring the full-text indexes up to date after writes: build what is missing, else fold the rows
        added since into them (LanceDB's optimize, which also compacts small files)."""
        if not self.count_chunks():
            return
        if self.text_index_complete():
            self._table.optimize()
        else:
            self.ensure_text_index()

    def _add_late_columns(self) -> None:
        """An index made before a column in `LATE_COLUMNS` existed gets it, empty (one commit, no data
        rewritten): no chunk of it was read by OCR, and the rows that need CJK pairs are filled before
        the pair index is built (`_fill_pairs`)."""
        names = set(self._table.schema.names)
        missing = {name: sql for name, sql in LATE_COLUMNS.items() if name not in names}
        if missing:
            self._table.add_columns(missing)
            self._fields = None

    @property
    def _row_fields(self) -> list[str]:
        """ROW_FIELDS, less the OCR column on an index made before it that no write has touched yet."""
        if self._fields is None:
            names = set(self._table.schema.names)
            self._fields = [f for f in ROW_FIELDS if f in names]
        return self._fields

    def _fill_pairs(self) -> None:
        """Give every row with CJK text whose pairs are missing its pairs, in one commit. Only an index
        that gained the column later has such rows; a run killed before the pair index was built leaves
        them to the next run, which fills them before it builds the index."""
        table = self._scan(["id", "text", PAIRS], f"{PAIRS} IS NULL")
        texts = zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True)
        ids = [i for i, t in texts if has_cjk(t)]
        if not ids:
            return
        rows = self._scan(self._row_fields + ["vector"], _in("id", ids))
        rows = rows.append_column(PAIRS, pa.array([cjk_pairs(t) for t in rows.column("text").to_pylist()]))
        self._table.merge_insert("id").when_matched_update_all().execute(rows.cast(chunk_schema(self.dim)))

    def sync_vector_index(self) -> None:
        """Create the vector (ANN) index once the table has `VECTOR_INDEX_MIN_ROWS` chunks; below that,
        searches scan every vector (exact, and fast enough). Rows written after the index was built are
        still found (LanceDB scans unindexed rows too); LanceDB's optimize folds them into the index. Call
        after `sync_text_index`, whose optimize already does that: this one optimizes only if rows remain
        unindexed. The index is not retrained as the table grows (`bench/query.py --grow` compares it with
        a rebuilt one)."""
        index = self._vector_index_name()
        if index is None:
            if self.count_chunks() >= VECTOR_INDEX_MIN_ROWS:
                self._table.create_index("vector", config=_vector_index_config(), replace=True)
            return
        stats = self._table.index_stats(index)
        if stats is not None and stats.num_unindexed_rows:
            self._table.optimize()

    def _vector_index_name(self) -> str | None:
        return next((i.name for i in self._table.list_indices() if "vector" in i.columns), None)

    def failures(self, collection: str | None = None) -> dict[str, dict[str, Any]]:
        """Files that failed to index: path -> {reason, size, mtime_ns} (all collections if None)."""
        return self._per_collection(FAILURES_FILE, collection)

    def skipped(self, collection: str | None = None) -> dict[str, str]:
        """Files met in indexed folders whose type rag doesn't read: path -> reason (all collections if None)."""
        return self._per_collection(SKIPPED_FILE, collection)

    def _per_collection(self, name: str, collection: str | None) -> dict[str, Any]:
        """The entries of a {collection: {path: entry}} state file, of one collection or of all."""
        data = self._state.per_collection(name)
        if collection is not None:
            return dict(data.get(collection, {}))
        return {path: entry for per in data.values() for path, entry in per.items()}

    def _scan(self, columns: list[str], where: str | None = None) -> pa.Table:
        query = self._table.search().select(columns)
        if where:
            query = query.where(where)
        return query.limit(None).to_arrow()

    # -- writing -------------------------------------------------------------------------------

    @contextmanager
    def write_lock(self, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the index's writer lock (a file lock in the index folder) for a run of writes. A second
        writer (another `rag index` on the same index) waits here, after `on_wait` is told why, and then
        sees the first one's commits, so no file is indexed twice. Readers never take it. Object storage
        has no such lock (state.py says what holds there instead): this is then a no-op."""
        from filelock import FileLock, Timeout

        if self.remote:
            yield
            return
        lock = FileLock(str(Path(self.root) / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait:
                on_wait(f"another index run is writing to {self.root}; waiting for it to finish …")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def replace_documents(
        self, collection: str, paths: Iterable[str], rows: Sequence[ChunkRow], vectors: np.ndarray
    ) -> None:
        """In ONE commit: remove every chunk of `paths` in `collection`, and add `rows` with `vectors`."""
        doomed = sorted(set(paths) | {r.path for r in rows})
        if not doomed:
            return
        if vectors.shape != (len(rows), self.dim):
            raise ValueError(f"expected {len(rows)} vectors of dim {self.dim}, got {vectors.shape}")
        where = _and(_collection_filter(collection), _in("path", doomed))
        if not rows:
            self._table.delete(where)
            return
        self._add_late_columns()
        merge = self._table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
        merge.when_not_matched_by_source_delete(where).execute(arrow_rows(rows, vectors, self.dim))

    def prepare_writes(self) -> pa.Schema:
        """Make sure the table exists with every column (an older index gains its late ones); its Arrow
        schema, which fragments written elsewhere must have (`commit_fragments`)."""
        self._add_late_columns()
        return self._table.schema

    def commit_fragments(self, collection: str, paths: Iterable[str], fragments: Sequence[Any]) -> None:
        """In ONE commit: remove every chunk of `paths` in `collection` and add the Lance `fragments`
        (written by cluster workers with lance.fragment.write_fragments and this table's schema).
        Uncommitted fragments stay invisible: a crash before this leaves the table as it was. A commit
        that races another writer's is redone on the newer version (Lance refuses a stale one)."""
        import lance

        doomed = sorted(set(paths))
        where = _and(_collection_filter(collection), _in("path", doomed)) if doomed else None
        for attempt in range(8):
            dataset = lance.dataset(self.table_uri, storage_options=self.storage_options or None)
            updated, removed = [], []
            if where:
                hits = dataset.to_table(columns=[], filter=where, with_row_address=True).column("_rowaddr")
                for fragment_id in sorted({int(a) >> 32 for a in hits.to_pylist()}):
                    fragment = dataset.get_fragment(fragment_id)
                    if fragment is None:
                        continue
                    changed = fragment.delete(where)  # writes a deletion file; None: no row is left
                    if changed is None:
                        removed.append(fragment_id)
                    else:
                        updated.append(changed)
            if not (updated or removed or fragments):
                return
            op = lance.LanceOperation.Update(
                removed_fragment_ids=removed, updated_fragments=updated, new_fragments=list(fragments)
            )
            try:
                lance.LanceDataset.commit(
                    self.table_uri, op, read_version=dataset.version, storage_options=self.storage_options or None
                )
                return
            except OSError as exc:  # a concurrent commit won: redo the deletions on the newer version
                if "conflict" not in str(exc).lower() or attempt == 7:
                    raise
                time.sleep(0.05 * 2**attempt)

    def touch(self, collection: str, path: str, size: int, mtime_ns: int) -> None:
        """Record a new size/mtime for a document whose content did not change."""
        where = _and(_collection_filter(collection), _in("path", [path]))
        self._table.update(where=where, values={"doc_size": size, "doc_mtime_ns": mtime_ns})

    def drop_collection(self, collection: str) -> int:
        """Delete every chunk and failure record of `collection`; returns the number of chunks removed."""
        removed = self.count_chunks(collection)
        self._table.delete(_collection_filter(collection))
        self.set_failures(collection, {})
        self.set_skipped(collection, {})
        self.refresh_catalog()
        return removed

    def set_failures(self, collection: str, failures: dict[str, dict[str, Any]]) -> None:
        self._set_per_collection(FAILURES_FILE, collection, failures)

    def set_skipped(self, collection: str, skipped: dict[str, str]) -> None:
        self._set_per_collection(SKIPPED_FILE, collection, skipped)

    def _set_per_collection(self, name: str, collection: str, entries: dict[str, Any]) -> None:
        """Replace one collection's entries in a state file (a collection left empty is dropped)."""
        self._state.set_collection(name, collection, entries)


@dataclass(frozen=True)
class Filter:
    """Which chunks a search may return: a collection, path globs, file types (suffixes)."""

    collection: str | None = None
    path_globs: tuple[str, ...] = ()  # "*.pdf", "reports/**", "/home/me/notes/*.md": "*" stays in a folder
    file_types: tuple[str, ...] = ()  # "pdf", ".md"; any case, matching any case of the file name

    def sql(self) -> str | None:
        globs = " OR ".join(f"regexp_like(path, {_quote(_glob_to_regex(g))})" for g in self.path_globs)
        types = " OR ".join(f"lower(path) LIKE {_quote('%.' + _file_type(t))}" for t in self.file_types)
        return _and(_collection_filter(self.collection), globs or None, types or None)

    def matches(self, collection: str, path: str) -> bool:
        """Whether a document passes this filter (what `sql` selects, decided in Python)."""
        if self.collection is not None and collection != self.collection:
            return False
        if self.path_globs and not any(re.fullmatch(_glob_to_regex(g), path) for g in self.path_globs):
            return False
        return not self.file_types or any(path.lower().endswith("." + _file_type(t)) for t in self.file_types)


_TRIM = "\"'()[]{}<>,;:!?“”‘’「」（），。：；！？"


_SEPARATORS = frozenset("-./:_,")  # inside a code with a digit: 8-2-6-3, v3.11.2, 192.168.1.20, 1,250.00
_MARKS = frozenset("@/\\+#")  # anywhere: e-mail addresses, paths, C++, C#


def code_tokens(query: str, limit: int = 4) -> list[str]:
    """The query's code-like tokens, the ones a word tokenizer can't keep whole: whitespace-separated
    pieces (outer punctuation trimmed) with a digit and a separator inside (part numbers XJ-9921-B and
    8-2-6-3, versions v3.11.2, dates 2026-03-14, addresses 192.168.1.20, amounts 1,250.00), or with
    @ / \\ + # (e-mail addresses, paths, C++). Hyphenated words (T-cell, non-coding) and names like CD4
    or A4 are not codes: the word index keeps them whole, and matching them verbatim first buried the
    better BM25 matches of scientific text (bench/code_matches.py)."""
    found = []
    for raw in query.split():
        token = raw.strip(_TRIM).rstrip(".")
        if len(token) < 2 or token in found:
            continue
        has_digit = any(c.isdigit() for c in token)
        if (has_digit and set(token[1:-1]) & _SEPARATORS) or set(token) & _MARKS:
            found.append(token)
    return found[:limit]


def _positions(ranked: Sequence[tuple[ChunkRow, float]]) -> dict[str, int]:
    """Each chunk's first position in a ranked list."""
    return {row.id: i for i, (row, _) in reversed(list(enumerate(ranked)))}


def _first(exact: list[tuple[ChunkRow, int]], ranked: list[tuple[ChunkRow, float]], k: int):
    """The verbatim matches (codes, CJK phrases), in their order, scored above every ranked hit (the best
    ranked score plus how many of the query's codes or phrases they hold), then the ranked hits, without
    repeats; the best k."""
    if not exact:
        return ranked[:k]
    top = max((score for _, score in ranked), default=0.0)
    seen = {row.id for row, _ in exact}
    merged = [(row, top + n) for row, n in exact] + [(row, score) for row, score in ranked if row.id not in seen]
    return merged[:k]


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _glob_to_regex(glob: str) -> str:
    """Shell-style glob -> anchored regex: "**" crosses folders, "*" and "?" don't; a relative glob
    matches the end of the path ("*.pdf" is any PDF, "reports/**" anything under a reports folder)."""
    parts = re.split(r"(\*\*|\*|\?)", glob)
    body = "".join({"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(p, re.escape(p)) for p in parts)
    return f"^{body}$" if glob.startswith("/") else f"^(.*/)?{body}$"


def _fts_config():
    """BM25 over ICU word segmentation: ICU's dictionary-based word breaks split Chinese/Japanese text
    into words (whitespace tokenisation leaves a whole CJK sentence as one token, so nothing matches),
    while English still gets lower-casing, stemming and stop-word removal."""
    from lancedb.index import FTS

    return FTS(base_tokenizer="icu", language="English", stem=True, remove_stop_words=True, ascii_folding=True)


def _pairs_config():
    """BM25 over the pairs column as written (space-separated CJK character pairs): split on spaces only,
    nothing lower-cased, stemmed or dropped, with positions for phrase queries."""
    from lancedb.index import FTS

    return FTS(
        base_tokenizer="whitespace",
        lower_case=False,
        stem=False,
        remove_stop_words=False,
        ascii_folding=False,
        with_position=True,  # phrase queries: a run of pairs in order is the text verbatim
    )


def fuse_ranked(lists: Iterable[Sequence[tuple[ChunkRow, float]]], rrf_k: int = RRF_K) -> list[tuple[ChunkRow, float]]:
    """Ranked (row, score) lists fused by reciprocal rank, score = sum over lists of 1 / (rrf_k + rank),
    which needs no calibration between the lists' scores (Cormack et al., 2009); best first."""
    scores: dict[str, float] = {}
    rows: dict[str, ChunkRow] = {}
    for hits in lists:
        for rank, (row, _) in enumerate(hits, start=1):
            scores[row.id] = scores.get(row.id, 0.0) + 1.0 / (rrf_k + rank)
            rows[row.id] = row
    return [(rows[c], scores[c]) for c in sorted(scores, key=lambda c: -scores[c])]


def _vector_index_config():
    """IVF with 8-bit scalar quantisation, cosine distance, LanceDB's default partition count: of the
    index types `bench/query.py --compare` measures, the quickest to build with the exact top 10."""
    from lancedb.index import IvfSq

    return IvfSq(distance_type="cosine")


def check_embedder(meta: dict[str, Any], embedder: dict[str, Any], root: Path | str) -> None:
    """Raise EmbedderMismatch unless `embedder` is the model that built the index in `meta`."""
    have = meta["embedder"]
    if have.get("fingerprint") != embedder.get("fingerprint"):
        raise EmbedderMismatch(
            f"the index at {root} was built with embedding model '{have.get('id')}', not '{embedder.get('id')}'",
            "use the same --embed-model, or index into a new location with --index",
        )


def check_collection_name(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise RagError(f"invalid collection name '{name}'", "use letters, digits, '-', '_' or '.' (at most 64)")
    return name


def summarize(docs: list[dict[str, Any]]) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """(documents, chunks, collection -> (documents, chunks)) of a `document_list`."""
    per: dict[str, tuple[int, int]] = {}
    for d in docs:
        n, chunks = per.get(d["collection"], (0, 0))
        per[d["collection"]] = (n + 1, chunks + d["chunks"])
    return len({d["path"] for d in docs}), sum(d["chunks"] for d in docs), dict(sorted(per.items()))


def arrow_rows(rows: Sequence[ChunkRow], vectors: np.ndarray, dim: int) -> pa.Table:
    """Chunk rows and their vectors as the table stores them (with each row's CJK pairs)."""
    data: dict[str, Any] = {name: [getattr(r, name) for r in rows] for name in ROW_FIELDS}
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    data["vector"] = pa.FixedSizeListArray.from_arrays(flat, dim)
    data[PAIRS] = [cjk_pairs(r.text) for r in rows]
    return pa.table(data, schema=chunk_schema(dim))


def _row(record: dict[str, Any]) -> ChunkRow:
    # `ocr` is absent on an index made before OCR that no write has touched yet: ChunkRow's default
    return ChunkRow(**{k: record[k] for k in ROW_FIELDS if k in record})


def _vectors(table: pa.Table, dim: int) -> np.ndarray:
    column = table.column("vector").combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)


def _file_type(name: str) -> str:
    """A file type as a filter matches it: "PDF", ".pdf" and "pdf" are the .pdf (and .PDF) files."""
    return name.strip().lower().lstrip(".")


def _collection_filter(collection: str | None) -> str | None:
    return None if collection is None else f"collection = {_quote(collection)}"


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(_quote(v) for v in values)})"


def _and(*clauses: str | None) -> str | None:
    parts = [c for c in clauses if c]
    return " AND ".join(f"({c})" for c in parts) if parts else None


def _state(root: Path | str, storage_options: dict[str, str] | None) -> TableState:
    return TableState(connect(root, storage_options), str(root))
