"""Every command's --help reads like a finished tool's: plain value words, no Python types, no help
text eaten by markup, environment variables named, examples, and a --version."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from rag.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*m")
COMMANDS = [
    [],
    ["index"],
    ["watch"],
    ["ask"],
    ["chat"],
    ["search"],
    ["doctor"],
    ["status"],
    ["serve"],
    ["mcp"],
    ["eval"],
    ["eval", "retrieval"],
    ["eval", "answers"],
    ["collection"],
    ["collection", "list"],
    ["collection", "remove"],
]


def _help(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "rag")
def test_help_shows_plain_value_words_and_no_eaten_text(args):
    text = _help(args)
    assert not re.search(r"<(bool|str|int|path|list|float)", text), text  # no Python types
    assert " ." not in text and " )" not in text, text  # nothing swallowed as markup before a full stop
    for line in text.splitlines():
        if re.match(r"│\s+--(strict|quiet|json|debug|help|think)\b", line):
            assert not re.search(r"--\S+\s+[A-Z]{2,}\b", line), line  # a flag takes no value


def test_options_name_their_environment_variables_and_commands_show_examples():
    text = _help(["ask"])
    for env in ("RAG_INDEX", "RAG_EMBED_MODEL", "RAG_LLM", "RAG_RERANK_MODEL"):
        assert f"(env {env})" in text
    assert "--index" in text and re.search(r"--index\s+PATH", text)
    assert re.search(r"-k\s+N", text)
    assert "Examples: rag ask" in text
    assert "Examples: rag index" in _help(["index"])


def test_version():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"rag {version('rag-ondevice')}"
