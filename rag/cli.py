"""The `rag` command: a thin typer layer over the public API (parse, call one function, render).

Errors derived from RagError print one red line with a hint and exit 1; `--debug` shows the traceback.
Settings come from rag.config (flag > RAG_* env > config file > default).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

import rag
from rag import config
from rag.index import DEFAULT_CONTEXT_TOKENS
from rag.progress import print_report, progress_reporter

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Ask questions of your own documents, on-device.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}

IndexOpt = Annotated[Path | None, typer.Option("--index", help="Index folder [env: RAG_INDEX].", show_default=False)]
EmbedOpt = Annotated[
    str | None, typer.Option("--embed-model", help="Embedding model: hub id or folder [env: RAG_EMBED_MODEL].")
]
LlmOpt = Annotated[str | None, typer.Option("--llm", help="Chat model: hub id or folder [env: RAG_LLM].")]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="Model preset: default (Qwen3-4B) or small (Qwen3-1.7B).")
]
KOpt = Annotated[int | None, typer.Option("-k", "--top-k", help="How many chunks to retrieve [default: 5].", min=1)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    _state["debug"] = debug
    # pypdf logs every recoverable oddity of a PDF; failures reach the user through the report instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def _command(fn: Callable) -> Callable:
    """Register a command whose RagErrors become one red line and exit code 1."""
    return app.command()(_guard(fn))


def _guard(fn: Callable) -> Callable:
    """RagError -> one red line with its hint and exit code 1 (the traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except rag.RagError as exc:
            if _state["debug"]:
                raise
            _print_error(exc)
            raise typer.Exit(1) from None

    return wrapper


def _open(
    index: Path | None,
    embed_model: str | None,
    llm: str | None = None,
    preset: str | None = None,
    k: int | None = None,
    rerank_model: str | None = None,
):
    s = config.resolve(index=index, embed_model=embed_model, llm=llm, preset=preset, k=k, rerank_model=rerank_model)
    return rag.open_index(s.index, embed_model=s.embed_model, llm=s.llm, reranker=s.rerank_model), s


ModeOpt = Annotated[str, typer.Option("--mode", help="Retrieval: hybrid (vector + full text), vector or text.")]
RerankOpt = Annotated[
    bool | None,
    typer.Option("--rerank/--no-rerank", help="Rescore top candidates with the reranker [default: on with a GPU]."),
]
RerankModelOpt = Annotated[
    str | None, typer.Option("--rerank-model", help="Reranker: hub id or folder [env: RAG_RERANK_MODEL].")
]
PathOpt = Annotated[
    list[str] | None, typer.Option("--path", help="Only files matching this glob (repeatable): '*.pdf', 'reports/**'.")
]
TypeOpt = Annotated[list[str] | None, typer.Option("--type", help="Only these file types (repeatable): pdf, md, docx…")]


def _search_options(mode: str, rerank: bool | None, paths: list[str] | None, types: list[str] | None) -> dict:
    if mode not in ("hybrid", "vector", "text"):
        raise rag.RagError(f"unknown --mode '{mode}'", "choose hybrid, vector or text")
    return {"mode": mode, "rerank": rerank, "path_globs": tuple(paths or ()), "file_types": tuple(types or ())}


CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection to update.")]
QueryCollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="Search only this collection [default: all].")
]
PasswordOpt = Annotated[
    str | None, typer.Option("--password", help="Password to try on encrypted PDFs [env: RAG_PDF_PASSWORD].")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]


