"""The `rag` command end to end: real MiniLM, real SmolLM2, real LanceDB in tmp_path."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import data_path
from typer.testing import CliRunner

from rag.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SUMMARY = re.compile(
    r"^(\d+) added, (\d+) updated, \d+ renamed, \d+ removed, (\d+) unchanged, (\d+) failed"
    r"(?:, (\d+) skipped \(unsupported type\))? — (\d+) chunks written"
)


def plain(text: str) -> str:
    return ANSI.sub("", text)


@pytest.fixture
def cli(tmp_path, minilm_path):
    """Run `rag ARGS --index tmp/idx --embed-model MiniLM` (no --embed-model for `status`)."""
    runner = CliRunner()
    index = str(tmp_path / "idx")

    def run(*args: str, embed: bool = True):
        extra = ["--index", index] + (["--embed-model", str(minilm_path)] if embed else [])
        return runner.invoke(app, [*args, *extra])

    run.index = index
    return run


def summary(result) -> tuple[int, ...]:
    match = SUMMARY.match(plain(result.stdout).strip())
    assert match, result.stdout
    return tuple(int(g or 0) for g in match.groups())


def error_line(result, before: tuple[str, ...] = ()) -> str:
    """The one 'Error: ...' line of a failed command (after the progress lines `before`, if any)."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    lines = plain(result.stderr).strip().splitlines()
    assert len(lines) == len(before) + 1 and lines[-1].startswith("Error: "), result.stderr
    assert all(line.startswith(prefix) for line, prefix in zip(lines, before, strict=False))
    assert result.stdout == ""
    return lines[-1]


# -- index -----------------------------------------------------------------------------------------


def test_index_docs_adds_three_files_and_skips_the_hidden_one(cli, docs):
    result = cli("index", str(docs))
    assert result.exit_code == 0, result.output
    added, updated, unchanged, failed, skipped, chunks = summary(result)
    assert (added, updated, unchanged, failed, skipped) == (3, 0, 0, 0, 0)
    assert chunks >= 4  # house.md, recipes.txt, and one chunk per PDF page
    assert plain(result.stderr).startswith(f"Indexing into {cli.index}")

    found = json.loads(cli("search", "This hidden file must never be indexed", "-k", "10", "--json").stdout)
    assert {h["path"] for h in found} == {str(docs / n) for n in ("house.md", "recipes.txt", "manual.pdf")}
    assert not any("must never be indexed" in h["text"] for h in found)


