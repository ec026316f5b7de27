"""Decide, token by token, how much of a model's reply may be shown, so what was streamed is the answer.

A model's reply is shown as it arrives, except for text that may still turn out not to belong to the
answer; that is held back until it is clear:
- a reply with no words yet (only [n] markers, numbers or the sources' labels): it may be asked again
  (numbers alone are shown when the reply ends, unless they loop);
- a reply that opens like a refusal ("I couldn't find that in your documents."): the refusal the user
  sees is the standard one in the question's language, and the model may be asked again;
- a [n] marker not yet closed, and a marker naming no source, which is dropped (`invalid`);
- trailing whitespace (an answer never ends with it);
- text that repeats: a sentence that begins like an earlier sentence is held until it differs, and
  when it turns out to be the same sentence again, or the reply ends in a short unit repeated
  (`1.1.1.1.1…`, `tar tvf tar tvf …`), the answer ends there (`stopped == "repetition"`), keeping what
  came before.
So `shown` (the text streamed) is always a prefix of the final answer, and equals it once `close`d.
This module does not generate, retrieve or check what the citations say (citations.py does).
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet

from rag.citations import CJK_CHARS, WORD, words
from rag.markers import MARKER, OPEN_MARKER, filter_markers
from rag.prompt import NOT_FOUND, NOT_FOUND_ZH, is_refusal

MAX_UNIT_CHARS = 32  # a repeated unit this short is a loop once it fills MIN_LOOP_CHARS and 4 repetitions
MIN_LOOP_CHARS = 16
MIN_REPEATED_WORDS = 2  # a sentence of fewer words may recur ("Yes.", a code fence) ...
MAX_SHORT_REPEATS = 3  # ... up to 3 times: a 4th is a loop ("5. tar 6. tar 7. tar 8. tar …", SmolLM2)
# How refusals open; a reply that starts like one is held until it is known to be an answer.
REFUSAL_OPENERS = (
    NOT_FOUND.lower(),
    NOT_FOUND_ZH,
    "i could not find",
    "i cannot find",
    "i can't find",
    "the sources do not",
    "the sources don't",
    "the provided sources do not",
    "there is no information",
    "没有找到",
    "文档中没有",
    "抱歉",
)
_SENTENCE = re.compile(r"(?:[^.!?。！？\n]|[.!?](?!\s|$))*(?:[.!?](?=\s|$)|[。！？]|\n|$)")
_LIST_MARK = re.compile(r"(?:\d{1,3}[.)]|[-*•])")
_LAST_WORD = re.compile(f"[^\\W_{CJK_CHARS}]+$")  # a CJK character is a whole word as soon as it arrives
_ECHO_TOKEN = re.compile(r"\[\d+\]|" + WORD.pattern + r"|[^\w\s]")


class ReplyFilter:
    """Feed a reply's text pieces; `feed` returns what may be shown now, `close` the rest.

    Args:
        n_sources: markers [1]..[n_sources] are kept, others dropped and listed in `invalid`.
        labels: the words of the sources' labels, lower-cased, stop words too ("[1] 15-0.txt" is no
            answer either).
    """

    def __init__(self, n_sources: int, labels: AbstractSet[str] = frozenset()) -> None:
        self.n_sources, self.labels = n_sources, labels
        self.raw = ""  # the model's text so far
        self.text = ""  # the answer so far: invalid markers dropped, cut at a repetition
        self.shown = ""
        self.stopped = ""  # "repetition" once the answer was cut there
        self.invalid: dict[int, None] = {}

    def feed(self, piece: str) -> str:
        """Text that may be shown now, given the next piece of the reply."""
        if self.stopped:
            return ""
        self.raw += piece
        invalid: dict[int, None] = {}
        self.text = filter_markers(self.raw, lambda n: 1 <= n <= self.n_sources, invalid, strip=False).lstrip()
        self.invalid = invalid
        cut = repetition_cut(self.text)
        if cut is not None:
            self.text = self.text[: max(cut, len(self.shown))].rstrip()
            self.stopped = "repetition"
            return "" if self.held_back else self._show(len(self.text))
        return self._show(self._safe_length())

    def close(self, release: bool = False) -> str:
        """The rest of the answer, unless it is a refusal or has no words (`held_back` says which) and
        not `release`."""
        self.text = self.text.rstrip()
        return "" if self.held_back and not release else self._show(len(self.text))

    @property
    def held_back(self) -> str:
        """Why nothing was shown: "no words" or "refusal" ("" once something was shown)."""
        if self.shown:
            return ""
        if not set(words(self.text)) - self.labels:
            return "no words" if self.text.strip() else ""
        if self.stopped and not self._has_words(self.text):  # "1. 1.1.1.1…": numbers looping
            return "no words"
        text = self._unechoed(self.text)
        return "refusal" if _opens_as_refusal(text) and is_refusal(text) else ""

    def _safe_length(self) -> int:
        text = self.text
        marker = OPEN_MARKER.search(text)
        body = text[: marker.start()] if marker else text
        if not self._has_words(self._settled(body)) or _may_open_as_refusal(self._unechoed(body)):
            return 0
        return len(text[: min(len(body), _repeat_hold(text))].rstrip())  # never ends in whitespace

    def _settled(self, text: str) -> str:
        """`text` without its last word while that may still be growing ("p" of "p0055" as "[1] p0055.md"
        arrives a token at a time, "t" of "the"), so whether a reply has words of its own doesn't depend
        on how it was cut into pieces. CJK characters are words one by one, so none is held."""
        last = _LAST_WORD.search(text)
        return text[: last.start()] if last else text

    def _unechoed(self, text: str) -> str:
        """`text` after a leading echo of the sources' labels ("[1] p0218.md › … [2] … I couldn't find
        that"): from a first [n] on, markers, the labels' words, numbers and punctuation. A reply that
        doesn't start with a marker is returned whole."""
        if not text.lstrip().startswith("["):
            return text
        end = 0
        for token in _ECHO_TOKEN.finditer(text):
            word = token.group()
            if word[0].isalnum() and not word.isdigit() and word.lower() not in self.labels:
                break
            end = token.end()
        return text[end:]

    def _has_words(self, text: str) -> bool:
        """Words other than numbers and the sources' labels (a reply of numbers is held until it ends)."""
        return any(not w.isdigit() for w in set(words(text)) - self.labels)

    def _show(self, upto: int) -> str:
        if upto <= len(self.shown):
            return ""
        new = self.text[len(self.shown) : upto]
        self.shown += new
        return new