@_command
def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.", show_default=False)],
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    collection: CollectionOpt = "default",
    password: PasswordOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if any file failed.")] = False,
    batch_chunks: Annotated[int, typer.Option("--batch-chunks", min=1, hidden=True)] = 256,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Index files and folders. Re-runs only do what changed: new, edited, renamed and deleted files."""
    idx, s = _open(index, embed_model)
    if not (quiet or as_json):
        err.print(f"Indexing into {idx.path} (collection {collection}) …", markup=False)
    options = dict(collection=collection, password=password or s.pdf_password, batch_chunks=batch_chunks)
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
    collection: CollectionOpt = "default",
    password: PasswordOpt = None,
    debounce_ms: Annotated[int, typer.Option("--debounce-ms", help="Wait for this much quiet before syncing.")] = 1000,
) -> None:
    """Index PATHS, then keep the index in sync as files change. Ctrl-C stops cleanly."""
    idx, s = _open(index, embed_model)
    err.print(
        f"Watching {', '.join(map(str, paths))} → {idx.path} (collection {collection}); Ctrl-C to stop", markup=False
    )

    def show(report: rag.IndexReport) -> None:
        if report.added or report.updated or report.renamed or report.removed or report.failed:
            print_report(report, out, err)

    idx.watch(
        *paths, collection=collection, password=password or s.pdf_password, on_report=show, debounce_ms=debounce_ms
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
    question: Annotated[str, typer.Argument(help="Your question.", show_default=False)],
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    llm: LlmOpt = None,
    preset: PresetOpt = None,
    k: KOpt = None,
    collection: QueryCollectionOpt = None,
    mode: ModeOpt = "hybrid",
    rerank: RerankOpt = None,
    rerank_model: RerankModelOpt = None,
    path: PathOpt = None,
    file_type: TypeOpt = None,
    widen: WidenOpt = 0,
    think: ThinkOpt = False,
    max_tokens: MaxTokensOpt = 512,
    allow_general: GeneralOpt = False,
    context_tokens: ContextOpt = DEFAULT_CONTEXT_TOKENS,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the indexed documents, streaming, then list the sources it cites."""
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
    if as_json:
        out.print_json(json.dumps(_answer_json(answer)))
    else:
        _show_sources(answer)


def _stream_events(events, quiet: bool = False) -> rag.Answer:
    """Print tokens (and thinking, dimmed, on stderr) as they come; return the finished Answer."""
    answer = None
    for event in events:
        if isinstance(event, rag.TokenEvent) and not quiet:
            out.print(event.text, end="", markup=False)
        elif isinstance(event, rag.ThinkingEvent) and not quiet:
            err.print(event.text, end="", style="dim", markup=False)
        elif isinstance(event, rag.DoneEvent):
            answer = event.answer
    assert answer is not None
    return answer


def _show_sources(answer: rag.Answer) -> None:
    """After a streamed answer: the verdict on it, its cited sources with their supporting snippets, the
    other sources, and timings."""
    out.print("\n")
    if answer.refused:
        err.print(f"[dim]not answered: {escape(answer.refusal_reason)}. Closest sources:[/dim]")
    if answer.invalid_citations:
        numbers = ", ".join(f"[{n}]" for n in answer.invalid_citations)
        err.print(f"[yellow]removed citations that name no source: {numbers}[/yellow]")
    if answer.unsupported_citations:
        numbers = ", ".join(f"[{n}]" for n in answer.unsupported_citations)
        err.print(f"[yellow]removed citations whose source doesn't say that: {numbers}[/yellow]")
    cited = {e.number: e for e in answer.evidence}
    out.print("[bold]Sources[/bold]")
    for n, source in enumerate(answer.sources, 1):
        mark = "*" if n in cited else " "
        out.print(
            f"{mark}\\[{n}] {escape(source.location)}  [dim](score {source.score:.3f}) {escape(source.path)}[/dim]"
        )
        if n in cited:
            out.print(f"      [italic]“{escape(cited[n].snippet)}”[/italic]")
    t = answer.timings
    cached = f" ({t.cached_prompt_tokens} cached)" if t.cached_prompt_tokens else ""
    err.print(
        f"[dim]retrieval {t.retrieval_ms:.0f} ms · first token {t.first_token_ms / 1000:.1f} s · "
        f"prompt {t.prompt_tokens} tokens{cached} · {t.generated_tokens} tokens at {t.tokens_per_s:.1f} tok/s[/dim]"
    )


def _answer_json(answer: rag.Answer) -> dict:
    return {
        "question": answer.question,
        "answer": answer.text,
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "citations": answer.citations,
        "invalid_citations": list(answer.invalid_citations),
        "unsupported_citations": list(answer.unsupported_citations),
        "sentences": [
            {"text": x.text, "citations": list(x.citations), "attributed": x.attributed} for x in answer.sentences
        ],
        "evidence": [
            {"n": e.number, "snippet": e.snippet, "location": e.source.location, "added": e.added}
            for e in answer.evidence
        ],
        "sources": [asdict(s) | {"n": n, "location": s.location} for n, s in enumerate(answer.sources, 1)],
        "timings": asdict(answer.timings),
    }


