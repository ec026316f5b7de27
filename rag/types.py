"""The plain data a caller gets back: sources, answers, timings, stream events, status."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Source:
    """A retrieved chunk: where it is (path, page, heading, offsets), its text and its score."""

    chunk_id: str
    path: str
    text: str
    score: float
    page: int | None = None
    heading: str = ""
    chunk_index: int = 0
    char_start: int = 0
    char_end: int = 0
    collection: str = "default"
    similarity: float | None = None  # cosine similarity to the query, when vector search found it
    ocr: float | None = None  # read by OCR (a scanned page or an image): its page's mean confidence, 0-1

    @property
    def location(self) -> str:
        """Human-readable place: "report.pdf, page 3" or "notes.md › Install › Linux"."""
        name = Path(self.path).name
        if self.page is not None:
            return f"{name}, page {self.page}"
        return f"{name} › {self.heading.replace(' > ', ' › ')}" if self.heading else name

    def snippet(self, width: int = 160) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"

    def to_dict(self) -> dict[str, Any]:
        """The source as JSON-ready data: every field, and its `location`. `rag search --json` prints it;
        an answer's sources (`Answer.to_dict`), the HTTP API and the MCP tools send it, or fields of it."""
        return asdict(self) | {"location": self.location}


@dataclass(frozen=True)
class Timings:
    retrieval_ms: float = 0.0
    first_token_ms: float = 0.0  # from the question to the first answer token
    total_ms: float = 0.0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, reused from the previous prompt's KV cache
    generated_tokens: int = 0
    tokens_per_s: float = 0.0


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer and the sources that back it (valid [n] whose source says it).
    `attributed`: the checker cited that source (the model wrote no [n] for it, or a wrong one).
    `supported`: some source backs the sentence (`support`: the best share of its content words found
    in one source, see citations.py); an unsupported sentence cites nothing, whatever [n] it shows."""

    text: str
    citations: tuple[int, ...] = ()
    attributed: bool = False
    supported: bool = False
    support: float = 0.0


@dataclass(frozen=True)
class Evidence:
    """A cited source: its number, the source, and the sentence of it that supports the answer.
    `added`: the citation was attributed by the checker, not written by the model."""

    number: int
    source: Source
    snippet: str
    added: bool = False


@dataclass(frozen=True)
class Answer:
    """The answer to one question. `sources` are numbered from 1 in the order given to the model."""

    question: str
    text: str
    sources: list[Source]
    timings: Timings = field(default_factory=Timings)
    thinking: str = ""
    refused: bool = False  # True: "not found in your documents" (retrieval gate or the model said so)
    refusal_reason: str = ""
    invalid_citations: tuple[int, ...] = ()  # [n] markers the model wrote that name no given source
    unsupported_citations: tuple[int, ...] = ()  # [n] dropped: that source doesn't say what the sentence says
    sentences: tuple[Sentence, ...] = ()  # the answer split into sentences, each with what it cites
    evidence: tuple[Evidence, ...] = ()  # each cited source with its supporting snippet
    stopped_reason: str = "end"  # "end", "max_tokens", or "repetition" (the reply looped: cut there)

    @property
    def uncited_sentences(self) -> list[Sentence]:
        return [s for s in self.sentences if not s.citations]

    @property
    def unsupported_sentences(self) -> list[Sentence]:
        return [s for s in self.sentences if not s.supported]

    @property
    def citations(self) -> list[int]:
        """The cited sources' numbers, in first-cited order: each backs a sentence of the answer, whether
        the model wrote its [n] or the checker attributed it (`Evidence.added`). An [n] in the text whose
        source doesn't back its sentence is no citation (see `unsupported_citations`)."""
        return [e.number for e in self.evidence]

    @property
    def attributed_citations(self) -> list[int]:
        """Of `citations`, those the checker added (the model wrote no [n] for them)."""
        return [e.number for e in self.evidence if e.added]

    def cited_by(self, n: int) -> str | None:
        """Who cites source n: "model" (its [n], verified), "checker" (attributed), or None (not cited)."""
        return next(("checker" if e.added else "model" for e in self.evidence if e.number == n), None)

    @property
    def cited_sources(self) -> list[Source]:
        return [self.sources[n - 1] for n in self.citations]

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready data, as `rag ask --json` prints it: the text (as "answer"), what was
        refused, cited or dropped, the sentences, the evidence, the timings, and each source
        (`Source.to_dict`) with its number `n`, whether it is `cited`, and by whom (`cited_by`)."""
        return {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "citations": self.citations,
            "attributed_citations": self.attributed_citations,
            "invalid_citations": list(self.invalid_citations),
            "unsupported_citations": list(self.unsupported_citations),
            "stopped_reason": self.stopped_reason,
            "sentences": [asdict(x) for x in self.sentences],
            "evidence": [
                {"n": e.number, "snippet": e.snippet, "location": e.source.location, "added": e.added}
                for e in self.evidence
            ],
            "sources": [
                s.to_dict() | {"n": n, "cited": n in self.citations, "cited_by": self.cited_by(n)}
                for n, s in enumerate(self.sources, 1)
            ],
            "timings": asdict(self.timings),
        }


# -- stream events: stream_answer() yields these, collect() reads them to the Answer --------------


@dataclass(frozen=True)
class SourcesEvent:
    sources: list[Source]


@dataclass(frozen=True)
class TokenEvent:
    text: str


@dataclass(frozen=True)
class ThinkingEvent:
    text: str


@dataclass(frozen=True)
class DoneEvent:
    answer: Answer


Event = SourcesEvent | TokenEvent | ThinkingEvent | DoneEvent


def collect(events: Iterable[Event]) -> Answer:
    """The finished Answer of a stream of events (`Index.stream_answer`, `Conversation.stream`): the
    events are read up to its DoneEvent. A stream that ends without one is a ValueError.

    >>> answer = rag.collect(index.stream_answer("Where is the spare key?"))  # doctest: +SKIP
    """
    for event in events:
        if isinstance(event, DoneEvent):
            return event.answer
    raise ValueError("the events ended without a DoneEvent")


@dataclass(frozen=True)
class IndexStatus:
    path: str
    exists: bool
    documents: int = 0
    chunks: int = 0
    embedder: str = ""
    dim: int = 0
    chunking: dict = field(default_factory=dict)
    created: str = ""
    blas: str = ""
    collections: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (documents, chunks)
    failures: dict[str, dict] = field(default_factory=dict)  # path -> {reason, size, mtime_ns}
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason (a type rag doesn't read)
    ocr_pages: int = 0  # pages (and images) whose indexed text was read by OCR
    ocr_documents: int = 0  # documents with at least one such page
    # Speed-ups over other packages' internals (ingest/fastpaths.py): name -> "on", or "off: why".
    fast_paths: dict[str, str] = field(default_factory=dict)
