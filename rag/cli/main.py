"""The `rag` command: a thin typer layer over the public API (parse, call one function, render).

Errors derived from RagError print one red line with a hint and exit 1; `--debug` shows the traceback.
Settings come from rag.cli.config (flag > RAG_* env > config file > default). The `rag eval` commands are in
cli_eval.py; the consoles, shared options and error guard in cli_common.py.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

import rag
from rag.cli import config, history
from rag.cli import docs as cli_docs
from rag.cli import servers as cli_servers
from rag.cli.common import (
    EmbedOpt,
    IndexOpt,
    JsonOpt,
    KOpt,
    LlmOpt,
    PathOpt,
    PresetOpt,
    RerankModelOpt,
    TidyCommand,
    TidyGroup,
    TypeOpt,
    err,
    guard,
    out,
    state,
)
from rag.cli.eval import eval_app
from rag.cli.progress import MAX_SKIPPED_SHOWN, print_report, progress_reporter

app = typer.Typer(
    cls=TidyGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Ask questions of your own documents, on-device.",
    epilog='Start with: rag index ~/Documents, then rag ask "…". Check your set-up with rag doctor.',
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"rag {version('rag-ondevice')}", markup=False)
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    state["debug"] = debug
    # The CLI owns its process: tune it for MLX on the CPU before any command imports mlx (RAG_BLAS=off to skip).
    rag.tune_cpu(blas=os.environ.get("RAG_BLAS", "auto"))
    # pypdf logs every recoverable oddity of a PDF; failures reach the user through the report instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)


# Examples shown under each command's --help.
EXAMPLES = {
    "index": "Examples: rag index ~/Documents · rag index notes.md report.pdf -c work · rag index ~/scans --ocr force",
    "ask": 'Examples: rag ask "Where is the spare key?" · rag ask "…" --think · rag ask "…" --path \'*.pdf\' --json',
    "chat": 'Example: rag chat, then ask, and follow up ("and when is it due?"); /sources /reset /quit',
    "search": 'Examples: rag search "boiler fault" -k 10 · rag search XJ-9921-B --mode text · rag search q --type pdf',
    "status": "Example: rag status --json",
    "doctor": "Examples: rag doctor · HF_HUB_OFFLINE=1 rag doctor --json",
    "serve": "Example: rag serve --port 8000, then open http://127.0.0.1:8000 or point an OpenAI client at …/v1",
    "ui": "Example: rag ui (starts rag serve and opens the app in your browser)",
    "watch": "Example: rag watch ~/Documents",
}


def _command(fn: Callable) -> Callable:
    """Register a command whose RagErrors become one red line and exit code 1."""
    return app.command(cls=TidyCommand, epilog=EXAMPLES.get(fn.__name__))(guard(fn))


def _open(
    index: str | None,
    embed_model: str | None,
    llm: str | None = None,
    preset: str | None = None,
    k: int | None = None,
    rerank_model: str | None = None,
    ocr: str | None = None,
):
    s = config.resolve(
        index=index, embed_model=embed_model, llm=llm, preset=preset, k=k, rerank_model=rerank_model, ocr=ocr
    )
    idx = rag.open_index(
        s.index, embed_model=s.embed_model, llm=s.llm, reranker=s.rerank_model, storage_options=s.storage_options
    )
    return idx, s


ModeOpt = Annotated[str, typer.Option("--mode", help="Retrieval: hybrid (vector + full text), vector or text.")]
RerankOpt = Annotated[
    bool | None,
    typer.Option("--rerank/--no-rerank", help="Rescore top candidates with the reranker (default: on with a GPU)."),
]


def _search_options(mode: str, rerank: bool | None, paths: list[str] | None, types: list[str] | None) -> dict:
    if mode not in rag.SEARCH_MODES:
        raise rag.RagError(f"unknown --mode '{mode}'", f"choose {', '.join(rag.SEARCH_MODES)}")
    return {"mode": mode, "rerank": rerank, "path_globs": tuple(paths or ()), "file_types": tuple(types or ())}


CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection to update.")]
QueryCollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="Search only this collection (default: all).")
]
PasswordOpt = Annotated[
    str | None, typer.Option("--password", help="Password to try on encrypted PDFs (env RAG_PDF_PASSWORD).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
OcrOpt = Annotated[
    str | None,
    typer.Option(
        "--ocr",
        help="Read scanned PDF pages and images with on-device OCR: auto (pages without a text layer), "
        "force (every page) or off (env RAG_OCR; default auto).",
        show_default=False,
    ),
]


@_command
def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.", show_default=False)],
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    collection: CollectionOpt = rag.DEFAULT_COLLECTION,
    password: PasswordOpt = None,
    ocr: OcrOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if any file failed.")] = False,
    batch_chunks: Annotated[int, typer.Option("--batch-chunks", min=1, hidden=True)] = rag.DEFAULT_BATCH_CHUNKS,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Spread loading, OCR and embedding over a Ray cluster (pip install 'rag-ondevice[cluster]').",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --ray: the cluster to use ('auto', 'ray://host:10001', 'host:6379'); default: start one here.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="With --ray: embedding workers (default: one per GPU, else CPUs - 1).",
            show_default=False,
        ),
    ] = None,  # fmt: skip
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Index files and folders. Re-runs only do what changed: new, edited, renamed and deleted files."""
    if (ray_address or workers) and not ray:
        raise rag.RagError("--ray-address and --workers go with --ray", "add --ray, or leave them out")
    idx, s = _open(index, embed_model, ocr=ocr)
    if not (quiet or as_json):
        where = f" on Ray ({ray_address or 'a local cluster'})" if ray else ""
        err.print(f"Indexing into {idx.path} (collection {collection}){where} …", markup=False)
    options = dict(collection=collection, password=password or s.pdf_password, batch_chunks=batch_chunks)
    options["ocr"] = s.ocr
    if ray:
        options["cluster"] = rag.Cluster(address=ray_address, workers=workers)
    options["on_wait"] = lambda why: err.print(why, markup=False)
    if quiet or as_json:
        report = idx.add(*paths, **options)
    else:
        with progress_reporter(err) as update:
            report = idx.add(*paths, progress=update, **options)
    if as_json:
        out.print_json(json.dumps(asdict(report) | {"chunks_per_second": report.chunks_per_second}))
    else:
        print_report(report, out, err, quiet)
    if strict and report.failed:
        raise typer.Exit(1)


