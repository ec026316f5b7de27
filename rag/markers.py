"""The [n] citation-marker grammar, in one place: how an answer's text names its numbered sources.

A marker is one source number or several, separated by commas or semicolons, in square brackets: [2],
[1, 2], [3;1]. Here are its patterns (a whole marker, the start of one, one not closed yet), the numbers
a text's markers name, and marker rewriting (keeping some numbers, or dropping every marker). The citation
checker, the stream filter, refusal recognition and the answer evaluation all read markers through it.
This module does not decide which numbers name a source or what a source backs (citations.py does).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NUMBERS = r"\d+(?:\s*[,;]\s*\d+)*"  # "2", "1, 2", "3;1"
# A marker with the one space before it, which goes when the marker goes; group 1 holds its numbers.
MARKER = re.compile(rf"\s?\[({_NUMBERS})\]")
MARKER_START = re.compile(r"\[\d")  # a marker begins here, closed or not
OPEN_MARKER = re.compile(r"\s*\[[\d,; ]*$")  # a marker the text ends in, not closed yet: "[1, "
LEADING_MARKERS = re.compile(rf"^((?:\s*\[{_NUMBERS}\])+)")  # the markers a text opens with
_SEPARATOR = re.compile(r"\s*[,;]\s*")
_GLUED = re.compile(r"(?<=[A-Za-z0-9])(?<!\s)\[(?=\d)")  # "red[3]" after a dropped "[0]": "red [3]"


def numbers_of(match: re.Match) -> list[int]:
    """The numbers of one MARKER match, as written (repeats kept)."""
    return [int(x) for x in _SEPARATOR.split(match.group(1))]


def numbers_in(text: str) -> list[int]:
    """Every number the markers in `text` name, in order, repeats kept: "[2] and [1, 2]" gives [2, 1, 2]."""
    return [n for match in MARKER.finditer(text) for n in numbers_of(match)]


def cited_numbers(text: str, n_sources: int) -> list[int]:
    """The numbers 1..n_sources that `text`'s markers name, each once, in the order first named."""
    return [n for n in dict.fromkeys(numbers_in(text)) if 1 <= n <= n_sources]


def strip_markers(text: str) -> str:
    """`text` with every marker (and the space before it) replaced by one space: what the answer says.

    >>> strip_markers("The key is under the pot [1, 2].")
    'The key is under the pot .'
    """
    return MARKER.sub(" ", text)


def filter_markers(
    text: str, keep: Callable[[int], bool], dropped: dict[int, None] | None = None, *, strip: bool = True
) -> str:
    """`text` with only the [n] numbers that `keep` accepts (a marker left empty disappears with its
    space); the others are added to `dropped`. `strip`: without leading and trailing whitespace."""

    def rewrite(match: re.Match) -> str:
        numbers = numbers_of(match)
        kept = [n for n in dict.fromkeys(numbers) if keep(n)]
        if dropped is not None:
            for n in numbers:
                if n not in kept:
                    dropped.setdefault(n)
        if not kept:
            return ""
        lead = match.group(0)[: len(match.group(0)) - len(match.group(0).lstrip())]
        return f"{lead}[{', '.join(map(str, kept))}]"

    out = _GLUED.sub(" [", MARKER.sub(rewrite, text))
    return out.strip() if strip else out