def repetition_cut(text: str) -> int | None:
    """Where a looping reply should end: the start of a sentence that repeats an earlier one, or of the
    second unit of a short unit repeated at the end; None if the text does not loop."""
    unit = _looping_unit(text)
    if unit is not None:
        return unit
    seen: set[str] = set()
    short: dict[str, int] = {}  # one-word sentences ("tar") recur legitimately, but not without end
    sentences = list(_sentences(text))
    for i, (start, sentence) in enumerate(sentences):
        key = _normal(sentence)
        if not key or _LIST_MARK.fullmatch(key):
            continue
        if key in seen or short.get(key, 0) >= MAX_SHORT_REPEATS:
            return _list_item_start(sentences, i)
        if not _complete(sentence, start, text):
            continue
        if len(_WORDS.findall(key)) >= MIN_REPEATED_WORDS:
            seen.add(key)
        elif _WORDS.search(key):
            short[key] = short.get(key, 0) + 1
    return None


_WORDS = re.compile(r"[\u3400-\u9fff]{2}|\w+")


def _looping_unit(text: str) -> int | None:
    """The start of the second repetition of a unit of at most MAX_UNIT_CHARS (with a letter or digit)
    that the text ends in at least four times over at least MIN_LOOP_CHARS."""
    for period in range(1, MAX_UNIT_CHARS + 1):
        run = _periodic_suffix(text, period)
        if run >= max(4 * period, MIN_LOOP_CHARS) and re.search(r"\w", text[len(text) - period :]):
            return len(text) - run + period
    return None


def _periodic_suffix(text: str, period: int) -> int:
    """Length of the longest suffix of `text` that repeats with this period."""
    i = len(text) - 1
    while i - period >= 0 and text[i] == text[i - period]:
        i -= 1
    return len(text) - 1 - i + period if len(text) > period else 0


def _repeat_hold(text: str) -> int:
    """Where text that may be a repetition begins: the unfinished last sentence if it begins like an
    earlier sentence, or the second unit of a short unit repeated at the end (else len(text))."""
    hold = len(text)
    for period in range(1, MAX_UNIT_CHARS + 1):
        run = _periodic_suffix(text, period)
        if run > period and re.search(r"\w", text[len(text) - period :]):
            hold = min(hold, len(text) - run + period)
    sentences = list(_sentences(text))
    if sentences:
        partial = _normal(OPEN_MARKER.sub("", sentences[-1][1]))  # "… flowerpot [" begins like "… flowerpot [1]."
        if _LIST_MARK.fullmatch(partial) or partial.isdigit():  # "4" / "4." may open a repeated item: hold it
            hold = min(hold, sentences[-1][0])
        elif partial and any(_normal(s).startswith(partial) for _, s in sentences[:-1]):
            hold = min(hold, _list_item_start(sentences, len(sentences) - 1))
    return hold


def _list_item_start(sentences: list[tuple[int, str]], i: int) -> int:
    """Where sentence i starts, with the bare list number or bullet ("4.", "-") just before it."""
    if i > 0 and _LIST_MARK.fullmatch(sentences[i - 1][1]):
        return sentences[i - 1][0]
    return sentences[i][0]


def _sentences(text: str):
    """(start, sentence) pairs: sentences end at . ! ? before whitespace, CJK full stops, and newlines.
    Lines of code blocks are left out: a command may well be shown twice."""
    code = False
    for match in _SENTENCE.finditer(text):
        sentence = match.group().strip()
        if sentence.startswith("```"):
            code = not code
        elif sentence and not code:
            yield match.start() + len(match.group()) - len(match.group().lstrip()), sentence


def _complete(sentence: str, start: int, text: str) -> bool:
    return start + len(sentence) < len(text.rstrip()) or sentence[-1:] in ".!?。！？"


def _normal(sentence: str) -> str:
    return " ".join(MARKER.sub("", sentence).lower().split())


def _refusal_form(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").split())


def _may_open_as_refusal(text: str) -> bool:
    """The reply so far is the beginning of a refusal opener, or begins with one."""
    flat = _refusal_form(text)
    return bool(flat) and any(o.startswith(flat) or flat.startswith(o) for o in REFUSAL_OPENERS)


def _opens_as_refusal(text: str) -> bool:
    flat = _refusal_form(text)
    return any(flat.startswith(o) for o in REFUSAL_OPENERS)
