"""The Index API end to end on real parts: real LanceDB in tmp_path, the real MiniLM embedder, real PDFs."""

from __future__ import annotations

import numpy as np
import pytest

import rag
from ingest.store import Store


def test_add_then_search_finds_the_right_document_with_page(tmp_path, docs, embedder):
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    report = index.add(docs)
    assert sorted(p.rsplit("/", 1)[1] for p in report.added) == ["house.md", "manual.pdf", "recipes.txt"]
    assert report.failed == [] and report.chunks >= 4  # the PDF's two pages are separate chunks

    top = index.search("Where is the spare key?", k=3)[0]
    assert top.path.endswith("house.md") and "flowerpot" in top.text
    assert top.heading == "House notes"

    pdf_hit = index.search("When should I bleed the radiators?", k=1)[0]
    assert pdf_hit.path.endswith("manual.pdf") and pdf_hit.page == 2
    assert pdf_hit.location == "manual.pdf, page 2"
    assert all(".hidden" not in h.path for h in index.search("secret hidden file", k=10))


def test_rows_carry_provenance_and_offsets(tmp_path, docs, embedder):
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    index.add(docs)
    hit = index.search("pancake recipe flour", k=1)[0]
    source = (docs / "recipes.txt").read_text()
    assert source[hit.char_start : hit.char_end].strip() == hit.text.strip()
    meta = Store.open(tmp_path / "idx").meta
    assert meta["schema_version"] == 2
    assert meta["embedder"] == {"id": embedder.id, "fingerprint": embedder.fingerprint, "dim": 384, "max_tokens": 256}
    assert meta["chunking"] == {"max_tokens": 254, "overlap_tokens": 32}


def test_vectors_are_unit_length_and_search_scores_are_cosine(tmp_path, docs, embedder):
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    index.add(docs)
    hits = index.search("spare key flowerpot", k=4, mode="vector")
    assert hits == sorted(hits, key=lambda h: -h.score)
    expected = float(embedder.embed(["spare key flowerpot"])[0] @ embedder.embed([hits[0].text])[0])
    assert hits[0].score == pytest.approx(expected, abs=1e-4)


def test_reindex_skips_unchanged_and_replaces_changed_without_duplicates(tmp_path, docs, embedder):
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    first = index.add(docs)
    again = index.add(docs)
    assert again.added == [] and again.updated == [] and len(again.unchanged) == 3 and again.chunks == 0

    (docs / "house.md").write_text("# House notes\n\nThe spare key is now with the neighbour, Mrs. Patel.\n")
    changed = index.add(docs)
    assert [p.rsplit("/", 1)[1] for p in changed.updated] == ["house.md"]
    status = index.status()
    assert status.documents == 3
    assert status.chunks == first.chunks  # house.md was 1 chunk and is 1 chunk: old one replaced, not added
    assert "Patel" in index.search("who has the spare key", k=1)[0].text
    texts = [h.text for h in index.search("spare key", k=10)]
    assert not any("flowerpot" in t for t in texts)


def test_status_reports_counts_models_and_blas(tmp_path, docs, embedder):
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    assert index.status().exists is False
    index.add(docs)
    status = index.status()
    assert (status.exists, status.documents, status.dim) == (True, 3, 384)
    assert status.chunks == Store.open(tmp_path / "idx").count_chunks()
    assert status.embedder == embedder.id and status.blas


def test_search_on_missing_index_raises_index_not_found(tmp_path, embedder):
    with pytest.raises(rag.IndexNotFound, match="no index at"):
        rag.open_index(tmp_path / "nothing", embed_model=embedder).search("anything")


class _OtherEmbedder(rag.Embedder):
    """A different (deterministic) embedding model: the model is not what this test is about."""

    id, fingerprint, dim, max_tokens = "other-model", "0000000000000000", 384, 256

    def embed(self, texts):
        vectors = np.ones((len(texts), self.dim), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def token_spans(self, text):
        return [(m, m + 1) for m in range(len(text))]


def test_refuses_vectors_from_a_different_embedder(tmp_path, docs, embedder):
    rag.open_index(tmp_path / "idx", embed_model=embedder).add(docs)
    other = rag.open_index(tmp_path / "idx", embed_model=_OtherEmbedder())
    with pytest.raises(rag.EmbedderMismatch, match="all-MiniLM-L6-v2"):
        other.add(docs)
    with pytest.raises(rag.EmbedderMismatch):
        other.search("spare key")


def test_existing_index_reopens_with_its_own_embedder(tmp_path, docs, minilm_path):
    rag.open_index(tmp_path / "idx", embed_model=str(minilm_path)).add(docs)
    reopened = rag.open_index(tmp_path / "idx")  # no embed_model: the index's recorded one is used
    assert reopened.search("spare key", k=1)[0].path.endswith("house.md")
    assert reopened.embedder.id == str(minilm_path)


def test_unloadable_models_raise_one_clear_error(tmp_path):
    with pytest.raises(rag.ModelLoadError, match="no such folder") as missing:
        rag.MLXEmbedder(str(tmp_path / "no-model"))
    assert "RAG_EMBED_MODEL" in str(missing.value)
    with pytest.raises(rag.ModelLoadError, match="RAG_LLM"):
        rag.MLXGenerator("mlx-community/Definitely-Not-A-Model-4bit")  # hub offline in tests
    (tmp_path / "empty").mkdir()
    with pytest.raises(rag.ModelLoadError, match="config.json"):
        rag.MLXGenerator(str(tmp_path / "empty"))
