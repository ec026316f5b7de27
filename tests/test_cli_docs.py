"""The commands that look at what is indexed and at the settings: docs, rm, show, config, log."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from rag.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def run(tmp_path, minilm_path, docs):
    index = str(tmp_path / "idx")

    def invoke(*args: str, input: str | None = None):
        result = CliRunner().invoke(app, list(args) + ["--index", index], input=input)
        return result, ANSI.sub("", result.stdout), ANSI.sub("", result.stderr)

    result, _, err = invoke("index", str(docs), "--embed-model", str(minilm_path))
    assert result.exit_code == 0, err
    return invoke


def test_docs_lists_documents_with_chunks_pages_and_filters(run, docs):
    result, out, _ = run("docs")
    assert result.exit_code == 0
    assert re.search(r"2 chunks\s+2 pages\s+default\s+\S*manual\.pdf", out), out
    assert re.search(r"1 chunk \s+default\s+\S*house\.md", out), out
    assert out.strip().endswith("3 documents")
    _, only_pdf, _ = run("docs", "--type", "pdf", "--json")
    assert [d["path"] for d in json.loads(only_pdf)] == [str(docs / "manual.pdf")]
    _, alias, _ = run("ls", "--path", "*.md")
    assert "house.md" in alias and "manual.pdf" not in alias


def test_show_prints_a_chunk_a_document_or_one_page(run, docs):
    _, page, _ = run("show", f"{docs / 'manual.pdf'}:2")
    assert "manual.pdf, page 2" in page and "Bleed the radiators every October." in page
    assert "boiler reset button" not in page
    _, whole, _ = run("show", str(docs / "house.md"), "--json")
    [chunk] = json.loads(whole)
    _, by_id, _ = run("show", chunk["chunk_id"])
    assert "The spare key is hidden under the blue flowerpot" in by_id
    missing, _, err = run("show", f"{docs / 'manual.pdf'}:9")
    assert missing.exit_code == 1 and "no page 9" in err


def test_rm_asks_then_removes_documents_but_not_files(run, docs):
    declined, _, _ = run("rm", str(docs / "house.md"), input="n\n")
    assert declined.exit_code == 1
    result, out, _ = run("rm", str(docs / "house.md"), input="y\n")
    assert result.exit_code == 0 and f"removed {docs / 'house.md'}" in out
    assert (docs / "house.md").is_file()  # the file itself stays
    _, listed, _ = run("docs")
    assert "house.md" not in listed and "2 documents" in listed
    everything, out, _ = run("rm", str(docs), "--yes")
    assert everything.exit_code == 0 and out.count("removed ") == 2
    gone, _, err = run("rm", str(docs / "house.md"), "--yes")
    assert gone.exit_code == 1 and "nothing indexed at" in err


def test_config_shows_each_setting_and_where_it_comes_from(run, monkeypatch):
    monkeypatch.setenv("RAG_LLM", "/models/my-llm")
    result, out, _ = run("config", "--json")
    shown = json.loads(out)
    assert result.exit_code == 0
    assert shown["llm"] == {"value": "/models/my-llm", "from": "env RAG_LLM"}
    assert shown["index"]["from"] == "flag"
    assert shown["log"]["value"] == "on"


def test_ask_reads_the_question_from_stdin_and_logs_it(run, smollm2_path, monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    llm = ["--llm", str(smollm2_path), "--max-tokens", "24"]
    result, out, err = run("ask", "-", *llm, input="Where is the spare key hidden?\n")
    assert result.exit_code == 0, err
    assert "Sources" in out
    logged = CliRunner().invoke(app, ["log", "--json"]).stdout
    [entry] = json.loads(logged)
    assert entry["question"] == "Where is the spare key hidden?" and entry["llm"] == str(smollm2_path)
    assert entry["answer"] and isinstance(entry["sources"], list)
    shown = CliRunner().invoke(app, ["log"]).stdout
    assert "Q: Where is the spare key hidden?" in shown
    monkeypatch.setenv("RAG_LOG", "off")
    run("ask", "Where is the wifi password?", *llm)
    still = CliRunner().invoke(app, ["log", "--json"]).stdout
    assert len(json.loads(still)) == 1  # the log is off: nothing more kept
    empty, _, err = run("ask", "-", *llm, input="\n")
    assert empty.exit_code == 1 and "no question on stdin" in err


def test_chat_takes_asks_filters_and_prints_json_lines(run, smollm2_path, monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    args = ["--llm", str(smollm2_path), "--max-tokens", "24", "--path", "*.md", "--json", "--no-think"]
    result, out, err = run("chat", *args, input="Where is the spare key hidden?\n/quit\n")
    assert result.exit_code == 0, err
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert len(lines) == 1, (out, err)
    [line] = lines
    assert line["sources"] and all(s["path"].endswith(".md") for s in line["sources"])
