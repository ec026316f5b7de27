"""Fetching what search returned by id: `Index.get_chunk` and `Index.get_document` (used by rag serve and
rag mcp), on a real LanceDB index built with the real MiniLM embedder."""

from __future__ import annotations

import os

import pytest

import rag


@pytest.fixture
def index(tmp_path, docs, embedder):
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder)
    idx.add(docs)
    idx.add(docs / "manual.pdf", collection="manuals")
    return idx


def test_get_chunk_returns_the_stored_chunk_of_a_search_hit(index):
    hit = index.search("Where is the spare key hidden?", k=1)[0]
    chunk = index.get_chunk(hit.chunk_id)
    assert (chunk.chunk_id, chunk.path, chunk.text, chunk.heading) == (hit.chunk_id, hit.path, hit.text, hit.heading)
    assert chunk.collection == "default" and chunk.score == 0.0


def test_get_document_returns_its_chunks_in_order_per_collection(index, docs, monkeypatch):
    pdf = str(docs / "manual.pdf")
    both = index.get_document(pdf)
    assert [(c.collection, c.page) for c in both] == [("default", 1), ("default", 2), ("manuals", 1), ("manuals", 2)]
    assert [c.page for c in index.get_document(pdf, collection="manuals")] == [1, 2]
    monkeypatch.chdir(docs)
    assert [c.text for c in index.get_document("manual.pdf", "default")] == [c.text for c in both[:2]]


def test_unknown_ids_and_paths_raise_not_in_index(index, docs):
    with pytest.raises(rag.NotInIndex, match="no chunk with id 'nope'"):
        index.get_chunk("nope")
    with pytest.raises(rag.NotInIndex, match="no document"):
        index.get_document(docs / ".hidden.md")  # never indexed
    with pytest.raises(rag.NotInIndex):
        index.get_document(os.fspath(docs / "house.md"), collection="manuals")
    assert issubclass(rag.NotInIndex, LookupError) and issubclass(rag.NotInIndex, rag.RagError)
