"""Answer evaluation on a SQuAD v1.1 file: does `rag.Index.ask` answer, cite the right chunk, and refuse
when the answer is not in the documents?

Each paragraph is written once as its own text file (`<article index>-<paragraph index>.txt`) under
`workspace/corpus` and indexed through the normal `rag.Index.add` path as collection "all", so re-runs reuse
the index. A seeded sample of questions is asked against "all" and scored with SQuAD's exact match and
token F1, answer containment (a gold answer occurs, as whole words after normalisation, in the answer),
citation precision (each cited source — [n] written by the model, or attributed by the citation checker,
counted apart too — is a chunk containing a gold answer; also over correct answers alone, since a wrong
answer's citation rightly points at the chunk it came from), false refusals,
retrieval hits (the gold paragraph among the sources) and latency. With the oracle, every answerable
question is asked a second time with its gold paragraph as the only source, and the pipeline's
containment and F1 can be read as a share of that bound (the model, not retrieval, limits them).

Answers are scored without their [n] citation markers. Refusals count as wrong: a refused answerable
question scores 0 for exact match, F1 and containment, whatever its text says, and its citations are not
counted.

With `unanswerable=N`, N other questions (disjoint from the sample, same seed) are asked against
collection "holdout": every paragraph except those questions' gold paragraphs (written as a second
folder; the embedding cache makes indexing it cheap). A question is only used if none of its gold
answers still occurs in a remaining paragraph; those that do are skipped and the next candidate is
taken. Their score is the refusal rate.

With `hard=N`, N further questions are the hard case: asked against collection "hard", where their gold
paragraph stays, with only the sentences holding a gold answer deleted (`without_answer`). Retrieval still
finds the on-topic paragraph, so refusing takes reading it. A question is used only if at least two
sentences of its paragraph remain, no gold answer is left in them, and no other paragraph holds one; one
question per paragraph.

A collection holding more documents than the folder has paragraphs (the workspace was moved or copied,
so the old paths are still indexed) is emptied and indexed again, so no paragraph is retrieved twice.

Every question's record is saved as a line of `workspace/answers.jsonl`. This module measures; it does
not print.
"""

from __future__ import annotations

import json
import random
import re
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rag
from rag.eval.metrics import contains_answer, exact_match, percentile, squad_normalize, token_f1

ALL, HOLDOUT, HARD = "all", "holdout", "hard"  # collection names
DEFAULT_LIMIT = 100
RECORDS_FILE = "answers.jsonl"
ORACLE_FIELDS = ("prediction", "refused", "refusal_reason", "exact_match", "f1", "contains", "total_ms")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    paragraph: str  # the gold paragraph's file stem, "<article index>-<paragraph index>"


@dataclass
class SquadData:
    name: str
    paragraphs: dict[str, str]  # file stem -> paragraph text
    questions: list[Question]


@dataclass
class AnswerEval:
    """Scores over the answerable sample (rates in 0..1), then over the unanswerable one (if asked)."""

    dataset: str
    questions: int
    exact_match: float
    f1: float
    containment: float
    citation_precision: float | None  # cited chunks holding a gold answer / all citations; None: no citations
    citations: int  # [n] citations counted, over answers that were not refusals
    citation_coverage: float  # answers citing at least one source / answers that were not refusals
    false_refusal_rate: float
    retrieval_hit_rate: float
    first_token_p50_ms: float  # over answers that produced a token
    first_token_p95_ms: float
    total_p50_ms: float
    total_p95_ms: float
    unanswerable: int = 0
    refusal_rate: float | None = None  # refused / unanswerable questions; None when none were asked
    unanswerable_p50_ms: float | None = None
    hard: int = 0  # hard unanswerable questions: the gold paragraph without its answer sentences
    hard_refusal_rate: float | None = None
    model_citations: int = 0  # of `citations`, written as [n] by the model (the rest: added by the checker)
    model_citation_precision: float | None = None
    # Over answers that contain a gold answer only: does a citation point at a chunk holding the answer the
    # sentence gives? (A wrong answer's citation points, rightly, at the chunk it was taken from.)
    correct_citations: int = 0
    correct_citation_precision: float | None = None
    # With the oracle: the same answerable questions answered from their gold paragraph alone
    oracle_exact_match: float | None = None
    oracle_f1: float | None = None
    oracle_containment: float | None = None
    oracle_false_refusal_rate: float | None = None
    records_path: str = ""
    records: list[dict] = field(default_factory=list, repr=False)  # also saved in records_path