CHAT_HELP = "/sources  show the last answer's sources · /reset  forget the conversation · /quit  leave (or Ctrl-D)"


@_command
def chat(
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    llm: LlmOpt = None,
    preset: PresetOpt = None,
    k: KOpt = None,
    collection: QueryCollectionOpt = None,
    mode: ModeOpt = "hybrid",
    rerank: RerankOpt = None,
    rerank_model: RerankModelOpt = None,
    max_tokens: MaxTokensOpt = 512,
    allow_general: GeneralOpt = False,
    context_tokens: ContextOpt = DEFAULT_CONTEXT_TOKENS,
) -> None:
    """Chat with your documents: follow-up questions are understood in the context of the conversation."""
    idx, s = _open(index, embed_model, llm, preset, k, rerank_model)
    options = _search_options(mode, rerank, None, None)
    conversation = idx.chat(
        k=s.k,
        collection=collection,
        max_tokens=max_tokens,
        allow_general=allow_general,
        context_tokens=context_tokens,
        **options,
    )
    err.print(f"[dim]{CHAT_HELP}[/dim]")
    while True:
        try:
            message = input("\n> ").strip()
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
                if question != message:
                    err.print(f"[dim]→ {escape(question)}[/dim]")

            _show_sources(_stream_events(conversation.stream(message, on_question=show)))


