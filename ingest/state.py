"""Where an index lives, and where it keeps its small state: beside the table, wherever the table is.

An index is a local folder or an object-store location (`s3://bucket/prefix`, `gs://…`, `az://…`), opened
through LanceDB's own object-store support with the storage options given (`storage_options`; AWS_*,
GOOGLE_* and AZURE_* variables are read by LanceDB itself). Besides the chunks table an index keeps:

    index.json        provenance: schema version, embedder, chunking settings
    failures          files that could not be indexed, per collection
    skipped           files of types rag doesn't read, per collection
    ocr-cache         what OCR read on each page (derived data)

In a local folder these are files (`FolderState`, and ocr.FolderCache); in object storage they are rows of
two more LanceDB tables in the same database, `state` and `ocr_cache` (`TableState`, `TableCache`), so a
second machine opening the same prefix sees exactly what the first wrote, through the same credentials.

What holds for concurrent writers (the code relies on nothing more):
- Every LanceDB commit is atomic on every store: a commit writes a new manifest with put-if-absent (a
  rename on local disk; `If-None-Match: *` conditional PUTs on S3, which AWS S3 and stores that honour the
  header support; generation preconditions on GCS and Azure). Readers see whole commits, never a half.
- A commit that races another is retried by LanceDB against the newer version (merge_insert, delete and
  update retry on conflict); each document's replacement stays ONE commit, so no document is ever half
  written or duplicated, whoever wins.
- There is no cross-machine lock on object storage. A local index has a file lock so that a second run
  waits instead of embedding the same files twice; on object storage two runs on the same collection at
  once are safe for the table but may do the same work twice, and the failure list of that collection is
  the last writer's. Runs on different collections don't touch each other's state rows.
- An S3-compatible store that ignores `If-None-Match` (some older appliances) can lose a commit when two
  writers commit at the same instant: run one writer at a time there.

This module knows nothing of chunks, files or models: it names locations and stores JSON objects.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from ingest.errors import CorruptIndex

STATE_TABLE = "state"
OCR_TABLE = "ocr_cache"
_REMOTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")  # s3://, gs://, az://, abfs://, memory://, …


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Whether `location` is an object-store URI rather than a local folder."""
    return bool(_REMOTE.match(str(location))) and not str(location).startswith("file://")


def index_location(location: str | os.PathLike[str]) -> Path | str:
    """An index location as given: a URI stays a string (Path would fold its '//'); a folder becomes an
    expanded Path."""
    if is_remote(location):
        return str(location).rstrip("/")
    text = str(location)
    return Path(text[len("file://") :] if text.startswith("file://") else text).expanduser()


def connect(location: Path | str, storage_options: dict[str, str] | None = None):
    """A LanceDB connection to the index's database; every read sees the latest commit (consistency
    interval 0), also one another process or machine made."""
    import lancedb

    options = dict(storage_options or {})
    return lancedb.connect(str(location), read_consistency_interval=timedelta(0), storage_options=options or None)


def _decode(name: str, raw: str | bytes, where: str) -> dict[str, Any]:
    """A state object's content. A corrupt one is reported, never silently reset."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptIndex(
            f"{name} in the index at {where} is corrupt ({exc.__class__.__name__}: {exc})",
            f"repair or delete {name} in {where}: deleting it loses only what it records (for the failure "
            "list: the files that failed, which the next `rag index` lists again)",
        ) from None
    if not isinstance(data, dict):
        raise CorruptIndex(
            f"{name} in the index at {where} is corrupt (not a JSON object)", f"repair or delete {name} in {where}"
        )
    return data


class FolderState:
    """State as JSON files in the index folder, each replaced atomically (write, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, name: str) -> dict[str, Any]:
        path = self.root / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        return _decode(name, raw, str(self.root))

    def write(self, name: str, data: dict[str, Any]) -> None:
        path = self.root / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        os.replace(tmp, path)  # atomic: the file is always whole

    def per_collection(self, name: str) -> dict[str, dict[str, Any]]:
        return self.read(name)

    def set_collection(self, name: str, collection: str, entries: dict[str, Any]) -> None:
        """Replace one collection's entries (the caller holds the index's write lock)."""
        data = self.read(name)
        data[collection] = entries
        self.write(name, {k: v for k, v in data.items() if v})


