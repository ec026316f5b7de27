"""A conversation over an index: each follow-up is rewritten into a standalone question, then answered.

"And what about the second one?" cannot be retrieved on its own, so from the second turn on the chat
model rewrites the new message, given the last few turns, into a question that stands alone; that
question drives retrieval and the grounded answer (Index.stream_answer), while the history keeps what
the user actually typed. `reset` forgets the history. The fixed system prompt's KV cache is shared by
every turn (generate.py), so later turns prefill only their new tokens.
This module does not retrieve, prompt for answers or print.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.types import Answer, DoneEvent, Event, Source

if TYPE_CHECKING:
    from rag.index import Index

HISTORY_TURNS = 3  # turns shown to the rewriter
REWRITE_MAX_TOKENS = 64
REWRITE_SYSTEM = (
    "You rewrite the user's last message into one standalone question that can be understood without the "
    "conversation: replace pronouns and references like 'it', 'that', 'the second one' with what they "
    "refer to. Keep the user's language. Reply with the question only."
)
_LABEL = re.compile(r"^\s*(standalone question|question|rewritten question)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Turn:
    """One exchange: what the user typed, the standalone question asked, and the answer."""

    message: str
    question: str
    answer: Answer


def standalone_question(generator, history: Sequence[tuple[str, str]], message: str) -> str:
    """`message` rewritten by the chat model into a question that stands alone, given the earlier
    (user message, answer) pairs; `message` itself when there is no history or the rewrite is empty."""
    if not history:
        return message.strip()
    lines = []
    for said, answered in history[-HISTORY_TURNS:]:
        lines.append(f"User: {said}")
        lines.append(f"Assistant: {' '.join(answered.split())[:400]}")
    user = "Conversation:\n" + "\n".join(lines) + f"\n\nLast message: {message.strip()}\n\nStandalone question:"
    messages = [{"role": "system", "content": REWRITE_SYSTEM}, {"role": "user", "content": user}]
    pieces = generator.stream(messages, max_tokens=REWRITE_MAX_TOKENS, thinking=False)
    text = "".join(p.text for p in pieces).strip()
    question = _LABEL.sub("", text.splitlines()[0] if text else "").strip().strip('"“”').strip()
    return question or message.strip()


class Conversation:
    """A chat with history over `index`; `ask_options` (k, collection, mode, allow_general, ...) apply to
    every answer. Made by `Index.chat()`."""

    def __init__(self, index: Index, **ask_options) -> None:
        self.index = index
        self.ask_options = ask_options
        self.history: list[Turn] = []

    @property
    def sources(self) -> list[Source]:
        """The sources of the last answer (empty before the first)."""
        return self.history[-1].answer.sources if self.history else []

    def reset(self) -> None:
        """Forget the conversation so far."""
        self.history.clear()

    def rewrite(self, message: str) -> str:
        """`message` as a standalone question, given the history (unchanged on the first turn)."""
        pairs = [(turn.message, turn.answer.text) for turn in self.history]
        return standalone_question(self.index.generator, pairs, message)

    def stream(self, message: str, on_question: Callable[[str], None] | None = None, **options) -> Iterator[Event]:
        """Rewrite `message` (passing the standalone question to `on_question`, if given), then stream the
        answer's events (see Index.stream_answer); the turn joins the history when the answer is done."""
        question = self.rewrite(message)
        if on_question is not None:
            on_question(question)
        for event in self.index.stream_answer(question, **(self.ask_options | options)):
            if isinstance(event, DoneEvent):
                self.history.append(Turn(message, question, event.answer))
            yield event

    def ask(self, message: str, **options) -> Answer:
        """Like `stream`, returning the finished Answer (its `.question` is the standalone question)."""
        for event in self.stream(message, **options):
            if isinstance(event, DoneEvent):
                return event.answer
        raise AssertionError("stream_answer ended without a DoneEvent")
