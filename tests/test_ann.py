"""The vector (ANN) index: built by `Store.sync_vector_index` past a threshold (lowered here), exact
nearest neighbours still found, filters still applied, rows written after the index still found."""

from __future__ import annotations

import numpy as np
import pytest

import ingest.store as store_mod
from ingest.store import ChunkRow, Filter, Store

DIM = 384
N = 3000


def _rows(collection: str, start: int, n: int) -> list[ChunkRow]:
    return [
        ChunkRow(
            id=f"{collection}-{i}", collection=collection, path=f"/docs/{collection}/d{i // 10}.md",
            doc_hash=f"h{i // 10}", doc_size=1, doc_mtime_ns=0, chunk_index=i % 10, text=f"chunk {i}",
            text_hash=f"{collection}-{i}", heading="", page=None, char_start=0, char_end=1,
        )
        for i in range(start, start + n)
    ]  # fmt: skip


def _vectors(n: int, seed: int) -> np.ndarray:
    """Clustered, normalised vectors (random cluster centres plus noise), like embeddings of documents."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 30, n)] + 0.7 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """3,000 rows (2,700 in "default", 300 in "other"), index threshold 2,000, and an index of 64 partitions
    (LanceDB's default would make one at this size), so a query probes only some of them."""
    from lancedb.index import IvfSq

    monkeypatch.setattr(store_mod, "VECTOR_INDEX_MIN_ROWS", 2000)
    monkeypatch.setattr(store_mod, "_vector_index_config", lambda: IvfSq(distance_type="cosine", num_partitions=64))
    store = Store.open_or_create(tmp_path / "index", {"id": "synthetic", "fingerprint": "f", "dim": DIM}, {})
    vectors = _vectors(N, 0)
    store.replace_documents("default", [], _rows("default", 0, N - 300), vectors[: N - 300])
    store.replace_documents("other", [], _rows("other", N - 300, 300), vectors[N - 300 :])
    store.vectors = vectors  # type: ignore[attr-defined]
    return store


def _vector_indices(store: Store) -> list:
    return [i for i in store._table.list_indices() if "vector" in i.columns]


def test_index_built_only_past_threshold(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "VECTOR_INDEX_MIN_ROWS", 500)
    store = Store.open_or_create(tmp_path / "index", {"id": "synthetic", "fingerprint": "f", "dim": DIM}, {})
    store.replace_documents("default", [], _rows("default", 0, 400), _vectors(400, 1))
    store.sync_vector_index()
    assert _vector_indices(store) == []
    store.replace_documents("default", [], _rows("default", 400, 200), _vectors(200, 2))
    store.sync_vector_index()
    assert [i.index_type for i in _vector_indices(store)] == ["IvfSq"]
    store.sync_vector_index()  # nothing new: no second index, no error
    assert len(_vector_indices(store)) == 1


def test_exact_neighbour_and_cosine_scores_with_index(store):
    store.sync_vector_index()
    assert _vector_indices(store)
    for i in range(0, N, 97):
        (best, score), *_ = store.search(store.vectors[i], 5)
        assert best.id == (f"default-{i}" if i < N - 300 else f"other-{i}")
        assert score == pytest.approx(1.0, abs=1e-5)  # refined with the full vectors: exact cosine
    query = store.vectors[5] + 0.5 * store.vectors[6]
    hits = store.search(query, 10)
    expected = store.vectors @ (query / np.linalg.norm(query))
    assert [s for _, s in hits] == pytest.approx(sorted(expected, reverse=True)[:10], abs=1e-4)


def test_filters_apply_with_index(store):
    store.sync_vector_index()
    other = store.vectors[N - 300 :]
    for i in (3, 1500, N - 10):
        hits = store.search(store.vectors[i], 10, Filter(collection="other"))
        exact = np.argsort(-(other @ store.vectors[i]))[:10] + N - 300
        assert [r.id for r, _ in hits] == [f"other-{j}" for j in exact]
        hits = store.search(store.vectors[i], 10, Filter(path_globs=("/docs/default/d1*.md",)))
        assert hits and all(r.path.startswith("/docs/default/d1") for r, _ in hits)


def test_rows_added_after_index_are_found_and_folded_in(store):
    store.sync_vector_index()
    new = _vectors(50, 7)
    store.replace_documents("late", [], _rows("late", 0, 50), new)
    (name,) = [i.name for i in _vector_indices(store)]
    assert store._table.index_stats(name).num_unindexed_rows == 50
    for i in (0, 25, 49):
        assert store.search(new[i], 3)[0][0].id == f"late-{i}"  # unindexed rows are scanned
    store.sync_vector_index()  # folds them into the index
    assert store._table.index_stats(name).num_unindexed_rows == 0
    assert store.search(new[25], 3)[0][0].id == "late-25"


def test_index_run_builds_the_index_past_threshold(tmp_path, monkeypatch, embedder):
    """`index_paths` ends by syncing the vector index: a real run over a small folder with threshold 5."""
    from ingest.chunking import ChunkConfig
    from ingest.pipeline import index_paths

    monkeypatch.setattr(store_mod, "VECTOR_INDEX_MIN_ROWS", 5)
    folder = tmp_path / "docs"
    folder.mkdir()
    topics = ["boiler pressure", "spare key", "garden hose", "tax return", "train tickets", "dog food"]
    for i, topic in enumerate(topics):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\nWhere is the {topic}? It is in drawer {i}.\n")
    meta = {"id": embedder.id, "fingerprint": embedder.fingerprint, "dim": embedder.dim}
    store = Store.open_or_create(tmp_path / "idx", meta, {})
    index_paths([folder], store, embedder, ChunkConfig(254, 32))
    assert len(_vector_indices(store)) == 1
    (best, score), *_ = store.search(embedder.embed(["Where is the spare key?"])[0], 3)
    assert best.path.endswith("note1.md") and 0 < score <= 1