def load_squad(path: Path) -> SquadData:
    """Read a SQuAD v1.1 JSON file (data -> paragraphs -> context + qas). Questions without answers
    (SQuAD v2 "impossible" ones) are skipped."""
    path = Path(path)
    try:
        articles = json.loads(path.read_text())["data"]
        paragraphs, questions = {}, []
        for a, article in enumerate(articles):
            for p, paragraph in enumerate(article["paragraphs"]):
                stem = f"{a}-{p}"
                paragraphs[stem] = paragraph["context"]
                for qa in paragraph["qas"]:
                    answers = tuple(dict.fromkeys(ans["text"] for ans in qa.get("answers", ())))
                    if answers:
                        questions.append(Question(str(qa["id"]), qa["question"], answers, stem))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise rag.RagError(
            f"not a SQuAD v1.1 file: {path} ({exc})", "expected data -> paragraphs -> context, qas"
        ) from exc
    if not questions:
        raise rag.RagError(f"no answerable questions in {path}", "expected SQuAD v1.1: qas with answers[].text")
    return SquadData(path.stem, paragraphs, questions)


def write_paragraphs(paragraphs: Mapping[str, str], out: Path) -> int:
    """Make `out` hold exactly these paragraphs as `<stem>.txt` (unchanged files are not rewritten,
    other .txt files are deleted, so the indexed collection follows)."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.txt"):
        if stale.stem not in paragraphs:
            stale.unlink()
    for stem, text in paragraphs.items():
        path = out / f"{stem}.txt"
        body = text.strip() + "\n"
        if not path.is_file() or path.read_text() != body:
            path.write_text(body)
    return len(paragraphs)


def sample_questions(data: SquadData, limit: int | None, seed: int = 0) -> list[Question]:
    """A seeded sample of `limit` questions (all of them if None or more than there are)."""
    ordered = sorted(data.questions, key=lambda q: q.id)
    if limit is None or limit >= len(ordered):
        return ordered
    return random.Random(seed).sample(ordered, limit)


def pick_unanswerable(
    data: SquadData, n: int, seed: int = 0, exclude: Collection[str] = ()
) -> tuple[list[Question], set[str]]:
    """Up to `n` questions (ids not in `exclude`) made unanswerable by removing their gold paragraphs.

    Candidates come in a seeded order; one is taken only if none of its gold answers occurs in a
    paragraph that stays. Removing more paragraphs later never makes an earlier pick answerable again.
    Returns the questions and the removed paragraph stems."""
    candidates = sorted((q for q in data.questions if q.id not in exclude), key=lambda q: q.id)
    random.Random(seed).shuffle(candidates)
    normalised = {stem: f" {squad_normalize(text)} " for stem, text in data.paragraphs.items()}
    picked: list[Question] = []
    removed: set[str] = set()
    for q in candidates:
        if len(picked) >= n:
            break
        golds = _padded(q.answers)
        gone = removed | {q.paragraph}
        still = any(g in text for stem, text in normalised.items() if stem not in gone for g in golds)
        if golds and not still:
            picked.append(q)
            removed.add(q.paragraph)
    return picked, removed


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def without_answer(paragraph: str, answers: Sequence[str]) -> str | None:
    """`paragraph` with every sentence that holds one of `answers` deleted; None when none does, when
    fewer than two sentences would remain, or when an answer would still be found in what remains."""
    sentences = _SENTENCE_END.split(paragraph.strip())
    kept = [s for s in sentences if not contains_answer(s, answers)]
    if len(kept) == len(sentences) or len(kept) < 2:
        return None
    rest = " ".join(kept)
    return None if contains_answer(rest, answers) else rest


def pick_hard(
    data: SquadData, n: int, seed: int = 0, exclude: Collection[str] = ()
) -> tuple[list[Question], dict[str, str]]:
    """Up to `n` questions (ids not in `exclude`, one per paragraph) made unanswerable by deleting the
    sentences of their gold paragraph that hold an answer. Returns the questions and the edited
    paragraphs (stem -> text without the answer)."""
    candidates = sorted((q for q in data.questions if q.id not in exclude), key=lambda q: q.id)
    random.Random(seed + 1).shuffle(candidates)
    texts = {stem: f" {squad_normalize(text)} " for stem, text in data.paragraphs.items()}
    picked: list[Question] = []
    edited: dict[str, str] = {}
    for q in candidates:
        if len(picked) >= n:
            break
        rest = None if q.paragraph in edited else without_answer(data.paragraphs[q.paragraph], q.answers)
        if rest is None:
            continue
        golds = _padded(q.answers)
        if any(g in text for stem, text in texts.items() if stem != q.paragraph for g in golds):
            continue
        picked.append(q)
        edited[q.paragraph] = rest
        texts[q.paragraph] = f" {squad_normalize(rest)} "
    return picked, edited


@dataclass
class Plan:
    """Which questions are asked: `asked` against "all", `held` against "holdout" (all paragraphs but
    `removed`), `hard` against "hard" (all paragraphs, those in `edited` without their answer)."""

    asked: list[Question]
    held: list[Question]
    removed: set[str]
    hard: list[Question] = field(default_factory=list)
    edited: dict[str, str] = field(default_factory=dict)


ARTICLES = ("all", "odd", "even")


def plan_questions(
    data: SquadData,
    limit: int | None = DEFAULT_LIMIT,
    unanswerable: int = 0,
    seed: int = 0,
    articles: str = "all",
    hard: int = 0,
) -> Plan:
    """The seeded answerable sample, plus `unanswerable` other questions with their paragraphs removed
    and `hard` others with their answer sentences deleted.
    `articles` ("odd"/"even") asks only questions of articles with an odd/even index: the refusal gate
    shipped in rag/calibration.json was fitted on xquad-en's even articles, so "odd" keeps it held out."""
    if articles not in ARTICLES:
        raise rag.RagError(f"unknown article selection '{articles}'", "choose all, odd or even")
    if articles != "all":
        parity = 1 if articles == "odd" else 0
        keep = [q for q in data.questions if int(q.paragraph.split("-")[0]) % 2 == parity]
        data = SquadData(data.name, data.paragraphs, keep)
    asked = sample_questions(data, limit, seed)
    held, removed = pick_unanswerable(data, unanswerable, seed, exclude={q.id for q in asked})
    hard_questions, edited = pick_hard(data, hard, seed, exclude={q.id for q in asked + held})
    return Plan(asked, held, removed, hard_questions, edited)