@_command
def watch(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to keep indexed.", show_default=False)],
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    collection: CollectionOpt = rag.DEFAULT_COLLECTION,
    password: PasswordOpt = None,
    ocr: OcrOpt = None,
    debounce_ms: Annotated[
        int, typer.Option("--debounce-ms", help="Wait for this much quiet before syncing.")
    ] = rag.DEFAULT_DEBOUNCE_MS,
) -> None:
    """Index PATHS, then keep the index in sync as files change. Ctrl-C stops cleanly."""
    idx, s = _open(index, embed_model, ocr=ocr)
    err.print(
        f"Watching {', '.join(map(str, paths))} → {idx.path} (collection {collection}); Ctrl-C to stop", markup=False
    )

    def show(report: rag.IndexReport) -> None:
        if report.added or report.updated or report.renamed or report.removed or report.failed:
            for what, paths in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
                for path in paths:
                    out.print(f"{what} {path}", markup=False)
            for old, new in report.renamed:
                out.print(f"renamed {old} → {new}", markup=False)
            print_report(report, out, err)

    idx.watch(
        *paths,
        collection=collection,
        password=password or s.pdf_password,
        on_report=show,
        debounce_ms=debounce_ms,
        ocr=s.ocr,
    )
    err.print("Stopped.")


WidenOpt = Annotated[int, typer.Option("--widen", help="Add this many neighbouring chunks around each hit.", min=0)]
ThinkOpt = Annotated[bool, typer.Option("--think/--no-think", help="Let Qwen3 think before answering (slower).")]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", help="Longest answer, in tokens.", min=1)]
GeneralOpt = Annotated[
    bool,
    typer.Option(
        "--allow-general/--documents-only",
        help="Let the model answer from general knowledge when your documents don't cover the question.",
    ),
]
ContextOpt = Annotated[
    int, typer.Option("--context-tokens", help="Most prompt tokens to spend on sources and question.", min=256)
]


