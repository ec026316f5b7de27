"""Incremental indexing on real parts: edit / touch / delete / rename / add files and re-index, counting
exactly what the (real) embedder was asked to embed, and checking that search follows the changes."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import CountingEmbedder, assert_consistent

import rag

SECTION_WORDS = 150  # one Markdown section ~ one chunk: sections this size are not packed together


def _long_doc(topics: list[str]) -> str:
    parts = ["# Handbook"]
    for topic in topics:
        body = " ".join(f"{topic} detail {i} explains the {topic} procedure." for i in range(SECTION_WORDS // 6))
        parts.append(f"## {topic.title()}\n\n{body}")
    return "\n\n".join(parts) + "\n"


@pytest.fixture
def counting(embedder):
    return CountingEmbedder(embedder)


@pytest.fixture
def index(tmp_path, counting):
    return rag.open_index(tmp_path / "idx", embed_model=counting)


def test_rerun_with_nothing_changed_embeds_nothing(index, docs, counting):
    first = index.add(docs)
    assert first.embedded == len(counting.texts) == first.chunks > 0
    counting.texts.clear()
    again = index.add(docs)
    assert counting.texts == [] and again.embedded == 0 and again.chunks == 0
    assert len(again.unchanged) == 3 and again.summary().startswith(
        "0 added, 0 updated, 0 renamed, 0 removed, 3 unchanged"
    )


def test_touched_file_with_same_content_is_not_reembedded(index, docs, counting):
    index.add(docs)
    counting.texts.clear()
    path = docs / "house.md"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    report = index.add(docs)
    assert counting.texts == [] and str(path) in report.unchanged
    stored = index._open().documents()[str(path)]
    assert stored.mtime_ns == path.stat().st_mtime_ns  # metadata refreshed: next run takes the fast path


def test_editing_one_section_reembeds_only_that_chunk(index, tmp_path, counting):
    folder = tmp_path / "handbook"
    folder.mkdir()
    topics = ["boiler", "garden", "garage", "roof", "alarm"]
    (folder / "handbook.md").write_text(_long_doc(topics))
    first = index.add(folder)
    assert first.chunks >= 5
    counting.texts.clear()

    edited = _long_doc(topics).replace("garage detail 3 explains", "garage detail 3 (moved to the shed) explains")
    (folder / "handbook.md").write_text(edited)
    report = index.add(folder)
    assert report.updated == [str(folder / "handbook.md")]
    assert len(counting.texts) == report.embedded == 1 and "moved to the shed" in counting.texts[0]
    assert report.reused == first.chunks - 1
    assert "moved to the shed" in index.search("what moved to the shed", k=1)[0].text
    assert assert_consistent(index.path)[("default", str(folder / "handbook.md"))] == first.chunks


def test_deleted_file_is_removed_and_search_follows(index, docs, counting):
    index.add(docs)
    (docs / "recipes.txt").unlink()
    report = index.add(docs)
    assert report.removed == [str(docs / "recipes.txt")] and counting.texts[-1:] != ["pancake"]
    assert all(not h.path.endswith("recipes.txt") for h in index.search("pancake recipe flour", k=10))
    assert index.status().documents == 2
    assert_consistent(index.path)


def test_rename_and_move_keep_vectors_without_reembedding(index, docs, counting):
    first = index.add(docs)
    counting.texts.clear()
    (docs / "archive").mkdir()
    shutil.move(docs / "manual.pdf", docs / "archive" / "boiler-manual.pdf")
    (docs / "house.md").rename(docs / "home.md")
    report = index.add(docs)
    assert counting.texts == [] and report.embedded == 0
    assert sorted(report.renamed) == sorted(
        [
            (str(docs / "manual.pdf"), str(docs / "archive" / "boiler-manual.pdf")),
            (str(docs / "house.md"), str(docs / "home.md")),
        ]
    )
    assert report.removed == [] and report.added == []
    hit = index.search("When should I bleed the radiators?", k=1)[0]
    assert hit.path == str(docs / "archive" / "boiler-manual.pdf") and hit.page == 2
    chunks = assert_consistent(index.path)
    assert sum(chunks.values()) == first.chunks and ("default", str(docs / "house.md")) not in chunks


def test_new_file_is_added_and_only_it_is_embedded(index, docs, counting):
    index.add(docs)
    counting.texts.clear()
    (docs / "car.md").write_text("# Car\n\nThe winter tyres are stored in the loft above the garage.\n")
    report = index.add(docs)
    assert report.added == [str(docs / "car.md")] and len(report.unchanged) == 3
    assert len(counting.texts) == 1 and "winter tyres" in counting.texts[0]
    assert index.search("where are the winter tyres", k=1)[0].path.endswith("car.md")


def test_identical_text_is_embedded_once_thanks_to_the_cache(index, docs, counting):
    index.add(docs)
    counting.texts.clear()
    shutil.copy(docs / "house.md", docs / "house-copy.md")  # same content, the original still exists
    report = index.add(docs)
    assert report.added == [str(docs / "house-copy.md")] and report.embedded == 0 and report.reused == 1
    assert counting.texts == []


def test_failed_files_are_remembered_reported_and_retried_only_when_changed(index, docs, counting):
    bad = docs / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50)
    first = index.add(docs)
    assert [p for p, _ in first.failed] == [str(bad)]
    assert index.status().failures[str(bad)]["reason"] == first.failed[0][1]
    again = index.add(docs)
    assert again.failed == first.failed  # still reported, not silently dropped
    from conftest import make_pdf

    make_pdf(bad, ["Now a readable page about the attic ladder."])
    fixed = index.add(docs)
    assert fixed.added == [str(bad)] and fixed.failed == [] and index.status().failures == {}


def test_reindexing_one_folder_leaves_other_folders_alone(index, tmp_path, docs):
    other = tmp_path / "other"
    other.mkdir()
    (other / "garden.md").write_text("# Garden\n\nThe hose reel is behind the shed.\n")
    index.add(docs)
    index.add(other)
    report = index.add(docs)
    assert report.removed == [] and index.status().documents == 4


def test_collections_are_separate_listed_searchable_and_removable(index, tmp_path, docs):
    other = tmp_path / "work"
    other.mkdir()
    (other / "vpn.md").write_text("# VPN\n\nThe office VPN key is renewed every March by the IT desk.\n")
    index.add(docs, collection="home")
    index.add(other, collection="work")
    index.add(docs / "house.md", collection="work")  # the same file may live in two collections
    assert index.collections() == {"home": (3, 4), "work": (2, 2)}
    assert {h.path for h in index.search("spare key", k=10, collection="work")} == {
        str(other / "vpn.md"),
        str(docs / "house.md"),
    }
    assert any(h.path.endswith("manual.pdf") for h in index.search("radiators", k=10))  # all collections
    assert index.remove_collection("work") == 2
    assert index.collections() == {"home": (3, 4)}
    with pytest.raises(rag.RagError, match="no collection 'work'"):
        index.remove_collection("work")
    with pytest.raises(rag.RagError, match="invalid collection name"):
        index.add(docs, collection="bad name!")
    assert_consistent(index.path)


def test_a_file_that_failed_for_want_of_a_password_is_retried_when_one_is_given(index, tmp_path):
    from conftest import data_path

    docs = tmp_path / "locked"
    docs.mkdir()
    locked = docs / "rc4.pdf"
    shutil.copy(data_path("pdfs", "pdfminer-samples", "encryption", "rc4-128.pdf"), locked)
    first = index.add(docs)
    assert first.failed == [(str(locked), "encrypted PDF: a password is required")]
    wrong = index.add(docs, password="not-it")
    assert wrong.failed == [(str(locked), "encrypted PDF: wrong password")]  # tried, not replayed
    opened = index.add(docs, password="foo")  # the file's bytes never changed
    assert opened.added == [str(locked)] and opened.failed == [] and index.status().failures == {}


def test_failed_files_are_retried_by_a_new_loader_version(index, docs, monkeypatch):
    import ingest.pipeline

    bad = docs / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50)
    assert [p for p, _ in index.add(docs).failed] == [str(bad)]
    tried = []
    real_load = ingest.pipeline.load
    monkeypatch.setattr(ingest.pipeline, "load", lambda path, **kw: tried.append(path) or real_load(path, **kw))
    index.add(docs)
    assert tried == []  # same loaders, same bytes: the failure is replayed without reading the file
    monkeypatch.setattr(ingest.pipeline, "LOADER_VERSION", ingest.pipeline.LOADER_VERSION + 1)
    again = index.add(docs)
    assert tried == [bad] and [p for p, _ in again.failed] == [str(bad)]
