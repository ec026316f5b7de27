"""A conversation over an index: each follow-up is rewritten into a standalone question, then answered.

"And what about the second one?" cannot be retrieved on its own, so from the second turn on the chat
model rewrites the new message, given the last few turns, into a question that stands alone (checked:
a question, not the previous one again, keeping the follow-up's content words; else the previous
message and the follow-up together are asked); that question drives retrieval and the grounded answer (Index.stream_answer), while the history keeps what
the user actually typed. `reset` forgets the history. The fixed system prompt's KV cache is shared by
every turn (generate.py), so later turns prefill only their new tokens.
This module does not retrieve, prompt for answers or print.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.citations import words
from rag.types import Answer, DoneEvent, Event, Source, collect

if TYPE_CHECKING:
    from rag.generate import Generator
    from rag.index import Index

HISTORY_TURNS = 3  # turns shown to the rewriter
REWRITE_MAX_TOKENS = 64
REWRITE_SYSTEM = (
    "You rewrite the user's last message into one standalone question that can be understood without the "
    "conversation: replace pronouns and references like 'it', 'that', 'the second one' with what they "
    "refer to. Keep the user's language. Reply with the question only."
)
_QUESTION = re.compile(
    r"[?？]\s*$|^\s*(who|what|when|where|which|why|how|whose|whom|is|are|was|were|do|does|did|can|could|should|"
    r"will|would|has|have)\b|[吗呢][。]?\s*$|什么|怎么|如何|哪|谁|几|多少",
    re.IGNORECASE,
)
# words that point back into the conversation ("the second one", "them"): the rewrite replaces them
_REFERENCES = frozenset(
    "one ones first second third last latter former other others same there then they them their he she him "
    "her his these those also else about".split()
)
_LABEL = re.compile(r"^\s*(standalone question|question|rewritten question)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Turn:
    """One exchange: what the user typed, the standalone question asked, and the answer."""

    message: str
    question: str
    answer: Answer


def standalone_question(generator: Generator, history: Sequence[tuple[str, str]], message: str) -> str:
    """`message` rewritten by the chat model into a question that stands alone, given the earlier
    (user message, answer) pairs; `message` itself when there is no history. A rewrite that fails
    `valid_rewrite` (small models answer instead, or repeat the previous question) is replaced by the
    previous message followed by this one, which retrieves with both."""
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
    previous = history[-1][0].strip()
    return question if valid_rewrite(question, previous, message) else f"{previous} {message.strip()}"


def valid_rewrite(rewrite: str, previous: str, message: str) -> bool:
    """A rewrite is usable when it is a question, is not the previous question again, and keeps every
    content word of the follow-up ("and when is it due?" -> it must still say "due")."""
    if not _QUESTION.search(rewrite) or _flat(rewrite) == _flat(previous):
        return False
    return set(words(message)) - _REFERENCES <= set(words(rewrite))


def _flat(text: str) -> str:
    return " ".join(words(text))


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
        return collect(self.stream(message, **options))