def index_collections(
    index: rag.Index,
    data: SquadData,
    plan: Plan,
    workspace: Path,
    progress: Callable[[rag.Progress], None] | None = None,
) -> dict[str, rag.IndexReport]:
    """Write and index workspace/corpus as "all" and, if the plan holds questions out, workspace/holdout
    as "holdout" (`progress` is passed to `rag.Index.add`). Returns each collection's index report."""
    reports = {ALL: _add(index, data.paragraphs, Path(workspace) / "corpus", ALL, progress)}
    if plan.held:
        kept = {stem: text for stem, text in data.paragraphs.items() if stem not in plan.removed}
        reports[HOLDOUT] = _add(index, kept, Path(workspace) / HOLDOUT, HOLDOUT, progress)
    if plan.hard:
        reports[HARD] = _add(index, data.paragraphs | plan.edited, Path(workspace) / HARD, HARD, progress)
    return reports


def run(
    index: rag.Index,
    data: SquadData,
    plan: Plan,
    workspace: Path,
    *,
    k: int = rag.DEFAULT_K,
    oracle: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerEval:
    """Ask the planned questions with `k` sources each (collections already indexed), score them and
    save the records to workspace/answers.jsonl. `progress` gets (questions done, questions in all).
    With `oracle`, each answerable question is also answered from its gold paragraph alone (given as
    the sources: no retrieval and no relevance gate; the same prompt, model and checks), so the pipeline can be read
    against what the model manages with perfect retrieval."""
    if plan.asked or plan.held:  # untimed warm-up: the first generation pays one-off setup costs
        first, collection = (plan.asked[0], ALL) if plan.asked else (plan.held[0], HOLDOUT)
        index.ask(first.question, k=k, collection=collection, max_tokens=1)
    total, records = len(plan.asked) + len(plan.held) + len(plan.hard), []
    kinds = (("answerable", plan.asked, ALL), ("unanswerable", plan.held, HOLDOUT), ("hard", plan.hard, HARD))
    for kind, questions, collection in kinds:
        for q in questions:
            record = _record(kind, q, index.ask(q.question, k=k, collection=collection))
            if oracle and kind == "answerable":
                gold = index.get_document((Path(workspace) / "corpus" / f"{q.paragraph}.txt").resolve(), ALL)
                alone = _record(kind, q, index.ask(q.question, k=k, sources=gold))
                record["oracle"] = {key: alone[key] for key in ORACLE_FIELDS}
            records.append(record)
            if progress:
                progress(len(records), total)
    path = Path(workspace) / RECORDS_FILE
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return _aggregate(data.name, records, str(path))


def evaluate_answers(
    index: rag.Index,
    data: SquadData,
    workspace: Path,
    *,
    limit: int | None = DEFAULT_LIMIT,
    unanswerable: int = 0,
    hard: int = 0,
    seed: int = 0,
    k: int = rag.DEFAULT_K,
    articles: str = "all",
    oracle: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerEval:
    """Plan, index and run in one call.

    Args:
        limit: answerable questions to ask (seeded sample; None = all).
        unanswerable: also ask this many questions whose gold paragraph is removed (0 = off).
        hard: also ask this many whose gold paragraph stays without its answer sentences (0 = off).
        seed: sampling seed for both samples.
        k: sources per answer.
        articles: "all", or only the questions of "odd" / "even" articles (see plan_questions).
        oracle: also answer each answerable question from its gold paragraph alone (see run).
        progress: called with (questions done, questions in all) after each question.
    """
    plan = plan_questions(data, limit, unanswerable, seed, articles, hard)
    index_collections(index, data, plan, workspace)
    return run(index, data, plan, workspace, k=k, oracle=oracle, progress=progress)


def _add(index: rag.Index, paragraphs: Mapping[str, str], folder: Path, collection: str, progress) -> rag.IndexReport:
    write_paragraphs(paragraphs, folder)
    report = index.add(folder, collection=collection, progress=progress)
    if index.collections()[collection][0] > len(paragraphs):  # also indexed from elsewhere (a moved workspace)
        index.remove_collection(collection)
        report = index.add(folder, collection=collection, progress=progress)
    if report.failed:
        raise rag.RagError(f"{len(report.failed)} paragraphs failed to index", report.failed[0][1])
    return report


def _record(kind: str, q: Question, answer: rag.Answer) -> dict:
    """One question's outcome, JSON-ready. Scores of refused answers are 0 (see the module docstring)."""
    golds, ok = q.answers, not answer.refused
    said = rag.strip_markers(answer.text)  # [1], [1, 2]: not part of the answer
    cited = [
        {
            "n": e.number,
            "paragraph": Path(e.source.path).stem,
            "chunk_id": e.source.chunk_id,
            "contains_answer": contains_answer(e.source.text, golds),
            "added": e.added,  # attributed by the citation checker, not written by the model
        }
        for e in answer.evidence
    ]
    t = answer.timings
    return {
        "kind": kind,
        "id": q.id,
        "question": q.question,
        "answers": list(golds),
        "gold_paragraph": q.paragraph,
        "prediction": answer.text,
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "exact_match": exact_match(said, golds) if ok else 0.0,
        "f1": token_f1(said, golds) if ok else 0.0,
        "contains": contains_answer(said, golds) if ok else False,
        "cited": cited,
        "sources": [Path(s.path).stem for s in answer.sources],
        "retrieval_hit": any(Path(s.path).stem == q.paragraph for s in answer.sources),
        "retrieval_ms": round(t.retrieval_ms, 1),
        "first_token_ms": round(t.first_token_ms, 1),
        "total_ms": round(t.total_ms, 1),
    }


def _aggregate(name: str, records: Sequence[dict], path: str) -> AnswerEval:
    answerable = [r for r in records if r["kind"] == "answerable"]
    held = [r for r in records if r["kind"] == "unanswerable"]
    hard = [r for r in records if r["kind"] == "hard"]
    answered = [r for r in answerable if not r["refused"]]
    citations = [c["contains_answer"] for r in answered for c in r["cited"]]
    written = [c["contains_answer"] for r in answered for c in r["cited"] if not c.get("added")]
    on_correct = [c["contains_answer"] for r in answered if r["contains"] for c in r["cited"]]
    first_tokens = [r["first_token_ms"] for r in answerable if r["first_token_ms"] > 0]
    totals = [r["total_ms"] for r in answerable]
    return AnswerEval(
        dataset=name,
        questions=len(answerable),
        exact_match=_mean(r["exact_match"] for r in answerable),
        f1=_mean(r["f1"] for r in answerable),
        containment=_mean(r["contains"] for r in answerable),
        citation_precision=_mean(citations) if citations else None,
        citations=len(citations),
        citation_coverage=_mean(bool(r["cited"]) for r in answered),
        model_citations=len(written),
        model_citation_precision=_mean(written) if written else None,
        correct_citations=len(on_correct),
        correct_citation_precision=_mean(on_correct) if on_correct else None,
        false_refusal_rate=_mean(r["refused"] for r in answerable),
        retrieval_hit_rate=_mean(r["retrieval_hit"] for r in answerable),
        first_token_p50_ms=percentile(first_tokens, 50),
        first_token_p95_ms=percentile(first_tokens, 95),
        total_p50_ms=percentile(totals, 50),
        total_p95_ms=percentile(totals, 95),
        unanswerable=len(held),
        refusal_rate=_mean(r["refused"] for r in held) if held else None,
        unanswerable_p50_ms=percentile([r["total_ms"] for r in held], 50) if held else None,
        hard=len(hard),
        hard_refusal_rate=_mean(r["refused"] for r in hard) if hard else None,
        **_oracle_means([r["oracle"] for r in answerable if "oracle" in r]),
        records_path=path,
        records=list(records),
    )


def _oracle_means(oracle: list[dict]) -> dict[str, float | None]:
    """The oracle's scores over the questions it answered (none: all None)."""
    if not oracle:
        return {}
    return {
        "oracle_exact_match": _mean(o["exact_match"] for o in oracle),
        "oracle_f1": _mean(o["f1"] for o in oracle),
        "oracle_containment": _mean(o["contains"] for o in oracle),
        "oracle_false_refusal_rate": _mean(o["refused"] for o in oracle),
    }


def _padded(answers: Sequence[str]) -> list[str]:
    """The non-empty normalised answers with a space either side, to find as whole words in a paragraph
    normalised and padded the same way (`contains_answer`, for paragraphs normalised once up front)."""
    return [f" {g} " for g in map(squad_normalize, answers) if g]


def _mean(values) -> float:
    values = [float(v) for v in values]
    return statistics.fmean(values) if values else 0.0