@_command
def search(
    query: Annotated[str, typer.Argument(help="What to look for.", show_default=False)],
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    k: KOpt = None,
    collection: QueryCollectionOpt = None,
    mode: ModeOpt = "hybrid",
    rerank: RerankOpt = None,
    rerank_model: RerankModelOpt = None,
    path: PathOpt = None,
    file_type: TypeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieve the most relevant chunks (no LLM), ranked with scores (RRF scores in hybrid mode)."""
    idx, s = _open(index, embed_model, k=k, rerank_model=rerank_model)
    hits = idx.search(query, k=s.k, collection=collection, **_search_options(mode, rerank, path, file_type))
    if as_json:
        out.print_json(json.dumps([asdict(h) | {"location": h.location} for h in hits]))
        return
    if not hits:
        out.print("No results (the index is empty).")
    for n, hit in enumerate(hits, 1):
        out.print(f"[bold]{n}.[/bold] {hit.score:.3f}  {escape(hit.location)}  [dim]{escape(hit.path)}[/dim]")
        out.print(f"    {hit.snippet(200)}", markup=False)


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
        out.print(f"embedder   {st.embedder} (dim {st.dim})", markup=False)
        out.print(f"chunking   {st.chunking.get('max_tokens')} tokens, overlap {st.chunking.get('overlap_tokens')}")
        for name, (docs, chunks) in st.collections.items():
            out.print(f"collection {name}: {docs} documents, {chunks} chunks", markup=False)
        if st.failures:
            out.print(f"failed     {len(st.failures)} files:")
            for path, info in sorted(st.failures.items()):
                out.print(f"  {path}: {info['reason']}", markup=False)
    out.print(f"llm        {s.llm}", markup=False)
    out.print(f"blas       {st.blas}", markup=False)


@_command
def serve(
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    llm: LlmOpt = None,
    preset: PresetOpt = None,
    k: KOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (off loopback needs --api-key).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Require 'Authorization: Bearer KEY' [env: RAG_API_KEY].", show_default=False),
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Default answer length, in tokens.", min=1)] = 512,
) -> None:
    """Serve the index over an OpenAI-compatible HTTP API: chat, embeddings, search. Ctrl-C stops."""
    from rag import server  # FastAPI/uvicorn load only for this command

    idx, s = _open(index, embed_model, llm, preset, k)
    key = api_key or s.api_key
    server.check_bind(host, key)  # before minutes of model loading, not after
    err.print(f"Serving {idx.path} at http://{host}:{port}/v1 (models: rag, rag:<collection>)", markup=False)
    server.serve(idx, host=host, port=port, api_key=key, k=s.k, max_tokens=max_tokens)


@_command
def mcp(
    index: IndexOpt = None,
    embed_model: EmbedOpt = None,
    llm: LlmOpt = None,
    preset: PresetOpt = None,
    k: KOpt = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Longest answer of `ask`, in tokens.", min=1)] = 512,
) -> None:
    """Run an MCP server on stdio for editors and agents (tools: search, get_chunk, get_document, ask, status)."""
    from rag import mcp_server  # the MCP SDK loads only for this command

    idx, s = _open(index, embed_model, llm, preset, k)
    mcp_server.run_stdio(idx, k=s.k, max_tokens=max_tokens)


eval_app = typer.Typer(no_args_is_help=True, help="Measure retrieval (and answer) quality on benchmark data.")
app.add_typer(eval_app, name="eval")


@eval_app.command("retrieval")
@_guard
def eval_retrieval(
    folder: Annotated[Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.")],
    workspace: Annotated[
        Path | None, typer.Option("--workspace", help="Where the corpus index is kept and reused.")
    ] = None,
    embed_model: EmbedOpt = None,
    rerank_model: RerankModelOpt = None,
    modes: Annotated[
        str, typer.Option("--modes", help="Comma-separated: text,vector,hybrid,hybrid+rerank.")
    ] = "text,vector,hybrid,hybrid+rerank",
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate a seeded sample of this many queries.")] = None,
    rerank_limit: Annotated[
        int | None, typer.Option("--rerank-limit", help="Fewer queries for the slow rerank mode.")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="qrels split.")] = "test",
    as_json: JsonOpt = False,
) -> None:
    """Index a BEIR corpus once, run every judged query in each mode, print nDCG@10, Recall@10/100, MRR@10, latency."""
    from rag import evaluate

    data = evaluate.load_beir(folder, split)
    s = config.resolve(embed_model=embed_model, rerank_model=rerank_model)
    space = workspace or s.home / "eval" / data.name
    evaluate.write_corpus(data, space / "corpus")
    idx = rag.open_index(space / "index", embed_model=s.embed_model, reranker=s.rerank_model or None)
    with progress_reporter(err) if not as_json else nullcontext() as update:
        report = idx.add(space / "corpus", progress=update)
    if report.failed:
        raise rag.RagError(f"{len(report.failed)} corpus documents failed to index", report.failed[0][1])
    results = []
    for mode in [m.strip() for m in modes.split(",") if m.strip()]:
        if mode not in evaluate.MODES:
            raise rag.RagError(f"unknown mode '{mode}'", f"choose from {', '.join(evaluate.MODES)}")
        ids = evaluate.sample_queries(data, rerank_limit if mode.endswith("+rerank") and rerank_limit else limit)
        if not as_json:
            err.print(f"{mode}: {len(ids)} queries …", markup=False)
        results.append(evaluate.evaluate(idx, data, ids, mode))
    _print_eval(data.name, results, as_json)


def _print_eval(name: str, results: list, as_json: bool) -> None:
    if as_json:
        rows = [{k: v for k, v in asdict(r).items() if k != "per_query"} for r in results]
        out.print_json(json.dumps({"dataset": name, "results": rows}))
        return
    out.print(
        f"{name}: {'mode':<15}{'queries':>8}{'nDCG@10':>9}{'R@10':>8}{'R@100':>8}{'MRR@10':>8}{'p50 ms':>9}{'p95 ms':>9}",
        markup=False,
    )
    for r in results:
        out.print(
            f"{'':<{len(name) + 2}}{r.mode:<15}{r.queries:>8}{r.ndcg_10:>9.3f}{r.recall_10:>8.3f}{r.recall_100:>8.3f}"
            f"{r.mrr_10:>8.3f}{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}",
            markup=False,
        )


@eval_app.command("answers")
@_guard
def eval_answers(
    file: Annotated[Path, typer.Argument(help="SQuAD v1.1 JSON file, e.g. xquad.en.json.")],
    workspace: Annotated[
        Path | None, typer.Option("--workspace", help="Where the paragraphs' index is kept and reused.")
    ] = None,
    embed_model: EmbedOpt = None,
    llm: LlmOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="Ask a seeded sample of this many questions.", min=0)] = 100,
    unanswerable: Annotated[
        int, typer.Option("--unanswerable", help="Also ask this many questions whose paragraph is removed.", min=0)
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    articles: Annotated[
        str,
        typer.Option("--articles", help="Ask questions of all, odd or even articles (odd: held out from calibration)."),
    ] = "all",
    k: KOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Index a SQuAD file's paragraphs once, ask sampled questions, print exact match, F1, answer containment,
    citation precision, refusals and latency."""
    from rag import evaluate_answers as ea

    data = ea.load_squad(file)
    s = config.resolve(embed_model=embed_model, llm=llm, k=k)
    space = workspace or s.home / "eval" / data.name
    idx = rag.open_index(space / "index", embed_model=s.embed_model, llm=s.llm)
    plan = ea.plan_questions(data, limit, unanswerable, seed, articles)
    with progress_reporter(err) if not as_json else nullcontext() as update:
        reports = ea.index_collections(idx, data, plan, space, progress=update)
    for name, rep in reports.items():
        if not as_json:
            err.print(f"[dim]{name}: {rep.summary()}; {rep.embedded} chunks embedded, {rep.reused} reused[/dim]")

    def tick(done: int, total: int) -> None:
        if not as_json and (done % 10 == 0 or done == total):
            err.print(f"[dim]{done}/{total} questions asked[/dim]")

    _print_answer_eval(ea.run(idx, data, plan, space, k=s.k, progress=tick), s.llm, as_json)


def _print_answer_eval(r, llm: str, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({k: v for k, v in asdict(r).items() if k != "records"} | {"llm": llm}))
        return

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    rows = [
        ("answerable questions", str(r.questions)),
        ("exact match", pct(r.exact_match)),
        ("token F1", pct(r.f1)),
        ("answer containment", pct(r.containment)),
        ("citation precision", f"{pct(r.citation_precision)} of {r.citations} citations"),
        ("  written by the model", f"{pct(r.model_citation_precision)} of {r.model_citations} citations"),
        ("citation coverage", f"{pct(r.citation_coverage)} of answers cite a source"),
        ("false refusals", pct(r.false_refusal_rate)),
        ("retrieval hit", f"{pct(r.retrieval_hit_rate)} gold paragraph among the sources"),
        ("first token p50/p95", f"{r.first_token_p50_ms:.0f} / {r.first_token_p95_ms:.0f} ms"),
        ("total p50/p95", f"{r.total_p50_ms:.0f} / {r.total_p95_ms:.0f} ms"),
    ]
    if r.unanswerable:
        rows += [
            ("unanswerable questions", str(r.unanswerable)),
            ("refusal rate", pct(r.refusal_rate)),
            ("unanswerable total p50", f"{r.unanswerable_p50_ms:.0f} ms"),
        ]
    out.print(f"{r.dataset} · {llm}  (refusals score 0 for EM, F1 and containment)", markup=False)
    for label, value in rows:
        out.print(f"  {label:<24}{value}", markup=False)
    out.print(f"  per-question records: {r.records_path}", markup=False)


collection_app = typer.Typer(no_args_is_help=True, help="List or remove collections.")
app.add_typer(collection_app, name="collection")


@collection_app.command("list")
@_guard
def list_collections(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """List collections with their document and chunk counts."""
    idx, _ = _open(index, None)
    found = idx.collections()
    if as_json:
        out.print_json(json.dumps({name: {"documents": d, "chunks": c} for name, (d, c) in found.items()}))
        return
    for name, (docs, chunks) in found.items():
        out.print(f"{name}\t{docs} documents\t{chunks} chunks", markup=False)


@collection_app.command("remove")
@_guard
def remove_collection(
    name: Annotated[str, typer.Argument(help="Collection to delete from the index.")], index: IndexOpt = None
) -> None:
    """Remove a collection's documents from the index (your files are not touched)."""
    idx, _ = _open(index, None)
    removed = idx.remove_collection(name)
    out.print(f"removed collection {name} ({removed} chunks)", markup=False)


def _print_error(exc: rag.RagError) -> None:
    hint = f" — {exc.hint}" if exc.hint else ""
    err.print(f"[red]Error:[/red] {escape(exc.message)}{escape(hint)}")
