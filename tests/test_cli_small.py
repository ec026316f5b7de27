"""The small things a newcomer tripped on: snippets at the match, collection commands, watch naming
files, and model-folder hints."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.cli.main import _snippet

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _cli(*args: str, input: str | None = None):
    result = CliRunner().invoke(app, list(args), input=input)
    return result, ANSI.sub("", result.stdout), ANSI.sub("", result.stderr)


def test_a_search_snippet_starts_near_the_matching_passage():
    text = "Intro words. " * 40 + "The padlock combination of the shed is 8-2-6-3, set in May." + " Tail." * 20
    snippet = _snippet(text, "shed padlock combination", 120)
    assert snippet.startswith("…") and "padlock combination" in snippet and len(snippet) <= 122
    assert _snippet("Short text about keys.", "keys", 120) == "Short text about keys."
    assert _snippet(text, "zebra", 50).startswith("Intro words.")


@pytest.fixture
def two_collections(tmp_path, minilm_path, docs):
    idx = str(tmp_path / "idx")
    other = tmp_path / "work"
    other.mkdir()
    (other / "plan.md").write_text("# Plan\n\nShip it in March.\n")
    for folder, name in ((docs, "default"), (other, "a-much-longer-name")):
        result, _, err = _cli("index", str(folder), "-c", name, "--index", idx, "--embed-model", str(minilm_path))
        assert result.exit_code == 0, err
    return idx


def test_collection_list_aligns_its_columns(two_collections):
    _, out, _ = _cli("collection", "list", "--index", two_collections)
    lines = out.strip().splitlines()
    assert len(lines) == 2 and "\t" not in out
    assert len({line.index("documents") for line in lines}) == 1 and len({line.index("chunks") for line in lines}) == 1


def test_collection_remove_asks_first_unless_yes(two_collections):
    declined, _, err = _cli("collection", "remove", "a-much-longer-name", "--index", two_collections, input="n\n")
    assert declined.exit_code == 1 and "Remove collection a-much-longer-name (1 documents)" in err
    assert "a-much-longer-name" in rag.open_index(two_collections).collections()
    done, out, _ = _cli("collection", "remove", "a-much-longer-name", "--yes", "--index", two_collections)
    assert done.exit_code == 0 and "removed collection a-much-longer-name" in out
    assert "a-much-longer-name" not in rag.open_index(two_collections).collections()


def test_watch_names_the_files_that_changed(tmp_path, monkeypatch):
    def fake_watch(self, *paths, on_report=None, **kw):
        on_report(rag.IndexReport(added=["/d/new.md"], updated=["/d/edited.md"], renamed=[("/d/a.md", "/d/b.md")]))

    monkeypatch.setattr(rag.Index, "watch", fake_watch)
    result, out, _ = _cli("watch", str(tmp_path), "--index", str(tmp_path / "idx"), "--embed-model", "x")
    assert result.exit_code == 0
    assert "added /d/new.md" in out and "updated /d/edited.md" in out and "renamed /d/a.md → /d/b.md" in out


def test_a_missing_local_model_folder_gets_a_hint_about_folders_not_downloads(tmp_path):
    with pytest.raises(rag.ModelLoadError) as info:
        rag.MLXGenerator(str(tmp_path / "no-such-model"))
    assert "no such folder" in info.value.message
    assert "download" not in info.value.hint and "folder" in info.value.hint


def test_a_refusal_prints_no_generation_speeds(capsys):
    from rag.cli.main import _show_sources
    from rag.types import Answer, Timings

    answer = Answer("q?", "I couldn't find that in your documents.", [], Timings(retrieval_ms=12.0), refused=True)
    _show_sources(answer)
    printed = ANSI.sub("", capsys.readouterr().err)
    assert "retrieval 12 ms · no answer generated" in printed
    assert "first token" not in printed and "tok/s" not in printed


def test_a_model_refusal_prints_no_first_token_time(capsys):
    from rag.cli.main import _show_sources
    from rag.types import Answer, Timings

    timings = Timings(retrieval_ms=8.0, generated_tokens=10)  # generated, held back, replaced
    _show_sources(Answer("q?", "I couldn't find that in your documents.", [], timings, refused=True))
    printed = ANSI.sub("", capsys.readouterr().err)
    assert "the model's reply: 10 tokens" in printed and "first token" not in printed
