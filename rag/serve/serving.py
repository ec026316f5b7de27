"""Model work for the two servers (`rag serve`, `rag mcp`): two workers, limits on answers, remote-safe errors.

Searches and embeddings run on one ModelWorker, answers on another, so a search never waits behind a
generation: with one worker, searches sent during a 400-token SmolLM2 answer took 32.5 s (p50) instead
of 38 ms, now 61 ms (bench/serve_contention.py). The two threads run MLX at once: MLX (>= 0.31) evaluates
safely from several threads as long as each uses its own streams, and both models do (mlx-lm generates
on a thread-local stream; MLXEmbedder makes its CPU streams per thread, so an answer's retrieval may
embed while a search does: results match those made one at a time). Interleaving short jobs between
the tokens of one worker would keep MLX on one thread, but a search would still wait behind an answer's
retrieval and its whole prompt prefill (seconds for a 4B model on a CPU).

An answer is capped at `token_cap` tokens and `answer_seconds` of generation, and stops at its next
token when its `stop` event is set (the client left); what it had by then is the answer. Beyond a
queue's limit, jobs are refused with `Busy`. Error messages go out without the index's local path.
This module knows nothing about HTTP or MCP; it never reads the environment.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import rag
from rag.serve.worker import ModelWorker

T = TypeVar("T")

DEFAULT_TOKEN_CAP = 1024  # no answer is longer, whatever a request asks for
DEFAULT_ANSWER_SECONDS = 120.0  # nor generates for longer (a 4096-token answer once ran 590 s)
DEFAULT_MAX_QUEUE = 64  # searches and embeddings waiting: ~0.05 s each
DEFAULT_MAX_ANSWER_QUEUE = 4  # answers waiting behind the one being generated: up to minutes each
SHUTDOWN_WAIT_S = 30.0  # for work under way to finish: a process that exits mid-MLX aborts
SEARCH_RETRY_AFTER_S = 1
ANSWER_RETRY_AFTER_S = 10


class Busy(rag.RagError):
    """A worker's queue is full; `retry_after` is a fair guess of when to try again, in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, "retry later")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    """How much model work a server takes on. Defaults as the DEFAULT_* constants above."""

    token_cap: int = DEFAULT_TOKEN_CAP
    answer_seconds: float = DEFAULT_ANSWER_SECONDS
    max_queue: int = DEFAULT_MAX_QUEUE
    max_answer_queue: int = DEFAULT_MAX_ANSWER_QUEUE


class Models:
    """An index's models behind two workers: `search` for the embedder, `answer`/`stream` for the chat model."""

    def __init__(self, index: rag.Index, limits: Limits = Limits()) -> None:
        self.index, self.limits = index, limits
        self.searches = ModelWorker("rag-search")
        self.answers = ModelWorker("rag-answer")

    def warm_up(self) -> Future:
        """Open the store and load both models in the background; the Future is done when both are.

        The embedder loads on the search worker first: an answer's retrieval uses it too, and two threads
        must not load it at once."""
        searching = self.searches.submit(_warm_up, self.index)
        return self.answers.submit(_warm_up, self.index, after=searching, chat=True)

    async def search(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the search worker (Busy when `max_queue` jobs are waiting)."""
        _check(self.searches, self.limits.max_queue, "searches", SEARCH_RETRY_AFTER_S)
        return await self.searches.run(fn, *args, **kwargs)

    async def generate(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the answer worker: a short generation such as a question rewrite."""
        self.check_answers()
        return await self.answers.run(fn, *args, **kwargs)

    def check_answers(self) -> None:
        """Busy when `max_answer_queue` answers wait behind the one being generated."""
        _check(self.answers, self.limits.max_answer_queue + 1, "answers", ANSWER_RETRY_AFTER_S)

    def tokens(self, asked: int) -> int:
        """The answer length a request gets: what it asked for, at most `token_cap`."""
        return min(asked, self.limits.token_cap)

    def stream(self, question: str, stop: threading.Event, **options: Any) -> AsyncIterator[rag.Event]:
        """`Index.stream_answer(question, **options)` on the answer worker, ending early (no DoneEvent) once
        `stop` is set or it has generated for `answer_seconds`. `options["max_tokens"]` is capped."""
        self.check_answers()
        options["max_tokens"] = self.tokens(options.get("max_tokens", self.limits.token_cap))
        make = lambda: self.index.stream_answer(question, **options)  # noqa: E731
        return self.answers.stream(make, stop=stop, seconds=self.limits.answer_seconds)

    async def answer(self, question: str, stop: threading.Event, **options: Any) -> tuple[rag.Answer, bool]:
        """The answer to `question` (options as for `stream`) and whether it was cut short."""
        partial = Partial(question)
        async for event in self.stream(question, stop, **options):
            partial.add(event)
        return partial.answer(), partial.cut

    def redact(self, text: str) -> str:
        """`text` fit for a remote client: the index's local path becomes "the index", the home folder "~"."""
        return redact(text, self.index.path)

    def close(self, wait: float = 0.0) -> bool:
        """Take no more work; wait up to `wait` seconds for the work under way (True if it is done)."""
        self.searches.close()
        self.answers.close()
        return self.searches.close(wait) and self.answers.close(wait)


@dataclass
class Partial:
    """An answer being streamed: the finished Answer once its DoneEvent came, else what came so far."""

    question: str
    sources: list[rag.Source] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    done: rag.Answer | None = None

    def add(self, event: rag.Event) -> None:
        if isinstance(event, rag.SourcesEvent):
            self.sources = event.sources
        elif isinstance(event, rag.TokenEvent):
            self.text.append(event.text)
        elif isinstance(event, rag.ThinkingEvent):
            self.thinking.append(event.text)
        elif isinstance(event, rag.DoneEvent):
            self.done = event.answer

    @property
    def cut(self) -> bool:
        return self.done is None

    def answer(self) -> rag.Answer:
        if self.done is not None:
            return self.done
        timings = rag.Timings(generated_tokens=len(self.text) + len(self.thinking))
        text, thinking = "".join(self.text).rstrip(), "".join(self.thinking).strip()
        return rag.Answer(self.question, text, self.sources, timings, thinking=thinking)


async def chain(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """`first`, then the items of `rest` (a stream whose first item was awaited apart)."""
    yield first
    async for item in rest:
        yield item


def redact(text: str, index_path: Path | str) -> str:
    """`text` without the index's absolute path or URI ("the index") or the home folder ("~")."""
    forms = {str(index_path)}
    if isinstance(index_path, Path):
        forms |= {str(index_path.expanduser().absolute()), str(index_path.expanduser().resolve())}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "the index")
    home = str(Path.home())
    return text.replace(home + "/", "~/") if len(home) > 1 else text


def _check(worker: ModelWorker, limit: int, what: str, retry_after: int) -> None:
    if worker.pending >= limit:
        raise Busy(f"busy: {worker.pending} {what} queued or running", retry_after)


def _warm_up(index: rag.Index, after: Future | None = None, chat: bool = False) -> None:
    """A worker's warm-up, on its thread: the store opened and the embedder run once (with `chat`, the
    chat model loaded too). `after`: the warm-up that opens the store and loads the embedder, waited for
    instead (its failure is this one's)."""
    if after is None:
        index.status()  # opens the store
    else:
        after.result()
    index.embedder.embed(["warm-up"])  # this thread's own MLX streams, made before the first question
    if chat:
        _ = index.generator
