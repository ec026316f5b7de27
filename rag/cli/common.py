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
from typer.core import TyperCommand, TyperGroup

import rag

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
state = {"debug": False}

EmbedOpt = Annotated[
    str | None, typer.Option("--embed-model", help="Embedding model: hub id or folder (env RAG_EMBED_MODEL).")
]
LlmOpt = Annotated[str | None, typer.Option("--llm", help="Chat model: hub id or folder (env RAG_LLM).")]
RerankModelOpt = Annotated[
    str | None, typer.Option("--rerank-model", help="Reranker: hub id or folder (env RAG_RERANK_MODEL).")
]
KOpt = Annotated[int | None, typer.Option("-k", "--top-k", help="How many chunks to retrieve (default: 5).", min=1)]
IndexOpt = Annotated[
    str | None,
    typer.Option(
        "--index", help="Index folder, or s3://bucket/prefix (also gs://, az://) (env RAG_INDEX).", show_default=False
    ),
]
PathOpt = Annotated[
    list[str] | None, typer.Option("--path", help="Only files matching this glob (repeatable): '*.pdf', 'reports/**'.")
]
TypeOpt = Annotated[list[str] | None, typer.Option("--type", help="Only these file types (repeatable): pdf, md, docx…")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="Model preset: default (Qwen3-4B) or small (Qwen3-1.7B).")
]


# -- help that reads like a finished tool's ------------------------------------------------------------

# What a value looks like, by option name; otherwise by type. Flags show none (typer shows "<bool>").
METAVARS = {
    "index": "PATH",
    "embed_model": "MODEL",
    "llm": "MODEL",
    "rerank_model": "MODEL",
    "preset": "NAME",
    "collection": "NAME",
    "password": "TEXT",
    "mode": "MODE",
    "path": "GLOB",
    "file_type": "TYPE",
    "host": "HOST",
    "port": "PORT",
    "api_key": "KEY",
    "allow_host": "HOST",
    "workspace": "PATH",
    "modes": "MODES",
    "split": "NAME",
    "articles": "WHICH",
}
_BY_TYPE = {"int": "N", "float": "X", "str": "TEXT", "Path": "PATH"}


def tidy_params(params) -> None:
    """Show every parameter's value as a plain word (PATH, MODEL, N…) and flags with none, instead of
    typer's Python types ("<bool>", "<list[Path]>"). Typer's rich help asks each parameter's
    `display_type_rich`; these are our own parameter objects, so each gets its own."""
    for param in params:
        bare = getattr(param, "bare_type", lambda: "")().removeprefix("list[").removesuffix("]")
        if getattr(param, "is_flag", False) or bare == "bool":
            shown = None
        else:
            shown = METAVARS.get(param.name or "") or _BY_TYPE.get(bare, bare.upper() or "VALUE")
            if getattr(param, "multiple", False) or param.nargs != 1:
                shown += "…"
            if param.param_type_name == "argument":
                shown = None  # its name is shown already ("paths...")
        param.display_type_rich = lambda ctx, shown=shown: shown


class TidyCommand(TyperCommand):
    def format_help(self, ctx, formatter):
        tidy_params(self.get_params(ctx))
        return super().format_help(ctx, formatter)


class TidyGroup(TyperGroup):
    def format_help(self, ctx, formatter):
        tidy_params(self.get_params(ctx))
        return super().format_help(ctx, formatter)


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
