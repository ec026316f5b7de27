"""Readers and writers sharing one index: consistent status, readers that never write, one writer at a
time, and progress that keeps talking during a long file. Real LanceDB in a temp dir throughout."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, HashEmbedder
from rich.console import Console

import rag
from ingest import Store, index_paths
from ingest.store import ChunkRow


def _store(path, embedder) -> Store:
    return Store.open_or_create(path, {"id": embedder.id, "fingerprint": embedder.fingerprint, "dim": embedder.dim}, {})


def _rows(n: int, chunks: int = 2) -> list[ChunkRow]:
    return [
        ChunkRow(
            f"d{n}-{i}", "default", f"/docs/{n}.md", f"h{n}", 1, 1, i, f"text {n} {i}", f"t{n}-{i}", "", None, 0, 1
        )
        for i in range(chunks)
    ]


def test_status_reads_documents_and_chunks_from_one_version_during_writes(tmp_path, hash_embedder):
    """Every document has exactly two chunks; while another connection commits documents one by one,
    every status() must say chunks == 2 x documents (separate queries read different versions)."""
    writer = _store(tmp_path / "idx", hash_embedder)
    writer.replace_documents("default", [], _rows(0), np.ones((2, hash_embedder.dim), np.float32))
    index = rag.open_index(tmp_path / "idx")
    stop = threading.Event()

    def write() -> None:
        for n in range(1, 41):
            writer.replace_documents("default", [], _rows(n), np.ones((2, hash_embedder.dim), np.float32))
        stop.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen = []
    while not stop.is_set():
        st = index.status()
        seen.append((st.documents, st.chunks))
        assert sum(d for d, _ in st.collections.values()) == st.documents
    thread.join()
    assert len(seen) > 5
    assert all(chunks == 2 * docs for docs, chunks in seen), [s for s in seen if s[1] != 2 * s[0]][:5]
    assert index.status().documents == 41


def _drop_text_index(path) -> None:
    store = Store.open(path)
    for i in store._table.list_indices():
        if i.index_type == "FTS":
            store._table.drop_index(i.name)
    assert not store.has_text_index()


def test_a_reader_never_builds_a_missing_text_index_and_says_it_searched_by_vector(tmp_path, embedder, docs):
    """As after a kill -9 between the last commit and the index build: search falls back, says so, and
    leaves the index untouched; the next index run (nothing changed) builds it."""
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    index.add(docs)
    _drop_text_index(tmp_path / "idx")
    reader = rag.open_index(tmp_path / "idx", embed_model=embedder)
    for mode in ("hybrid", "text"):
        with pytest.warns(rag.IndexIncomplete, match="no full-text index"):
            hits = reader.search("Where is the spare key?", k=2, mode=mode)
        assert hits and hits[0].path.endswith("house.md")  # found by vector
    assert not Store.open(tmp_path / "idx").has_text_index()  # the reader wrote nothing
    report = index.add(docs)
    assert report.chunks == 0 and len(report.unchanged) == 3
    assert Store.open(tmp_path / "idx").has_text_index()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reader.search("spare key flowerpot", k=1, mode="text")[0].path.endswith("house.md")


def test_rag_search_on_an_index_without_text_index_prints_one_note(tmp_path, minilm_path, docs):
    env = {"RAG_EMBED_MODEL": str(minilm_path), "RAG_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    rag_cli = [str(Path(sys.executable).parent / "rag")]
    idx = str(tmp_path / "idx")
    subprocess.run([*rag_cli, "index", "--index", idx, str(docs)], env=env, check=True, capture_output=True)
    _drop_text_index(tmp_path / "idx")
    run = subprocess.run(
        [*rag_cli, "search", "--index", idx, "spare key"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if line.startswith("Note:")]
    assert len(notes) == 1 and "searching by meaning (vectors) only" in notes[0]
    assert "house.md" in run.stdout


def test_a_second_writer_waits_for_the_first_and_says_so(tmp_path, hash_embedder, docs):
    store = _store(tmp_path / "idx", hash_embedder)
    said, result = [], {}
    with store.write_lock():
        other = _store(tmp_path / "idx", hash_embedder)
        thread = threading.Thread(
            target=lambda: result.update(report=index_paths([docs], other, hash_embedder, on_wait=said.append))
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not said and time.monotonic() < deadline:
            time.sleep(0.02)
        assert said and "another index run is writing" in said[0]
        time.sleep(0.2)
        assert "report" not in result  # still waiting while the lock is held
    thread.join(10)
    assert len(result["report"].added) == 3


def test_two_concurrent_index_runs_never_embed_the_same_chunks_twice(tmp_path, minilm_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(40):
        (docs / f"note{n}.md").write_text(f"# Note {n}\n\n" + f"Paragraph {n} about item {n} and its care. " * 30)
    counters = [CountingHash(minilm_path) for _ in range(2)]
    stores = [_store(tmp_path / "idx", c) for c in counters]
    reports = [None, None]
    threads = [
        threading.Thread(target=lambda i=i: reports.__setitem__(i, index_paths([docs], stores[i], counters[i])))
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    total = Store.open(tmp_path / "idx").count_chunks()
    assert sum(len(c.texts) for c in counters) == total  # each chunk embedded once, by one run
    assert sorted(len(r.added) for r in reports) == [0, 40] and sorted(len(r.unchanged) for r in reports) == [0, 40]


class CountingHash(HashEmbedder):
    def __init__(self, minilm_path) -> None:
        super().__init__(minilm_path)
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        time.sleep(0.001 * len(texts))  # long enough for the runs to overlap
        return super().embed(texts)


def test_progress_is_reported_while_one_big_file_is_embedded(tmp_path, hash_embedder, monkeypatch):
    import ingest.pipeline

    monkeypatch.setattr(ingest.pipeline, "EMBED_SLICE", 50)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "big.md").write_text("".join(f"# Part {n}\n\n" + f"Sentence {n} of the manual. " * 40 for n in range(300)))
    seen = []
    report = index_paths([docs], _store(tmp_path / "idx", hash_embedder), hash_embedder, progress=seen.append)
    during = [p for p in seen if p.done == 0 and p.embedded > 0]
    assert report.embedded > 200 and len(during) >= report.embedded // 50
    assert [p.embedded for p in during] == sorted(p.embedded for p in during)
    assert all(p.path.endswith("big.md") for p in seen if p.phase != "discovering")


def test_off_a_terminal_a_progress_line_comes_at_least_every_heartbeat(monkeypatch):
    import rag.cli.progress
    from ingest.pipeline import Progress

    monkeypatch.setattr(rag.cli.progress, "HEARTBEAT_S", 0.2)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    with rag.cli.progress.progress_reporter(console) as update:
        update(Progress("/docs/huge.pdf", 0, 2, 0, 0))  # the file starts: one line (the first)
        time.sleep(0.9)  # nothing else is reported while it loads
    lines = [line for line in buffer.getvalue().splitlines() if line]
    assert len(lines) >= 3 and all("huge.pdf" in line and "chunks" in line for line in lines), lines


def test_a_corrupt_failure_list_is_reported_not_reset(tmp_path, hash_embedder, docs):
    store = _store(tmp_path / "idx", hash_embedder)
    (tmp_path / "idx" / "failures.json").write_text('{"default": {"/x.pdf": ')
    with pytest.raises(rag.CorruptIndex, match="failures.json .* is corrupt"):
        index_paths([docs], store, hash_embedder)
    assert (tmp_path / "idx" / "failures.json").read_text() == '{"default": {"/x.pdf": '  # left for the user
    with pytest.raises(rag.CorruptIndex):
        rag.open_index(tmp_path / "idx").status()
    json.loads((tmp_path / "idx" / "index.json").read_text())
