"""`rag eval retrieval` and `rag eval answers`: the benchmark commands, a thin layer over rag.eval.retrieval
and rag.eval.answers (parse, index the benchmark once, run, print a table or JSON).
This module measures through the public API; it holds no scoring logic.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

import rag
from rag.cli import config
from rag.cli.common import EmbedOpt, JsonOpt, KOpt, LlmOpt, RerankModelOpt, TidyCommand, TidyGroup, err, guard, out
from rag.cli.progress import progress_reporter

eval_app = typer.Typer(
    cls=TidyGroup, no_args_is_help=True, help="Measure retrieval (and answer) quality on benchmark data."
)


@eval_app.command("retrieval", cls=TidyCommand)
@guard
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
    from rag.eval import retrieval as evaluate

    data = evaluate.load_beir(folder, split)
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    for mode in wanted:
        if mode not in evaluate.MODES:
            raise rag.InvalidOption(f"unknown mode '{mode}'", f"choose from {', '.join(evaluate.MODES)}")
    s = config.resolve(embed_model=embed_model, rerank_model=rerank_model)
    space = workspace or s.home / "eval" / data.name
    idx = rag.open_index(space / "index", embed_model=s.embed_model, reranker=s.rerank_model or None)
    wanted = _modes_with_models(idx, wanted, quiet=as_json)  # before any work: indexing can take many minutes
    evaluate.write_corpus(data, space / "corpus")
    with progress_reporter(err) if not as_json else nullcontext() as update:
        report = idx.add(space / "corpus", progress=update)
    if report.failed:
        raise rag.RagError(f"{len(report.failed)} corpus documents failed to index", report.failed[0][1])
    results = []
    for mode in wanted:
        ids = evaluate.sample_queries(data, rerank_limit if mode.endswith("+rerank") and rerank_limit else limit)
        if not as_json:
            err.print(f"{mode}: {len(ids)} queries …", markup=False)
        results.append(evaluate.evaluate(idx, data, ids, mode))
    _print_eval(data.name, results, evaluate.differences(results), as_json)


def _modes_with_models(idx: rag.Index, modes: list[str], quiet: bool) -> list[str]:
    """The modes whose models load: the embedder is needed by all (an error if it can't load); a mode
    with +rerank is skipped, with a one-line note, when the reranker can't be loaded (e.g. offline)."""
    if any(m != "text" for m in modes):
        _ = idx.embedder.dim  # loads the weights now, not after indexing
    if not any(m.endswith("+rerank") for m in modes):
        return modes
    try:
        why = "" if idx.reranker is not None else "no reranker is configured"
        hint = "pass --rerank-model"
    except rag.ModelLoadError as exc:
        why, hint = exc.message, exc.hint
    if why:
        skipped = [m for m in modes if m.endswith("+rerank")]
        err.print(f"skipping {', '.join(skipped)}: {why}", markup=False)
        modes = [m for m in modes if not m.endswith("+rerank")]
        if not modes:
            raise rag.RagError("no mode left to evaluate", hint or "pass --rerank-model, or other --modes")
    return modes


def _print_eval(name: str, results: list, diffs: list[dict], as_json: bool) -> None:
    if as_json:
        rows = [{k: v for k, v in asdict(r).items() if k != "per_query"} for r in results]
        out.print_json(json.dumps({"dataset": name, "results": rows, "differences": diffs}))
        return
    out.print(
        f"{name}: {'mode':<15}{'queries':>8}{'nDCG@10':>9} {'95% CI':<15}{'R@10':>7}{'R@100':>8}{'MRR@10':>8}"
        f"{'p50 ms':>9}{'p95 ms':>9}",
        markup=False,
    )
    for r in results:
        ci = f"[{r.ndcg_10_ci[0]:.3f}, {r.ndcg_10_ci[1]:.3f}]"
        out.print(
            f"{'':<{len(name) + 2}}{r.mode:<15}{r.queries:>8}{r.ndcg_10:>9.3f} {ci:<15}{r.recall_10:>7.3f}"
            f"{r.recall_100:>8.3f}{r.mrr_10:>8.3f}{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}",
            markup=False,
        )
    for d in diffs:
        low, high = d["ci"]
        verdict = "" if low <= 0 <= high else "  (the interval excludes 0)"
        out.print(
            f"{'':<{len(name) + 2}}nDCG@10 {d['b']} − {d['a']}: {d['ndcg_10_diff']:+.3f} [{low:+.3f}, {high:+.3f}]{verdict}",
            markup=False,
        )


@eval_app.command("answers", cls=TidyCommand)
@guard
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
    hard: Annotated[
        int,
        typer.Option("--hard", help="Also ask this many whose paragraph stays, without its answer sentences.", min=0),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    articles: Annotated[
        str,
        typer.Option("--articles", help="Ask questions of all, odd or even articles (odd: held out from calibration)."),
    ] = "all",
    k: KOpt = None,
    oracle: Annotated[
        bool,
        typer.Option("--oracle", help="Also answer each question from its gold paragraph alone, and compare."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Index a SQuAD file's paragraphs once, ask sampled questions, print exact match, F1, answer containment,
    citation precision, refusals and latency; with --oracle, the same for the gold paragraph alone; with
    --unanswerable / --hard, the refusal rate where the answer was removed (paragraph / sentences)."""
    from rag.eval import answers as ea

    data = ea.load_squad(file)
    s = config.resolve(embed_model=embed_model, llm=llm, k=k)
    space = workspace or s.home / "eval" / data.name
    idx = rag.open_index(space / "index", embed_model=s.embed_model, llm=s.llm)
    plan = ea.plan_questions(data, limit, unanswerable, seed, articles, hard)
    with progress_reporter(err) if not as_json else nullcontext() as update:
        reports = ea.index_collections(idx, data, plan, space, progress=update)
    for name, rep in reports.items():
        if not as_json:
            err.print(f"[dim]{name}: {rep.summary()}; {rep.embedded} chunks embedded, {rep.reused} reused[/dim]")

    def tick(done: int, total: int) -> None:
        if not as_json and (done % 10 == 0 or done == total):
            err.print(f"[dim]{done}/{total} questions asked[/dim]")

    _print_answer_eval(ea.run(idx, data, plan, space, k=s.k, oracle=oracle, progress=tick), s.llm, as_json)


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
        ("  of correct answers", f"{pct(r.correct_citation_precision)} of {r.correct_citations} citations"),
        ("citation coverage", f"{pct(r.citation_coverage)} of answers cite a source"),
        ("false refusals", pct(r.false_refusal_rate)),
        ("retrieval hit", f"{pct(r.retrieval_hit_rate)} gold paragraph among the sources"),
        ("first token p50/p95", f"{r.first_token_p50_ms:.0f} / {r.first_token_p95_ms:.0f} ms"),
        ("total p50/p95", f"{r.total_p50_ms:.0f} / {r.total_p95_ms:.0f} ms"),
    ]
    if r.oracle_containment is not None:

        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}" if b else "-"

        rows += [
            ("oracle: gold paragraph", f"containment {pct(r.oracle_containment)}, F1 {pct(r.oracle_f1)}"),
            ("  its false refusals", pct(r.oracle_false_refusal_rate)),
            (
                "pipeline / oracle",
                f"containment {ratio(r.containment, r.oracle_containment)}, F1 {ratio(r.f1, r.oracle_f1)}",
            ),
        ]
    if r.unanswerable:
        rows += [
            ("unanswerable questions", str(r.unanswerable)),
            ("refusal rate", pct(r.refusal_rate)),
            ("unanswerable total p50", f"{r.unanswerable_p50_ms:.0f} ms"),
        ]
    if r.hard:
        rows += [
            ("hard unanswerable", f"{r.hard} (gold paragraph kept, answer sentences deleted)"),
            ("  refusal rate", pct(r.hard_refusal_rate)),
        ]
    out.print(f"{r.dataset} · {llm}  (refusals score 0 for EM, F1 and containment)", markup=False)
    for label, value in rows:
        out.print(f"  {label:<24}{value}", markup=False)
    out.print(f"  per-question records: {r.records_path}", markup=False)