def test_index_json_then_rerun_reports_unchanged(cli, docs):
    result = cli("index", str(docs), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(report["added"]) == sorted(str(docs / n) for n in ("house.md", "manual.pdf", "recipes.txt"))
    assert report["failed"] == [] and report["skipped"] == [] and report["updated"] == []
    assert report["chunks"] >= 4 and report["chunks_per_second"] > 0
    assert result.stderr == ""  # --json prints nothing else

    again = cli("index", str(docs))
    assert again.exit_code == 0, again.output
    assert summary(again)[:5] == (0, 0, 3, 0, 0)
    assert summary(again)[5] == 0

    rerun = json.loads(cli("index", str(docs), "--json").stdout)
    assert len(rerun["unchanged"]) == 3 and rerun["added"] == [] and rerun["chunks"] == 0


def test_index_reports_an_explicitly_named_unsupported_file_as_failed(cli, tmp_path):
    table = tmp_path / "table.xyz"
    table.write_text("a,b\n1,2\n")
    result = cli("index", str(table))
    assert result.exit_code == 0, result.output
    assert summary(result)[:5] == (0, 0, 0, 1, 0)
    assert f"failed {table}: unsupported file type '.xyz'" in plain(result.stderr)

    report = json.loads(cli("index", str(table), "--json").stdout)
    assert report["failed"] == [[str(table), "unsupported file type '.xyz'"]]


def test_index_reports_hostile_pdfs_and_keeps_going(cli, tmp_path):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    shutil.copy(data_path("pdfs", "pdfminer-samples", "encryption", "rc4-128.pdf"), folder / "locked.pdf")
    shutil.copy(data_path("pdfs", "py-pdf-sample-files", "001-trivial", "minimal-document.pdf"), folder / "lorem.pdf")
    result = cli("index", str(folder))
    assert result.exit_code == 0, result.output
    assert summary(result)[:5] == (1, 0, 0, 1, 0)
    assert f"failed {folder / 'locked.pdf'}: encrypted PDF: a password is required" in plain(result.stderr)


def test_index_of_a_missing_path_is_one_error_line(cli, tmp_path):
    line = error_line(cli("index", str(tmp_path / "nowhere")), before=("Indexing into",))
    assert "no such file or folder" in line and "nowhere" in line


# -- search, status --------------------------------------------------------------------------------


def test_search_ranks_house_first(cli, docs):
    assert cli("index", str(docs)).exit_code == 0
    result = cli("search", "spare key", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits[0]["path"] == str(docs / "house.md")
    assert "flowerpot" in hits[0]["text"]
    assert hits[0]["location"].startswith("house.md")
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]

    text = plain(cli("search", "spare key", "-k", "2").stdout).splitlines()
    assert text[0].startswith("1. ") and "house.md" in text[0]
    assert "flowerpot" in text[1]
    assert text[2].startswith("2. ")


def test_search_on_a_missing_index_is_one_error_line(cli):
    line = error_line(cli("search", "spare key"))
    assert f"no index at {cli.index}" in line and "rag index PATH" in line


def test_status_shows_documents_chunks_and_embedder(cli, docs, minilm_path):
    fresh = cli("status", embed=False)
    assert fresh.exit_code == 0
    assert "not created yet" in plain(fresh.stdout)

    report = json.loads(cli("index", str(docs), "--json").stdout)
    result = cli("status", embed=False)
    assert result.exit_code == 0, result.output
    lines = plain(result.stdout).splitlines()
    assert f"index      {cli.index}" in lines
    assert "documents  3" in lines
    assert f"chunks     {report['chunks']}" in lines
    assert f"embedder   {minilm_path} (dim 384)" in lines

    status = json.loads(cli("status", "--json", embed=False).stdout)
    assert status["exists"] is True
    assert (status["documents"], status["chunks"]) == (3, report["chunks"])
    assert (status["embedder"], status["dim"]) == (str(minilm_path), 384)
    assert status["chunking"] == {"max_tokens": 254, "overlap_tokens": 32}


# -- ask -------------------------------------------------------------------------------------------


def test_ask_answers_with_sources(cli, docs, smollm2_path):
    assert cli("index", str(docs)).exit_code == 0
    result = cli("ask", "Where is the spare key hidden?", "--llm", str(smollm2_path))
    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    answer, _, sources = out.partition("Sources")
    assert "flowerpot" in answer.lower()
    source_lines = [line for line in sources.splitlines() if line.strip()]
    assert re.match(r"^[ *+]\[1\] house\.md", source_lines[0]), source_lines
    assert str(docs / "house.md") in source_lines[0]
    assert "tok/s" in plain(result.stderr)


def test_ask_with_a_missing_llm_is_one_error_line(cli, docs):
    assert cli("index", str(docs)).exit_code == 0
    line = error_line(cli("ask", "Where is the spare key hidden?", "--llm", "/no/such/model"))
    assert "cannot load chat model '/no/such/model'" in line and "--llm" in line


# -- bugs --------------------------------------------------------------------------------------------


def test_search_prints_snippets_with_square_brackets(cli, tmp_path):
    note = tmp_path / "backup.md"
    note.write_text("# Backups\n\nMount the backup drive at [/mnt/backup] every night.\n")
    assert cli("index", str(note)).exit_code == 0
    result = cli("search", "where is the backup drive mounted")
    assert result.exit_code == 0, repr(result.exception)
    assert "[/mnt/backup]" in result.stdout


def test_search_prints_the_snippet_of_a_real_tldr_page_verbatim(cli, tmp_path):
    page = tmp_path / "tar.md"
    shutil.copy(data_path("tldr", "en", "common", "tar.md"), page)
    assert cli("index", str(page)).exit_code == 0
    query = "extract an archive file into the current directory verbosely"
    [hit] = json.loads(cli("search", query, "-k", "1", "--json").stdout)
    from rag.cli.main import _snippet

    expected = _snippet(hit["text"], query, 200)  # the passage around the match, brackets and all
    assert "[f]ile" in expected
    result = cli("search", query, "-k", "1")
    assert result.exit_code == 0
    assert plain(result.stdout).splitlines()[1] == f"    {expected}"


def test_index_failure_line_shows_the_real_file_name(cli, tmp_path):
    empty = tmp_path / "notes [draft].md"
    empty.write_text("")
    result = cli("index", str(empty))
    assert result.exit_code == 0
    assert summary(result)[3] == 1
    assert f"failed {empty}: empty file" in plain(result.stderr)
