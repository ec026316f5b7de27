"""The index on disk: one LanceDB table of chunks plus `index.json`, the index's provenance.

Layout of an index folder:
    index.json      schema version, embedder (id, fingerprint, dim), chunking settings
    chunks.lance/   one row per chunk: ids, document path + content hash, position, text, vector

Writes are whole documents at a time (LanceDB commits each `add` atomically), so a document is either
fully present or absent. The store refuses vectors from a different embedder (`EmbedderMismatch`).
This module knows nothing about files, models or prompts: it stores and finds rows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.errors import EmbedderMismatch, IndexNotFound

SCHEMA_VERSION = 1
TABLE = "chunks"
META_FILE = "index.json"


@dataclass(frozen=True)
class ChunkRow:
    """One stored chunk, without its vector."""

    id: str
    path: str
    doc_hash: str
    chunk_index: int
    text: str
    heading: str  # heading path joined with " > ", "" when none
    page: int | None
    char_start: int
    char_end: int


def chunk_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("doc_hash", pa.string(), nullable=False),
            pa.field("chunk_index", pa.int32(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("heading", pa.string(), nullable=False),
            pa.field("page", pa.int32(), nullable=True),
            pa.field("char_start", pa.int64(), nullable=False),
            pa.field("char_end", pa.int64(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


class Store:
    """An index folder. Use `Store.open` for an existing one, `Store.open_or_create` to write."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        import lancedb

        self.root = root
        self.meta = meta
        self._db = lancedb.connect(str(root))
        dim = int(meta["embedder"]["dim"])
        if TABLE in self._db.list_tables().tables:
            self._table = self._db.open_table(TABLE)
        else:
            self._table = self._db.create_table(TABLE, schema=chunk_schema(dim))

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open an existing index; raises IndexNotFound if there is none at `root`."""
        meta_path = Path(root) / META_FILE
        if not meta_path.is_file():
            raise IndexNotFound(f"no index at {root}")
        meta = json.loads(meta_path.read_text())
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise IndexNotFound(
                f"the index at {root} has schema version {meta.get('schema_version')}, "
                f"this version of rag reads {SCHEMA_VERSION}",
                "re-create it: delete the folder and run `rag index` again",
            )
        return cls(Path(root), meta)

    @classmethod
    def open_or_create(cls, root: Path, embedder: dict[str, Any], chunking: dict[str, Any]) -> Store:
        """Open the index at `root` for writing with this embedder, creating it if needed.

        Raises EmbedderMismatch if the index was built with another embedding model.
        """
        root = Path(root)
        if (root / META_FILE).is_file():
            store = cls.open(root)
            check_embedder(store.meta, embedder, root)
            return store
        root.mkdir(parents=True, exist_ok=True)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "embedder": embedder,
            "chunking": chunking,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        tmp = root / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, root / META_FILE)  # atomic: an index.json is always whole
        return cls(root, meta)

    # -- reading -------------------------------------------------------------------------------

    def documents(self) -> dict[str, str]:
        """Map of stored document path -> content hash."""
        table = self._scan(["path", "doc_hash"])
        return dict(zip(table.column("path").to_pylist(), table.column("doc_hash").to_pylist(), strict=True))

    def count_chunks(self) -> int:
        return self._table.count_rows()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[ChunkRow, float]]:
        """The k nearest chunks by cosine similarity, best first, as (row, score in [-1, 1])."""
        if self.count_chunks() == 0:
            return []
        query = self._table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
        table = query.distance_type("cosine").limit(k).to_arrow()
        rows = table.drop_columns(["vector"]).to_pylist()
        return [(_row(r), 1.0 - float(r["_distance"])) for r in rows]

    def _scan(self, columns: list[str]) -> pa.Table:
        return self._table.search().select(columns).limit(None).to_arrow()

    # -- writing -------------------------------------------------------------------------------

    def replace_documents(self, paths: Iterable[str], rows: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Remove every chunk of `paths`, then add `rows` (with their `vectors`) in one commit."""
        doomed = sorted(set(paths))
        if doomed:
            self._table.delete(f"path IN ({', '.join(_quote(p) for p in doomed)})")
        if rows:
            dim = int(self.meta["embedder"]["dim"])
            if vectors.shape != (len(rows), dim):
                raise ValueError(f"expected {len(rows)} vectors of dim {dim}, got {vectors.shape}")
            data = {k: [getattr(r, k) for r in rows] for k in ChunkRow.__dataclass_fields__}
            flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
            data["vector"] = pa.FixedSizeListArray.from_arrays(flat, dim)
            self._table.add(pa.table(data, schema=chunk_schema(dim)))


def check_embedder(meta: dict[str, Any], embedder: dict[str, Any], root: Path) -> None:
    """Raise EmbedderMismatch unless `embedder` is the model that built the index in `meta`."""
    have = meta["embedder"]
    if have.get("fingerprint") != embedder.get("fingerprint") or have.get("dim") != embedder.get("dim"):
        raise EmbedderMismatch(
            f"the index at {root} was built with embedding model '{have.get('id')}' "
            f"(dim {have.get('dim')}), not '{embedder.get('id')}' (dim {embedder.get('dim')})",
            "use the same --embed-model, or index into a new location with --index",
        )


def _row(record: dict[str, Any]) -> ChunkRow:
    return ChunkRow(**{k: record[k] for k in ChunkRow.__dataclass_fields__})


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
