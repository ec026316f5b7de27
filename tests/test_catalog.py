"""catalog.json: `rag status`, `rag docs` and `rag collection list` answer from it without LanceDB, and
it is never believed once the table has changed under it. Plus skipped files named in `rag status`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

import rag
from ingest import catalog
from ingest.catalog import CATALOG_FILE
from ingest.store import Filter, Store


def _index(tmp_path, folder, embedder):
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    index.add(folder)
    return index


def _scanned(idx_dir):
    """The document list read from the table itself (the catalog removed first)."""
    (idx_dir / CATALOG_FILE).unlink(missing_ok=True)
    return Store.open(idx_dir).document_list()


def test_status_and_docs_read_no_lancedb_and_agree_with_the_table(tmp_path, docs, embedder):
    index = _index(tmp_path, docs, embedder)
    idx_dir = tmp_path / "idx"
    assert (idx_dir / CATALOG_FILE).is_file()  # written by the index run
    code = (
        "import sys, json, rag\n"
        f"i = rag.open_index({str(idx_dir)!r})\n"
        "s = i.status(); d = i.documents(); c = i.collections()\n"
        "print(json.dumps([s.documents, s.chunks, len(d), 'lancedb' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    documents, chunks, listed, imported = json.loads(out)
    assert imported is False
    from_table = _scanned(idx_dir)
    assert (documents, chunks, listed) == (3, sum(d["chunks"] for d in from_table), len(from_table))
    assert index.documents() == from_table  # the scan above re-wrote the catalog; same list


def test_a_commit_that_skips_the_catalog_is_seen(tmp_path, docs, embedder):
    """Another writer (an older rag, a crash after the commit) changes the table without refreshing the
    catalog: readers notice from the version folder and read the table."""
    index = _index(tmp_path, docs, embedder)
    assert index.status().documents == 3
    store = Store.open(tmp_path / "idx")
    store.replace_documents("default", [str(docs / "recipes.txt")], [], np.zeros((0, store.dim), dtype=np.float32))
    fresh = rag.open_index(tmp_path / "idx")
    assert fresh.status().documents == 2
    assert str(docs / "recipes.txt") not in {d["path"] for d in fresh.documents()}


def test_a_corrupt_catalog_is_ignored_and_rebuilt(tmp_path, docs, embedder):
    _index(tmp_path, docs, embedder)
    (tmp_path / "idx" / CATALOG_FILE).write_text('{"format": 1, "stamp": ')
    fresh = rag.open_index(tmp_path / "idx")
    assert fresh.status().documents == 3
    assert json.loads((tmp_path / "idx" / CATALOG_FILE).read_text())["format"] == catalog.FORMAT


def test_filters_on_the_catalog_select_what_the_table_query_selects(tmp_path, docs, embedder):
    (docs / "sub").mkdir()
    (docs / "sub" / "deep.md").write_text("# Deep\n\nA note one folder down.\n")
    (docs / "sub" / "LOUD.MD").write_text("# Loud\n\nA note whose name is in capitals.\n")
    _index(tmp_path, docs, embedder)
    store = Store.open(tmp_path / "idx")
    everything = store._scan(["collection", "path"]).to_pylist()
    cases = [
        Filter(),
        Filter(collection="default"),
        Filter(collection="other"),
        Filter(path_globs=("*.md",)),
        Filter(path_globs=("sub/**",)),
        Filter(path_globs=(str(docs) + "/*.md",)),
        Filter(file_types=("pdf", ".txt")),
        Filter(path_globs=("*.md",), file_types=("md",)),
        Filter(file_types=("MD",)),
    ]
    for f in cases:
        by_sql = {r["path"] for r in store._scan(["path"], f.sql()).to_pylist()} if f.sql() else None
        if by_sql is None:
            by_sql = {r["path"] for r in everything}
        assert {d["path"] for d in store.document_list(f)} == by_sql, f
    loud = str(docs / "sub" / "LOUD.MD")
    for types in [("md",), ("MD",), (".Md",)]:  # a type matches its files whatever the case of either
        assert loud in {d["path"] for d in store.document_list(Filter(file_types=types))}
        assert loud in {r["path"] for r in store._scan(["path"], Filter(file_types=types).sql()).to_pylist()}


def test_skipped_files_are_named_in_status_until_they_go(tmp_path, docs, embedder):
    (docs / "song.mp3").write_bytes(b"ID3\x04" + b"\0" * 64)
    (docs / "data.bin").write_bytes(b"\0\1\2\3")
    index = _index(tmp_path, docs, embedder)
    skipped = index.status().skipped
    assert set(skipped) == {str(docs / "song.mp3"), str(docs / "data.bin")}
    assert "unsupported file type '.mp3'" in skipped[str(docs / "song.mp3")]
    (docs / "song.mp3").unlink()
    index.add(docs)
    assert set(index.status().skipped) == {str(docs / "data.bin")}
    index.remove_collection("default")
    assert index.status().skipped == {}


def test_cli_status_lists_skipped_files(tmp_path, docs, minilm_path):
    from typer.testing import CliRunner

    from rag.cli import app

    (docs / "song.mp3").write_bytes(b"ID3\x04")
    idx = str(tmp_path / "idx")
    assert (
        CliRunner().invoke(app, ["index", str(docs), "--index", idx, "--embed-model", str(minilm_path)]).exit_code == 0
    )
    out = CliRunner().invoke(app, ["status", "--index", idx]).stdout
    assert "skipped    1 file of types rag doesn't read:" in out
    assert f"{docs / 'song.mp3'}: unsupported file type '.mp3'" in out
