"""Questions about the documents as a whole: recognise them, and build the overview they are answered from.

"What is this folder about?" or "总结一下这些文档" shares no words with any document, so retrieval finds
nothing relevant and the relevance gate refuses. Such a question gets an overview instead: the opening
of each document (its first chunk, which carries the title, the first heading and the first passage),
cut at a paragraph end, for up to `OVERVIEW_DOCUMENTS` documents spread evenly over the collection's
paths. "Summarise my notes on backups" is a question about a topic: retrieval and the gate see the
topic ("backups") instead of the whole sentence, whose framing words no document holds.

Recognition is by English and Chinese phrasings (`scope`); anything else is an ordinary question. This
module does not retrieve, fit sources to a budget or generate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag.types import Source

OVERVIEW_DOCUMENTS = 8  # documents an overview shows at most (spread over the collection)
OPENING_CHARS = 700  # of each document's first chunk, cut back to a paragraph or sentence end

_THINGS = r"(?:folders?|collections?|documents?|docs|files?|notes|index|papers|pages|archive|library|corpus)"
_THESE = r"(?:this|these|the|my|our|all\s+(?:the|my|these|our))"
_WHOLE = [
    rf"what(?:'s|\s+is|\s+are)\s+{_THESE}\s+{_THINGS}\s+(?:all\s+|mostly\s+|mainly\s+)?about",
    rf"what(?:'s|\s+is)\s+in\s+{_THESE}\s+{_THINGS}",
    rf"what\s+(?:do|does)\s+{_THESE}\s+{_THINGS}\s+(?:cover|contain|discuss|say)",
    rf"(?:summari[sz]e|describe|give\s+(?:me\s+)?(?:an?\s+)?(?:overview|summary)\s+of|overview\s+of)\s+{_THESE}\s+{_THINGS}",
    r"(?:give\s+me\s+)?an?\s+overview",
]
_TOPIC = [
    rf"(?:summari[sz]e|give\s+(?:me\s+)?(?:an?\s+)?(?:overview|summary)\s+of)\s+(?:what\s+)?{_THESE}\s+{_THINGS}"
    r"\s+(?:say\s+)?(?:on|about|regarding|for)\s+(?P<topic>.+)",
    rf"what\s+do\s+{_THESE}\s+{_THINGS}\s+say\s+(?:on|about|regarding)\s+(?P<topic>.+)",
]
_ZH_THINGS = "(?:文件夹|文档|文件|笔记|资料|集合|材料)"
_ZH_WHOLE = [
    rf"(?:这个|这些|我的|所有)?{_ZH_THINGS}(?:里)?(?:都|主要|大概)?(?:是)?(?:讲|说|关于|介绍|写|包含|有)(?:了)?(?:些)?什么(?:内容)?(?:的)?",
    rf"(?:请)?(?:总结|概述|概括|介绍)(?:一下)?(?:这个|这些|我的|所有)?{_ZH_THINGS}(?:的)?(?:内容|主题)?",
]
_ZH_TOPIC = [rf"(?:请)?(?:总结|概述|概括)(?:一下)?(?:我的)?(?:关于)?(?P<topic>.+?)的{_ZH_THINGS}"]
_TRAILING = re.compile(r"[\s?？.。!！,，]+$")
_LEADING = re.compile(r"^(?:please\s+|can\s+you\s+|could\s+you\s+|请|帮我|你能)+", re.IGNORECASE)


@dataclass(frozen=True)
class Scope:
    """What a question asks about as a whole: the collection (`topic` None) or one topic."""

    topic: str | None = None


def scope(question: str) -> Scope | None:
    """The question's scope when it asks about the documents in general; None for an ordinary question.

    >>> scope("What is this folder about?")
    Scope(topic=None)
    >>> scope("Summarise my notes on tar archives")
    Scope(topic='tar archives')
    >>> scope("总结一下这些文档")
    Scope(topic=None)
    >>> scope("How do I extract a tar archive?") is None
    True
    """
    text = _LEADING.sub("", _TRAILING.sub("", " ".join(question.split())))
    if any(re.fullmatch(pattern, text, re.IGNORECASE) for pattern in _WHOLE + _ZH_WHOLE):
        return Scope()
    for pattern in _TOPIC + _ZH_TOPIC:
        found = re.fullmatch(pattern, text, re.IGNORECASE)
        if found and found.group("topic").strip():
            return Scope(found.group("topic").strip())
    return None


def overview(firsts: Sequence[Source], limit: int = OVERVIEW_DOCUMENTS) -> list[Source]:
    """Each document's opening, from its first chunk (`firsts`, one per document, in path order), for at
    most `limit` documents spread evenly over the list."""
    if len(firsts) > limit > 1:
        step = (len(firsts) - 1) / (limit - 1)
        firsts = [firsts[round(i * step)] for i in range(limit)]
    return [_opening(s) for s in firsts[:limit]]


def _opening(source: Source) -> Source:
    """The source cut to its first `OPENING_CHARS` characters, ending at a paragraph or sentence end
    when one is past half of that."""
    text = source.text
    if len(text) <= OPENING_CHARS:
        return source
    head = text[:OPENING_CHARS]
    cut = max(head.rfind("\n\n"), *(head.rfind(end) + len(end) for end in (". ", "。", "! ", "? ")))
    if cut < OPENING_CHARS // 2:
        cut = OPENING_CHARS
    head = head[:cut].rstrip()
    return replace(source, text=head, char_end=source.char_start + len(head))
