"""What every `rag` command shares: the two consoles, the common options, and the RagError guard.

Kept apart so the command modules (cli.py, cli_eval.py) can share it without importing each other.
This module registers no commands.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

import rag

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
state = {"debug": False}

EmbedOpt = Annotated[
    str | None, typer.Option("--embed-model", help="Embedding model: hub id or folder [env: RAG_EMBED_MODEL].")
]
LlmOpt = Annotated[str | None, typer.Option("--llm", help="Chat model: hub id or folder [env: RAG_LLM].")]
RerankModelOpt = Annotated[
    str | None, typer.Option("--rerank-model", help="Reranker: hub id or folder [env: RAG_RERANK_MODEL].")
]
KOpt = Annotated[int | None, typer.Option("-k", "--top-k", help="How many chunks to retrieve [default: 5].", min=1)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def guard(fn: Callable) -> Callable:
    """RagError -> one red line with its hint and exit code 1 (the traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("once", rag.IndexIncomplete)
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except rag.RagError as exc:
            if state["debug"]:
                raise
            print_error(exc)
            raise typer.Exit(1) from None

    return wrapper


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The index's own warnings as one yellow line on stderr; any other warning as Python shows it."""
    if issubclass(category, rag.IndexIncomplete):
        err.print(f"[yellow]Note:[/yellow] {escape(str(message))}")
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def print_error(exc: rag.RagError) -> None:
    hint = f" — {exc.hint}" if exc.hint else ""
    err.print(f"[red]Error:[/red] {escape(exc.message)}{escape(hint)}")