def _state_schema() -> pa.Schema:
    return pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("body", pa.string()),
                      pa.field("written_ns", pa.int64())])  # fmt: skip


class TableState:
    """State as rows (key, JSON body) of the `state` table beside the chunks table. Per-collection
    lists are one row per collection ("failures.json/<collection>"), so writers of different
    collections never overwrite each other. Each write is one LanceDB commit (merge_insert on key)."""

    def __init__(self, db, where: str) -> None:
        self._db = db
        self._where = where
        self._table = None

    def _open(self, create: bool):
        if self._table is None:
            self._table = _key_table(self._db, STATE_TABLE, create)
        return self._table

    def _rows(self, where: str) -> list[dict[str, Any]]:
        table = self._open(create=False)
        if table is None:
            return []
        rows = table.search().where(where).select(["key", "body", "written_ns"]).limit(None).to_arrow().to_pylist()
        newest: dict[str, dict[str, Any]] = {}
        for row in sorted(rows, key=lambda r: r["written_ns"] or 0):  # two racing inserts: the later wins
            newest[row["key"]] = row
        return list(newest.values())

    def read(self, name: str) -> dict[str, Any]:
        rows = self._rows(f"key = {quote(name)}")
        return _decode(name, rows[0]["body"], self._where) if rows and rows[0]["body"] is not None else {}

    def write(self, name: str, data: dict[str, Any] | None) -> None:
        _upsert(self._open(create=True), name, None if data is None else json.dumps(data, ensure_ascii=False))

    def per_collection(self, name: str) -> dict[str, dict[str, Any]]:
        prefix = name + "/"
        rows = self._rows(f"starts_with(key, {quote(prefix)})")
        found = {r["key"][len(prefix) :]: _decode(r["key"], r["body"], self._where) for r in rows if r["body"]}
        return {c: entries for c, entries in found.items() if entries}

    def set_collection(self, name: str, collection: str, entries: dict[str, Any]) -> None:
        self.write(f"{name}/{collection}", entries or None)


class TableCache:
    """The OCR cache as rows (key, JSON body) of the `ocr_cache` table: what ocr.Reader keeps per page.
    Picklable before first use (the connection opens lazily), so cluster workers can share it."""

    def __init__(self, location: str, storage_options: dict[str, str] | None = None) -> None:
        self.location = location
        self.storage_options = dict(storage_options or {})
        self._table = None

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location, "storage_options": self.storage_options, "_table": None}

    def _open(self, create: bool):
        if self._table is None:
            self._table = _key_table(connect(self.location, self.storage_options), OCR_TABLE, create)
        return self._table

    def get(self, key: str) -> dict[str, Any] | None:
        table = self._open(create=False)
        if table is None:
            return None
        rows = table.search().where(f"key = {quote(key)}").select(["body"]).limit(1).to_arrow().to_pylist()
        try:
            return json.loads(rows[0]["body"]) if rows else None
        except (TypeError, ValueError):
            return None  # derived data: a damaged entry is read again

    def put(self, key: str, data: dict[str, Any]) -> None:
        _upsert(self._open(create=True), key, json.dumps(data, ensure_ascii=False))


def _key_table(db, name: str, create: bool):
    """The (key, body, written_ns) table `name` of `db`; None if it doesn't exist and `create` is False."""
    if name in db.list_tables().tables:
        return db.open_table(name)
    return db.create_table(name, schema=_state_schema(), exist_ok=True) if create else None


def _upsert(table, key: str, body: str | None) -> None:
    """Set the row of `key` to `body`, in one commit (merge_insert on key)."""
    row = pa.table({"key": [key], "body": [body], "written_ns": [time.time_ns()]}, schema=_state_schema())
    table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(row)


def quote(value: str) -> str:
    """A string as an SQL literal for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"