@_command
def ask(
    question: Annotated[str, typer.Argument(help="Your question, or - to read it from stdin.", show_default=False)],
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    llm: LlmOpt = None,
    preset: PresetOpt = None,
    k: KOpt = None,
    collection: QueryCollectionOpt = None,
    mode: ModeOpt = rag.DEFAULT_MODE,
    rerank: RerankOpt = None,
    rerank_model: RerankModelOpt = None,
    path: PathOpt = None,
    file_type: TypeOpt = None,
    widen: WidenOpt = 0,
    think: ThinkOpt = False,
    max_tokens: MaxTokensOpt = rag.DEFAULT_MAX_TOKENS,
    allow_general: GeneralOpt = False,
    context_tokens: ContextOpt = rag.DEFAULT_CONTEXT_TOKENS,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the indexed documents, streaming, then list the sources it cites."""
    if question == "-":
        question = sys.stdin.read().strip()
        if not question:
            raise rag.RagError("no question on stdin", "pipe one in: echo 'Where is the key?' | rag ask -")
    idx, s = _open(index, embed_model, llm, preset, k, rerank_model)
    options = _search_options(mode, rerank, path, file_type)
    events = idx.stream_answer(
        question,
        k=s.k,
        collection=collection,
        thinking=think,
        max_tokens=max_tokens,
        widen=widen,
        allow_general=allow_general,
        context_tokens=context_tokens,
        **options,
    )
    answer = _stream_events(events, quiet=as_json)
    _log(s, answer, idx.path)
    if as_json:
        out.print_json(json.dumps(answer.to_dict()))
    else:
        _show_sources(answer)


def _log(s: config.Settings, answer: rag.Answer, index: Path) -> None:
    """Keep the question for `rag log` (unless the log is off); a log that can't be written never
    costs the answer, only a note."""
    if not s.log:
        return
    try:
        history.append(s.home, answer, s.llm, index)
    except OSError as exc:
        err.print(f"[dim]question not logged: {escape(str(exc))}[/dim]")


def _stream_events(events, quiet: bool = False) -> rag.Answer:
    """Print tokens (and thinking, dimmed, on stderr) as they come, unless `quiet`; return the finished Answer."""
    return rag.collect(events if quiet else _printed(events))


def _printed(events):
    for event in events:
        if isinstance(event, rag.TokenEvent):
            out.print(event.text, end="", markup=False)
        elif isinstance(event, rag.ThinkingEvent):
            err.print(event.text, end="", style="dim", markup=False)
        yield event


def _show_sources(answer: rag.Answer) -> None:
    """After a streamed answer: the verdict on it, its cited sources with their supporting snippets, the
    other sources, and timings."""
    out.print("\n")
    if answer.refused:
        err.print(f"[dim]not answered: {escape(answer.refusal_reason)}. Closest sources:[/dim]")
    if answer.invalid_citations:
        numbers = ", ".join(f"[{n}]" for n in answer.invalid_citations)
        err.print(f"[yellow]removed citations that name no source: {numbers}[/yellow]")
    for sentence in answer.unsupported_sentences:
        out.print(f"[dim]? not in your documents: “{escape(sentence.text)}”[/dim]")
    if answer.unsupported_citations:
        numbers = ", ".join(f"[{n}]" for n in answer.unsupported_citations)
        err.print(f"[yellow]not counted as cited, their source doesn't say that: {numbers}[/yellow]")
    if answer.stopped_reason != "end":
        why = {"repetition": "the reply began to repeat itself", "max_tokens": "it reached --max-tokens"}
        err.print(f"[dim]answer stopped: {why.get(answer.stopped_reason, answer.stopped_reason)}[/dim]")
    cited = {e.number: e for e in answer.evidence}
    out.print("[bold]Sources[/bold]")
    for n, source in enumerate(answer.sources, 1):
        mark = ("+" if cited[n].added else "*") if n in cited else " "
        out.print(
            f"{mark}\\[{n}] {escape(source.location)}{_ocr_tag(source)}  "
            f"[dim](score {source.score:.3f}) {escape(source.path)}[/dim]"
        )
        if n in cited:
            out.print(f"      [italic]“{escape(cited[n].snippet)}”[/italic]")
    if any(e.added for e in answer.evidence):
        out.print("[dim]* cited by the answer · + cited by the checker (the answer wrote no \\[n] for it)[/dim]")
    t = answer.timings
    cached = f" ({t.cached_prompt_tokens} cached)" if t.cached_prompt_tokens else ""
    if not t.generated_tokens:  # refused before (or without) generating: no speeds to report
        err.print(f"[dim]retrieval {t.retrieval_ms:.0f} ms · no answer generated[/dim]")
        return
    if answer.refused:  # the model's reply was held back and replaced: no first token was shown
        err.print(f"[dim]retrieval {t.retrieval_ms:.0f} ms · the model's reply: {t.generated_tokens} tokens[/dim]")
        return
    err.print(
        f"[dim]retrieval {t.retrieval_ms:.0f} ms · first token {t.first_token_ms / 1000:.1f} s · "
        f"prompt {t.prompt_tokens} tokens{cached} · {t.generated_tokens} tokens at {t.tokens_per_s:.1f} tok/s[/dim]"
    )


CHAT_HELP = "/sources  show the last answer's sources · /reset  forget the conversation · /quit  leave (or Ctrl-D)"


@_command
def chat(
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    llm: LlmOpt = None,
    preset: PresetOpt = None,
    k: KOpt = None,
    collection: QueryCollectionOpt = None,
    mode: ModeOpt = rag.DEFAULT_MODE,
    rerank: RerankOpt = None,
    rerank_model: RerankModelOpt = None,
    path: PathOpt = None,
    file_type: TypeOpt = None,
    think: ThinkOpt = False,
    max_tokens: MaxTokensOpt = rag.DEFAULT_MAX_TOKENS,
    allow_general: GeneralOpt = False,
    context_tokens: ContextOpt = rag.DEFAULT_CONTEXT_TOKENS,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each answer as one JSON line (nothing streamed).")
    ] = False,
) -> None:
    """Chat with your documents: follow-up questions are understood in the context of the conversation."""
    idx, s = _open(index, embed_model, llm, preset, k, rerank_model)
    options = _search_options(mode, rerank, path, file_type)
    conversation = idx.chat(
        k=s.k,
        collection=collection,
        thinking=think,
        max_tokens=max_tokens,
        allow_general=allow_general,
        context_tokens=context_tokens,
        **options,
    )
    err.print(f"[dim]{CHAT_HELP}[/dim]")
    while True:
        try:
            message = input("" if as_json else "\n> ").strip()  # --json: stdout holds only the JSON lines
        except (EOFError, KeyboardInterrupt):
            err.print()
            return
        if not message:
            continue
        if message in ("/quit", "/exit"):
            return
        if message == "/reset":
            conversation.reset()
            err.print("[dim]Conversation reset.[/dim]")
        elif message == "/sources":
            for n, source in enumerate(conversation.sources, 1):
                out.print(f"\\[{n}] {escape(source.location)}  [dim]{escape(source.snippet())}[/dim]")
            if not conversation.sources:
                err.print("[dim]No answer yet.[/dim]")
        elif message.startswith("/"):
            err.print(f"[dim]{CHAT_HELP}[/dim]")
        else:

            def show(question: str, message: str = message) -> None:
                if question != message and not as_json:
                    err.print(f"[dim]→ {escape(question)}[/dim]")

            answer = _stream_events(conversation.stream(message, on_question=show), quiet=as_json)
            _log(s, answer, idx.path)
            if as_json:
                out.print(json.dumps(answer.to_dict(), ensure_ascii=False), markup=False, highlight=False)
            else:
                _show_sources(answer)


@_command
def search(
    query: Annotated[str, typer.Argument(help="What to look for.", show_default=False)],
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    k: KOpt = None,
    collection: QueryCollectionOpt = None,
    mode: ModeOpt = rag.DEFAULT_MODE,
    rerank: RerankOpt = None,
    rerank_model: RerankModelOpt = None,
    path: PathOpt = None,
    file_type: TypeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieve the most relevant chunks (no LLM), ranked with scores (hybrid: mean z-score of the vector and text lists)."""
    idx, s = _open(index, embed_model, k=k, rerank_model=rerank_model)
    hits = idx.search(query, k=s.k, collection=collection, **_search_options(mode, rerank, path, file_type))
    if as_json:
        out.print_json(json.dumps([h.to_dict() for h in hits]))
        return
    if not hits:
        empty = not idx.status().chunks
        out.print("No results: the index is empty." if empty else "No match in the index.")
    for n, hit in enumerate(hits, 1):
        out.print(
            f"[bold]{n}.[/bold] {hit.score:.3f}  {escape(hit.location)}{_ocr_tag(hit)}  [dim]{escape(hit.path)}[/dim]"
        )
        out.print(f"    {_snippet(hit.text, query, 200)}", markup=False)


def _snippet(text: str, query: str, width: int) -> str:
    """`width` characters of `text` around its first match of a query word (longest words tried
    first), so the line shows why it matched; the start when no word matches."""
    flat = " ".join(text.split())
    low = flat.lower()
    terms = sorted({w.strip("?.,!;:()\"'").lower() for w in query.split()}, key=len, reverse=True)
    at = next((low.find(t) for t in terms if len(t) > 2 and low.find(t) >= 0), 0)
    start = 0 if at < width // 3 else flat.rfind(" ", 0, at - width // 4) + 1
    piece = flat[start : start + width]
    return ("…" if start else "") + piece.rstrip() + ("…" if start + width < len(flat) else "")


@_command
def doctor(
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    llm: LlmOpt = None,
    preset: PresetOpt = None,
    rerank_model: RerankModelOpt = None,
    rerank: Annotated[
        bool | None, typer.Option("--rerank/--no-rerank", help="Check the reranker too (default: with a GPU).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check this machine's set-up: MLX, BLAS, each model (found, loads, quantization), speed, the index, disk."""
    s = config.resolve(index=index, embed_model=embed_model, llm=llm, preset=preset, rerank_model=rerank_model)
    origins = config.origins(index=index, embed_model=embed_model, llm=llm, preset=preset, rerank_model=rerank_model)
    checks = []
    found = rag.check_setup(
        index=s.index,
        llm=s.llm,
        embed_model=s.embed_model,
        rerank_model=s.rerank_model,
        origins=origins,
        rerank=rerank,
        storage_options=s.storage_options,
    )
    for check in found:
        checks.append(check)
        if not as_json:
            mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[dim]·[/dim]"}[check.ok]
            hint = f" [yellow]— {escape(check.hint)}[/yellow]" if check.hint and check.ok is not True else ""
            out.print(f"{mark} {check.name:<13}{escape(check.detail)}{hint}")
    failed = [c for c in checks if c.ok is False]
    if as_json:
        out.print_json(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}))
    elif failed:
        err.print(f"{len(failed)} check(s) failed.", markup=False)
    else:
        out.print("All checks passed.")
    if failed:
        raise typer.Exit(1)


@_command
def status(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Show what is indexed, with which models, where, and which BLAS MLX uses."""
    idx, s = _open(index, None)
    st = idx.status()
    if as_json:
        out.print_json(json.dumps(asdict(st) | {"llm": s.llm}))
        return
    out.print(
        f"index      {st.path}" + ("" if st.exists else "  (not created yet: run `rag index PATH`)"), markup=False
    )
    if st.exists:
        out.print(f"documents  {st.documents}")
        out.print(f"chunks     {st.chunks}")
        if st.ocr_pages:
            out.print(f"ocr        {st.ocr_pages} pages read by OCR, in {_files(st.ocr_documents)}")
        out.print(f"embedder   {st.embedder} (dim {st.dim})", markup=False)
        out.print(f"chunking   {st.chunking.get('max_tokens')} tokens, overlap {st.chunking.get('overlap_tokens')}")
        for name, (docs, chunks) in st.collections.items():
            out.print(f"collection {name}: {docs} documents, {chunks} chunks", markup=False)
        if st.failures:
            out.print(f"failed     {_files(len(st.failures))}:")
            for path, info in sorted(st.failures.items()):
                out.print(f"  {path}: {info['reason']}", markup=False)
        if st.skipped:
            out.print(f"skipped    {_files(len(st.skipped))} of types rag doesn't read:")
            for path, reason in sorted(st.skipped.items())[:MAX_SKIPPED_SHOWN]:
                out.print(f"  {path}: {reason}", markup=False)
            if len(st.skipped) > MAX_SKIPPED_SHOWN:
                out.print(f"  … and {len(st.skipped) - MAX_SKIPPED_SHOWN} more (--json lists them all)")
    out.print(f"llm        {s.llm}", markup=False)
    out.print(f"blas       {st.blas}", markup=False)
    on = [name for name, state in st.fast_paths.items() if state == "on"]
    off = [f"{name} ({state})" for name, state in st.fast_paths.items() if state != "on"]
    out.print(f"fast paths {', '.join(on) or 'none'}" + (f"; off: {'; '.join(off)}" if off else ""), markup=False)


def _ocr_tag(source: rag.Source) -> str:
    """ " (OCR 98%)" after the location of a source read by OCR, with its page's mean confidence."""
    return "" if source.ocr is None else f" [dim](OCR {source.ocr:.0%})[/dim]"


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


app.add_typer(eval_app, name="eval")
cli_docs.register(app)  # docs (ls), rm, show, config, log
cli_servers.register(app, _open, EXAMPLES)  # serve, ui, mcp

collection_app = typer.Typer(cls=TidyGroup, no_args_is_help=True, help="List or remove collections.")
app.add_typer(collection_app, name="collection")


@collection_app.command("list", cls=TidyCommand)
@guard
def list_collections(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """List collections with their document and chunk counts."""
    idx, _ = _open(index, None)
    found = idx.collections()
    if as_json:
        out.print_json(json.dumps({name: {"documents": d, "chunks": c} for name, (d, c) in found.items()}))
        return
    width = max((len(name) for name in found), default=0)
    for name, (docs, chunks) in found.items():
        out.print(f"{name:<{width}}  {docs:>6} documents  {chunks:>8} chunks", markup=False)


@collection_app.command("remove", cls=TidyCommand)
@guard
def remove_collection(
    name: Annotated[str, typer.Argument(help="Collection to delete from the index.")],
    index: IndexOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask for confirmation.")] = False,
) -> None:
    """Remove a collection's documents from the index (your files are not touched)."""
    idx, _ = _open(index, None)
    docs, _chunks = idx.collections().get(name, (0, 0))
    if not yes and not typer.confirm(f"Remove collection {name} ({docs} documents) from the index?", err=True):
        raise typer.Exit(1)
    removed = idx.remove_collection(name)
    out.print(f"removed collection {name} ({removed} chunks)", markup=False)
