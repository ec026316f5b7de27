"""Make extracted text searchable: one normalisation for what is indexed and what is queried.

`normalize(text)` returns the normalised text and, for each of its characters, the span of the original
text it came from, so chunks keep exact character offsets into the page (or file) text they were read
from. What it changes:
- compatibility forms become their plain letters (NFKC per character): ligatures (ﬁ -> fi), full-width
  Latin letters and digits, non-breaking and other odd spaces; CJK punctuation (，。：) is kept as written;
- dropped: lone surrogates (a valid pair left split by an extractor is joined), control characters other
  than newline and tab, format characters (bidi overrides, zero-width spaces, soft hyphens; the zero-width
  joiners that scripts need are kept), private-use code points, non-characters and U+FFFD;
- a word hyphenated across a line end ("ma-\\ntrix") is joined ("matrix") when both sides are lower case;
- line and paragraph separators (U+2028/9) and form feeds become newlines.
Text that needs none of this (most of it) is returned as it is, without building the offset map.
`cjk_pairs(text)` is the second form full-text search indexes: the character pairs of its CJK runs.
This module only transforms strings: it reads no file and knows no format.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from functools import lru_cache

# A character that may need work: anything outside printable ASCII + newline/tab, or a line-end hyphen.
_NEEDS_WORK = re.compile(r"[^\x20-\x7e\n\t]|-[ \t]*\n")
_LINE_END_HYPHEN = re.compile(r"-[ \t]*\n[ \t]*")
_KEEP_FORMAT = frozenset("\u200c\u200d")  # zero-width non-joiner / joiner: part of Persian, Indic, emoji
_NEWLINES = frozenset("\u2028\u2029\x0b\x0c\x85")


@lru_cache(maxsize=8192)
def _map_char(ch: str) -> str:
    """What one (non-surrogate) character becomes: itself, its compatibility form, a newline, or nothing."""
    if ch in _NEWLINES:
        return "\n"
    category = unicodedata.category(ch)
    if category in ("Cc", "Co", "Cs") and ch not in "\n\t":
        return ""
    if category == "Cf" and ch not in _KEEP_FORMAT:
        return ""
    o = ord(ch)
    if ch == "\ufffd" or 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE:  # replacement, non-characters
        return ""
    if 0x3000 < o <= 0x303F or (0xFF00 <= o <= 0xFFEF and not ch.isalnum()):  # CJK punctuation stays
        return ch
    return unicodedata.normalize("NFKC", ch) if o > 0x7E else ch


def needs_normalizing(text: str) -> bool:
    return _NEEDS_WORK.search(text) is not None


def normalize_text(text: str) -> str:
    """The normalised form of `text` (what a query is searched as)."""
    return normalize(text)[0]


def normalize(text: str) -> tuple[str, tuple[array, array] | None]:
    """Normalise `text`. Returns (new text, offsets): offsets is None when the text is unchanged, else
    two int arrays `starts`, `ends` with, for each character i of the new text, the original span
    text[starts[i]:ends[i]] it came from."""
    if not needs_normalizing(text):
        return text, None
    out: list[str] = []
    starts, ends = array("q"), array("q")
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        o = ord(ch)
        width = 1
        if 0xD800 <= o <= 0xDBFF and i + 1 < n and 0xDC00 <= ord(text[i + 1]) <= 0xDFFF:
            ch = chr(0x10000 + ((o - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00))  # a pair left split
            width = 2
        elif ch == "-":
            joint = _LINE_END_HYPHEN.match(text, i)
            if joint and i > 0 and text[i - 1].islower() and joint.end() < n and text[joint.end()].islower():
                i = joint.end()  # "ma-\ntrix" -> "matrix": the hyphen and the line break go
                continue
        mapped = ch if o < 0x7F and (o >= 0x20 or ch in "\n\t") else _map_char(ch)
        for piece in mapped:
            out.append(piece)
            starts.append(i)
            ends.append(i + width)
        i += width
    new = "".join(out)
    if new == text:
        return text, None
    return new, (starts, ends)


def source_span(offsets: tuple[array, array] | None, a: int, b: int) -> tuple[int, int]:
    """The original span of the normalised text[a:b] (a < b), given `normalize`'s offsets."""
    if offsets is None:
        return a, b
    starts, ends = offsets
    return starts[a], ends[b - 1]


# Han ideographs (with extension A, compatibility forms and the supplementary planes), kana, hangul.
_CJK_RUN = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f\u3041-\u30fa\u30fc-\u30ff\uac00-\ud7af]+"
)


def has_cjk(text: str) -> bool:
    return _CJK_RUN.search(text) is not None


def cjk_runs(text: str, least: int = 1) -> list[str]:
    """The runs of CJK characters in `text` that are at least `least` long, in order."""
    return [run for run in _CJK_RUN.findall(text) if len(run) >= least]


def cjk_pairs(text: str) -> str:
    """The overlapping character pairs of each CJK run in `text`, space-separated ("压缩文件的" -> "压缩 缩文
    文件 件的"); a one-character run is kept as itself. Empty for text without CJK, so English is never
    split into letters. Indexed beside the word index: ICU word breaks miss a query that is a piece of
    a word or cuts across words, which pairs still match."""
    pieces: list[str] = []
    for run in cjk_runs(text):
        if len(run) == 1:
            pieces.append(run)
        else:
            pieces.extend(run[i : i + 2] for i in range(len(run) - 1))
    return " ".join(pieces)
