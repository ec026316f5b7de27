"""The index's document list, kept beside the table so that commands which only read it start fast.

`rag status`, `rag docs` and `rag collection list` need one line per document (collection, path, chunk
and page counts, size, mtime) and nothing else; importing LanceDB to scan the table for that costs ~2 s
(its namespace client builds hundreds of pydantic models at import). `catalog.json` holds that list as
of one table version, stamped with the state of the table's version folder (`chunks.lance/_versions`:
its mtime and the names of its manifests). Every commit adds a manifest there, so a catalog whose stamp
differs from the folder's now is stale, whoever wrote to the table (an older rag, a crash after a commit):
then the caller scans the table and writes a fresh catalog.

This module never opens LanceDB and knows nothing of what a document is: it stamps, stores and loads the
list. The catalog is derived data: one that can't be read is ignored (and rewritten), never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CATALOG_FILE = "catalog.json"
FORMAT = 2  # 2: ocr_pages per document


def stamp(table_dir: Path) -> str | None:
    """The state of a Lance table's version folder, or None where there is no such folder (no table
    yet, or a store that is not a local folder): then no catalog is trusted."""
    versions = table_dir / "_versions"
    try:
        names = sorted(os.listdir(versions))
        mtime = versions.stat().st_mtime_ns
    except OSError:
        return None
    digest = hashlib.blake2b("\n".join(names).encode(), digest_size=16).hexdigest()
    return f"{mtime}:{len(names)}:{digest}"


def load(root: Path, table_dir: Path) -> list[dict[str, Any]] | None:
    """The stored document list, if it describes the table as it is now; else None."""
    now = stamp(table_dir)
    if now is None:
        return None
    try:
        data = json.loads((root / CATALOG_FILE).read_text())
        if data["format"] == FORMAT and data["stamp"] == now:
            return list(data["documents"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def save(root: Path, table_dir: Path, documents: list[dict[str, Any]], before: str | None) -> None:
    """Store `documents` as read from the table between `stamp` = `before` and now. Nothing is stored
    if the table changed meanwhile (the list may mix two versions) or can't be stamped. A folder that
    can't be written to (a read-only index) only means the next reader scans again."""
    if before is None or stamp(table_dir) != before:
        return
    tmp = root / f"{CATALOG_FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps({"format": FORMAT, "stamp": before, "documents": documents}, ensure_ascii=False))
        os.replace(tmp, root / CATALOG_FILE)  # atomic: a reader sees the old catalog or the new one
    except OSError:
        tmp.unlink(missing_ok=True)
