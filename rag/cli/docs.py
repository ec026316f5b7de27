"""The `rag` commands that look at and tidy what is indexed, and at the settings: docs (ls), rm, show,
config, log. Thin over the public API like the rest of the CLI; registered on the app by rag/cli/main.py."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

import rag
from rag.cli import config, history
from rag.cli.common import IndexOpt, JsonOpt, PathOpt, TidyCommand, TypeOpt, err, guard, out

CollectionOpt = Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection (default: all).")]
_PAGE = re.compile(r"^(?P<path>.+):(?P<page>\d+)$")


def register(app: typer.Typer) -> None:
    def command(name: str, epilog: str, **kw):
        return lambda fn: app.command(name, cls=TidyCommand, epilog=epilog, **kw)(guard(fn))

    command("docs", "Examples: rag docs · rag docs --type pdf · rag docs --path 'reports/**' --json")(docs)
    command("ls", "Same as rag docs.", hidden=True)(docs)
    command("rm", "Examples: rag rm ~/notes/old.md · rag rm ~/Documents/archive --yes")(rm)
    command("show", "Examples: rag show 3f2a9c… (a chunk id) · rag show report.pdf:3 · rag show notes.md")(show)
    command("config", "Example: rag config --json")(show_config)
    command(
        "log", "Examples: rag log · rag log -n 3 --json. Turn it off with log = false in config.toml or RAG_LOG=off."
    )(show_log)


def _index(index: str | None) -> rag.Index:
    s = config.resolve(index=index)
    return rag.open_index(s.index, storage_options=s.storage_options)


def docs(
    index: IndexOpt = None,
    collection: CollectionOpt = None,
    path: PathOpt = None,
    file_type: TypeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the indexed documents: chunks, pages, collection."""
    found = _index(index).documents(collection=collection, path_globs=path or (), file_types=file_type or ())
    if as_json:
        out.print_json(json.dumps(found))
        return
    if not found:
        out.print("No documents indexed." if not (collection or path or file_type) else "No document matches.")
        return
    width = max(len(str(d["chunks"])) for d in found)
    for d in found:
        chunks = f"{d['chunks']:>{width}} " + ("chunks" if d["chunks"] != 1 else "chunk ")
        pages = (f"{d['pages']} pages" if d["pages"] != 1 else "1 page") if d["pages"] else ""
        out.print(f"{chunks}  {pages:<10} [dim]{escape(d['collection'])}[/dim]  {escape(d['path'])}")
    out.print(f"[dim]{len(found)} documents[/dim]")


def rm(
    paths: Annotated[list[str], typer.Argument(help="Indexed files, or folders whose documents all go.")],
    index: IndexOpt = None,
    collection: CollectionOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask for confirmation.")] = False,
) -> None:
    """Take documents out of the index (your files are not touched; re-indexing their folder adds them back)."""
    idx = _index(index)
    matching = {d["path"] for d in idx.documents_at(*paths, collection=collection)}
    if not yes and not typer.confirm(f"Remove {len(matching)} document(s) from the index?", err=True):
        raise typer.Exit(1)
    removed = idx.remove(*paths, collection=collection)
    for p in removed:
        out.print(f"removed {p}", markup=False)


def show(
    target: Annotated[str, typer.Argument(help="A chunk id (from search or an answer), or a document PATH[:page].")],
    index: IndexOpt = None,
    collection: CollectionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a chunk, or a document's indexed text (one page of it with PATH:page)."""
    idx = _index(index)
    if re.fullmatch(r"[0-9a-f]{24}", target):
        chunks = [idx.get_chunk(target)]
    else:
        page = None
        match = _PAGE.match(target)
        if match and not Path(target).exists():
            target, page = match["path"], int(match["page"])
        chunks = idx.get_document(target, collection)
        if page is not None:
            chunks = [c for c in chunks if c.page == page]
            if not chunks:
                raise rag.NotInIndex(f"no page {page} of '{target}' in the index", "pages start at 1")
    if as_json:
        out.print_json(json.dumps([c.to_dict() for c in chunks]))
        return
    for c in chunks:
        out.print(f"[bold]{escape(c.location)}[/bold]  [dim]chunk {c.chunk_index} · {c.chunk_id}[/dim]")
        out.print(c.text, markup=False, highlight=False)
        out.print()


def show_config(
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the settings in force and where each comes from (flag, env, config file, default)."""
    s = config.resolve(index=index)
    origin = config.origins(index=index)
    shown = {
        "home": (str(s.home), "env RAG_HOME" if os.environ.get("RAG_HOME") else "default"),
        "config file": (str(s.home / "config.toml"), "present" if (s.home / "config.toml").is_file() else "absent"),
        "index": (str(s.index), origin["index"]),
        "llm": (s.llm, origin["llm"]),
        "embed_model": (s.embed_model or "the index's own, or " + rag.DEFAULT_EMBED_MODEL, origin["embed_model"]),
        "rerank_model": (
            s.rerank_model or "mlx-community/Qwen3-Reranker-0.6B-4bit (with a GPU)",
            origin["rerank_model"],
        ),
        "k": (str(s.k), origin["k"]),
        "ocr": (s.ocr, origin["ocr"]),
        "pdf_password": ("set" if s.pdf_password else "none", ""),
        "api_key": ("set" if s.api_key else "none", ""),
        "log": ("on" if s.log else "off", f"questions go to {history.log_path(s.home)}" if s.log else ""),
    }
    if as_json:
        out.print_json(json.dumps({k: {"value": v, "from": f} for k, (v, f) in shown.items()}))
        return
    for key, (value, source) in shown.items():
        out.print(f"{key:<13}{escape(value)}" + (f"  [dim]({escape(source)})[/dim]" if source else ""))


def show_log(
    count: Annotated[int, typer.Option("-n", "--count", help="How many of the latest questions.", min=1)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """The questions you asked, newest last, with their answers and cited sources (`rag ask` keeps them)."""
    s = config.resolve()
    entries = history.read(history.log_path(s.home))[-count:]
    if as_json:
        out.print_json(json.dumps(entries))
        return
    if not entries:
        err.print("No questions logged yet." if s.log else "The question log is off (log = false / RAG_LOG=off).")
        return
    for e in entries:
        when = datetime.fromtimestamp(e["time"]).strftime("%Y-%m-%d %H:%M")
        out.print(f"[bold]{when}[/bold] [dim]{escape(e.get('llm', ''))}[/dim]")
        out.print(f"  Q: {e['question']}", markup=False)
        out.print(f"  A: {e['answer']}", markup=False)
        if e.get("sources"):
            out.print("  [dim]" + escape(", ".join(e["sources"])) + "[/dim]")
