"""What a newcomer's first hour found in search and indexing: codes in text search, honest messages,
named skips, nothing created for nothing, and progress phases. Real LanceDB, real CLI."""

from __future__ import annotations

import re

import pytest
from conftest import HashEmbedder
from typer.testing import CliRunner

import rag
from ingest import Store, index_paths
from ingest.store import code_tokens
from rag.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*m")

CODES = [
    "8-2-6-3",  # a padlock combination: every piece is one character, too short for the word index
    "XJ-9921-B",
    "v3.11.2",
    "jane.doe@example.com",
    "/etc/nginx/nginx.conf",
    "192.168.1.20",
    "C++",
    "1,250.00",
    "2026-03-14",
    "4F7A-99QZ",
    "ISO-8601",
    "A4",
]


@pytest.fixture
def coded(tmp_path, minilm_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, code in enumerate(CODES):
        (docs / f"note{i}.md").write_text(f"# Note {i}\n\nThe thing we wrote down is {code} and that is all.\n")
    (docs / "decoy.md").write_text("# Decoy\n\nNumbers 8 and 2 and 6 and 3, a C grade, version 3 and 11.\n")
    index = rag.open_index(tmp_path / "idx", embed_model=HashEmbedder(minilm_path))
    index.add(docs)
    return index


@pytest.mark.parametrize("code", CODES)
def test_codes_numbers_versions_emails_and_paths_are_found_in_text_mode(coded, code):
    hits = coded.search(code, k=3, mode="text")
    assert hits and hits[0].path.endswith(f"note{CODES.index(code)}.md"), [h.path for h in hits]


def test_a_code_inside_a_question_is_found_first(coded):
    hits = coded.search("what was the combination 8-2-6-3 again?", k=3, mode="text")
    assert hits[0].path.endswith("note0.md")


def test_code_tokens():
    assert code_tokens('Is "8-2-6-3" the code, or C++? See v3.11.2.') == ["8-2-6-3", "C++", "v3.11.2"]
    assert code_tokens("where is the spare key hidden") == []
    assert code_tokens("A4 paper, 2026") == []  # whole words to the word index: "a4", "2026"
    assert code_tokens("T-cell and non-coding RNA in CD4 cells") == []  # words, not codes (bench/code_matches.py)
    assert code_tokens("IL-6 at 2026-03-14, ask jane@x.org") == ["IL-6", "2026-03-14", "jane@x.org"]


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, ANSI.sub("", result.stdout), ANSI.sub("", result.stderr)


def test_an_empty_result_says_no_match_not_empty_index(tmp_path, minilm_path, docs):
    idx = str(tmp_path / "idx")
    _cli("index", "--index", idx, "--embed-model", str(minilm_path), str(docs))
    result, out, _ = _cli("search", "--index", idx, "--mode", "text", "zebra quantum")
    assert result.exit_code == 0 and out.strip() == "No match in the index."


def test_skipped_files_are_named_and_misnamed_binaries_fail_wherever_they_come_from(tmp_path, minilm_path):
    from test_loaders import png_bytes

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "scan.pdf").write_bytes(png_bytes())  # a PNG named .pdf
    (bad / "notes.txt").write_bytes(png_bytes())  # a PNG named .txt
    (bad / "song.mp3").write_bytes(b"ID3\x04" + bytes(64))  # a type rag doesn't read
    (bad / "ok.md").write_text("# Ok\n\nFine.\n")
    idx = str(tmp_path / "idx")
    result, out, err = _cli("index", "--index", idx, "--embed-model", str(minilm_path), str(bad))
    assert result.exit_code == 0, err
    assert re.search(r"failed \S*scan\.pdf: not a PDF", err) and re.search(r"failed \S*notes\.txt: binary content", err)
    assert re.search(r"skipped \S*song\.mp3: unsupported file type '\.mp3'", err)
    assert "1 added" in out and "2 failed" in out and "1 skipped" in out
    failures = rag.open_index(idx).status().failures
    assert sorted(p.rsplit("/", 1)[-1] for p in failures) == ["notes.txt", "scan.pdf"]
    # the same file named on its own fails the same way
    one, _, err_one = _cli("index", "--index", idx, "--embed-model", str(minilm_path), str(bad / "scan.pdf"))
    assert one.exit_code == 0 and re.search(r"failed \S*scan\.pdf: not a PDF", err_one)


def test_a_missing_path_or_a_folder_with_nothing_readable_creates_no_index(tmp_path, minilm_path):
    idx = tmp_path / "idx"
    result, _, err = _cli("index", "--index", str(idx), "--embed-model", str(minilm_path), str(tmp_path / "nope"))
    assert result.exit_code == 1 and "no such file or folder" in err
    assert not idx.exists()
    images = tmp_path / "sounds"
    images.mkdir()
    (images / "a.mp3").write_bytes(b"ID3\x04")
    result, _, err = _cli("index", "--index", str(idx), "--embed-model", str(minilm_path), str(images))
    assert result.exit_code == 1 and "nothing to index" in err
    assert not idx.exists()
    result, _, err = _cli("ask", "--index", str(idx), "--embed-model", str(minilm_path), "anything?")
    assert result.exit_code == 1 and "no index at" in err


def test_progress_reports_each_phase_in_order(tmp_path, hash_embedder, docs):
    store = Store.open_or_create(tmp_path / "idx", {"id": "h", "fingerprint": "h", "dim": hash_embedder.dim}, {})
    seen = []
    index_paths([docs], store, hash_embedder, progress=seen.append)
    phases = [p.phase for p in seen]
    assert phases[0] == "discovering" and seen[0].total == 0
    order = ["discovering", "loading", "done", "writing", "indexing"]
    assert [p for p in dict.fromkeys(phases) if p in order] == order
    assert "embedding" in phases
    assert phases.index("embedding") > phases.index("loading") and phases[-1] == "indexing"
