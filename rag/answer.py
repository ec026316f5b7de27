"""The answer policy: from retrieved sources to one Answer, streamed as events, each stage passed once.

What `answer_events` decides, in order:
1. Sources. A SourcesEvent with the sources the model will be shown; a refusal keeps them too, as the
   closest sources.
2. Gate. The calibrated relevance gate (refusal.py) judges the best retrieved sources (`judged`)
   before anything is generated; below its threshold the question is refused ("relevance 0.12 < 0.31
   (...)", or "no sources were retrieved") and the model is never asked. It comes first because a
   refusal here costs no generation, and a model shown unrelated sources may well answer anyway, from
   what it knows. Skipped with `allow_general` (the caller accepts answers from general knowledge)
   and for what the question asks for as a whole: one named document ("summarise report.pdf"), or the
   documents' overview ("what is this folder about?", rag/overview.py). The user chose those sources.
3. Read check. For a chat model with a calibrated `ReadCheck`, the model reads the answer's own prompt
   once without generating (`Generator.opening_logprob`): if its probability of replying with the
   "not found" sentence is above the model's threshold, the question is refused ("the model reads the
   sources as not holding the answer (P(not found) 0.31 > 0.20)"). This catches sources on the topic
   that lack the answer, which the gate's similarity can't tell from sources that hold it; a small model
   then usually answers anyway, from a nearby sentence. The answer's prompt is the one just read, so
   generating it reuses that KV cache. Not with `allow_general`, a whole-scope question or thinking on.
4. Generate. The model answers from the numbered sources (prompt.py; the general prompt with
   `allow_general`), shown through stream.ReplyFilter: a reply with no words yet (bare [n] markers,
   the sources' labels, numbers) or opening like a refusal is held back, and a looping reply ends at
   its first repetition (`Answer.stopped_reason == "repetition"`).
5. Ask again, once, with the plain prompt (a short answer, without the citation format), when nothing
   was shown and either the reply had no words (a small model copying the citation format), or it was
   a refusal although the gate is confident (P > `gate.confident`: retrieval is surer than for 95% of
   unanswerable calibration questions, so the model more likely missed the answer than the sources
   lack it). Not with `allow_general` or a whole-scope question. The second reply replaces the first, of
   which nothing was shown.
6. Verdict. With `allow_general`, what was held back is shown: the model's refusal is its answer.
   Otherwise a reply of which nothing was shown is refused: "the model gave no answer" (no words) or
   "the model found no answer in the sources", and the standard "not found" sentence in the
   question's language is streamed in its place. A shown reply that is a refusal in the model's own
   words (prompt.is_refusal) is refused as well, keeping its text.
7. Citation check. Any other reply is the answer: its [n] citations are checked against the sources
   (citations.py); markers naming no source were already dropped as it streamed.
Every refusal ends in `_refuse`: `Answer.refused`, and `Answer.refusal_reason` says which stage refused.

What was streamed is `Answer.text`, by construction: every TokenEvent is made by `_Transcript.emit`,
which keeps its text, and the Answer is made only by `_Transcript.answer`, from that text.
This module does not retrieve or fit sources to the context window (index.py), word the prompts
(prompt.py), decide which part of a reply may be shown (stream.py), or run a model (generate.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from rag.citations import check, tokens
from rag.defaults import DEFAULT_MAX_TOKENS
from rag.generate import Generator, elapsed_ms
from rag.prompt import build_messages, is_refusal, not_found_text
from rag.refusal import Gate, ReadCheck
from rag.stream import ReplyFilter
from rag.types import Answer, DoneEvent, Event, Source, SourcesEvent, ThinkingEvent, Timings, TokenEvent

NO_ANSWER = "the model gave no answer"  # its reply had no words: bare [n] markers, labels, numbers
NOT_IN_SOURCES = "the model found no answer in the sources"


@dataclass(frozen=True)
class Retrieved:
    """What retrieval hands the policy for one question.

    Args:
        sources: what the model is shown, numbered from 1 (already fitted to the context window).
        judged: what the gate judges: its calibrated number of best sources, however many are shown.
        chosen: `sources` are a caller's choice (`Index.stream_answer(sources=...)`), not retrieved:
            the relevance gate doesn't judge them (the model may still refuse).
        whole: `sources` are what the question asks for as a whole (one document it names, or the
            documents' overview for "what is this folder about?"): the gate doesn't judge them.
        query: what retrieval searched for and the gate judges, when not the question itself (the
            topic of "summarise my notes on X").
        started: `time.perf_counter()` when the question arrived (timings count from it).
        retrieval_ms: how long finding the sources took.
    """

    question: str
    sources: list[Source]
    judged: list[Source] = field(default_factory=list)
    whole: bool = False
    started: float = field(default_factory=time.perf_counter)
    retrieval_ms: float = 0.0
    chosen: bool = False
    query: str = ""

    @property
    def judged_query(self) -> str:
        return self.query or self.question


def answer_events(
    retrieved: Retrieved,
    generator: Generator,
    gate: Gate,
    *,
    read_check: ReadCheck | None = None,
    allow_general: bool = False,
    thinking: bool = False,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Iterator[Event]:
    """The events of one answer: a SourcesEvent, TokenEvents (ThinkingEvents too with `thinking`), and a
    DoneEvent with the Answer, whose text is what the TokenEvents carried (see the module docstring).

    Args:
        read_check: the chat model's calibrated read check (refusal.check_for), or None: not checked.
        allow_general: no gate and no retry; the model may answer from general knowledge.
        thinking, max_tokens: passed to `generator.stream` (default: no thinking, DEFAULT_MAX_TOKENS).
    """
    question, sources = retrieved.question, retrieved.sources
    said = _Transcript(retrieved, max_tokens)
    yield SourcesEvent(sources)
    grounded = not allow_general and not retrieved.whole
    if grounded and not retrieved.chosen:
        refuse, why = gate.refuses(retrieved.judged_query, retrieved.judged)
        if refuse:
            yield from _refuse(said, why)
            return
    labels = {w for s in sources for w in tokens(s.location)}
    reply = ReplyFilter(len(sources), labels)
    messages = build_messages(question, sources, allow_general=allow_general)
    if grounded and read_check is not None and not thinking:
        refuse, why = read_check.refuses(generator.opening_logprob(messages, not_found_text(question)))
        if refuse:
            yield from _refuse(said, why)
            return
    yield from said.relay(generator.stream(messages, max_tokens=max_tokens, thinking=thinking), reply)
    if grounded and _ask_again(reply.held_back, gate, retrieved):
        reply = ReplyFilter(len(sources), labels)
        plain = build_messages(question, sources, plain=True)
        yield from said.relay(generator.stream(plain, max_tokens=max_tokens, thinking=thinking), reply)
    yield from said.show(reply.close(release=allow_general))
    if not said.text:
        yield from _refuse(said, NO_ANSWER if reply.held_back == "no words" else NOT_IN_SOURCES)
    elif not allow_general and is_refusal(said.text):
        yield from _refuse(said, NOT_IN_SOURCES)
    else:
        checked = check(said.text, sources)
        assert checked.text == said.text  # markers naming no source were dropped while it streamed
        yield DoneEvent(
            said.answer(
                invalid_citations=tuple(reply.invalid),
                unsupported_citations=checked.unsupported,
                sentences=checked.sentences,
                evidence=checked.evidence,
            )
        )


def _ask_again(held_back: str, gate: Gate, retrieved: Retrieved) -> bool:
    """Nothing was shown because the reply had no words, or because it refused where retrieval is sure."""
    if held_back == "no words":
        return True
    return held_back == "refusal" and gate.probability(retrieved.judged_query, retrieved.judged) > gate.confident


def _refuse(said: _Transcript, reason: str) -> Iterator[Event]:
    """The one way an answer is refused: the standard "not found" sentence in the question's language,
    unless the model's own refusal was already shown; the closest sources stay in the Answer."""
    if not said.text:
        yield from said.emit(not_found_text(said.question))
    yield DoneEvent(said.answer(refused=True, refusal_reason=reason))


class _Transcript:
    """What one answer has streamed so far, and what the model reported while it did. Every TokenEvent
    is made by `emit`, and the Answer only by `answer`, from the text emitted."""

    def __init__(self, retrieved: Retrieved, max_tokens: int) -> None:
        self.retrieved, self.max_tokens = retrieved, max_tokens
        self.text = ""
        self.thought: list[str] = []
        self.first_token_ms = 0.0  # when the model's first text was shown (a standard refusal is not)
        self.last = None  # the model's last piece: its token counts and speed
        self.stopped = ""  # "repetition" when the last reply was cut at a loop

    @property
    def question(self) -> str:
        return self.retrieved.question

    def relay(self, pieces: Iterator, shown_by: ReplyFilter) -> Iterator[Event]:
        """Stream one reply: its thinking as it comes, its text as far as `shown_by` lets it through.
        A looping reply stops generating; the generator is closed however the stream ends."""
        try:
            for piece in pieces:
                self.last = piece
                if piece.thinking:
                    self.thought.append(piece.thinking)
                    yield ThinkingEvent(piece.thinking)
                yield from self.show(shown_by.feed(piece.text))
                if shown_by.stopped:
                    break
            self.stopped = shown_by.stopped
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def show(self, text: str) -> Iterator[Event]:
        """Text of the model's reply, as the filter lets it through."""
        if text and not self.first_token_ms:
            self.first_token_ms = elapsed_ms(self.retrieved.started)
        yield from self.emit(text)

    def emit(self, text: str) -> Iterator[Event]:
        """The only place a TokenEvent is made: its text becomes part of `Answer.text`."""
        if text:
            self.text += text
            yield TokenEvent(text)

    def answer(self, **checked) -> Answer:
        """The Answer to what was streamed, with `checked`'s fields (citations, or the refusal)."""
        last = self.last
        timings = Timings(
            retrieval_ms=self.retrieved.retrieval_ms,
            first_token_ms=self.first_token_ms,
            total_ms=elapsed_ms(self.retrieved.started),
            prompt_tokens=last.prompt_tokens if last else 0,
            cached_prompt_tokens=last.cached_tokens if last else 0,
            generated_tokens=last.generated_tokens if last else 0,
            tokens_per_s=last.generation_tps if last else 0.0,
        )
        cut = "max_tokens" if last and last.generated_tokens >= self.max_tokens else "end"
        return Answer(
            self.question,
            self.text,
            self.retrieved.sources,
            timings,
            "".join(self.thought).strip(),
            stopped_reason=self.stopped or cut,
            **checked,
        )
