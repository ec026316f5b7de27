"""Check an answer's [n] citations against the sources the model was given, sentence by sentence.

After generation: every [n] marker is checked against the numbered sources; markers naming no source
are removed from the text and reported; the answer is split into sentences, each with the sources it
cites (a marker right after a sentence's full stop belongs to that sentence); and for every cited
source the sentence of its text that best supports the citing sentences is picked as the snippet to
show (most shared words; CJK compared character by character).
Each sentence is then judged against the sources (`backing`: the share of its content words a source
holds, 0 when the source lacks a number the sentence states): `Sentence.supported` when some source
holds at least MIN_SUPPORT of it. A model-written [n] whose source doesn't back its sentence is no
citation (`Answer.unsupported_citations`; its source is not "cited"), and a sentence citing only such
sources is re-pointed to the one that does back it, if any.
A sentence the model left uncited is attributed to the source that backs it best, when that reaches
MIN_SUPPORT: `Sentence.attributed` and `Evidence.added` say so, so model-written and checker-added
citations stay apart. The text is never changed beyond dropping markers that name no source.
This module does not generate, retrieve or decide refusals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.markers import LEADING_MARKERS, MARKER, MARKER_START, filter_markers, numbers_in, numbers_of, strip_markers
from rag.types import Evidence, Sentence, Source

# A sentence ends at . ! ? before a capital, digit, quote or bracket (not inside "Y. pestis" or "e.g. this"),
# at . ! ? glued to a following [n], and after CJK full stops.
_SENTENCE_END = re.compile(
    r"(?<=[.!?])\s+(?=[A-Z0-9\"“'‘(\[]|[^\x00-\x7f])|(?<=[.!?])(?=" + MARKER_START.pattern + r")|(?<=[。！？；])"
)
_PARAGRAPH = re.compile(r"\n\s*\n|\n(?=#)|(?m:(?<=^#)[^\n]*\n)")
_LIST_NUMBER = re.compile(r"\d{1,3}[.)]")
_LIST_PREFIX = re.compile(r"^\s*\d{1,3}[.)]\s+")
CJK_CHARS = "\u3400-\u9fff\uf900-\ufaff"  # each one a word of its own
WORD = re.compile(f"[{CJK_CHARS}]|[^\\W_]+", re.UNICODE)
MIN_SUPPORT = 0.6
SUPPORT_MARGIN = 0.15
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were what when "
    "where which who why how with did does do not no according information provided source sources based "
    "text".split()
)


@dataclass(frozen=True)
class Checked:
    """An answer text after checking: invalid markers removed, split into cited sentences."""

    text: str
    sentences: tuple[Sentence, ...]
    evidence: tuple[Evidence, ...]
    invalid: tuple[int, ...]
    unsupported: tuple[int, ...] = ()  # valid numbers dropped because their source doesn't say it


def check(text: str, sources: Sequence[Source], *, attribute: bool = True) -> Checked:
    """Validate the [n] markers in `text` against `sources` (numbered from 1) and mark each sentence
    supported or not; with `attribute`, cite uncited sentences that one source clearly supports. Only
    markers naming no source leave the text: it reads as the model wrote it."""
    invalid: dict[int, None] = {}
    cleaned = filter_markers(text, lambda n: 1 <= n <= len(sources), invalid)
    sentences, unsupported = _verify(split_sentences(cleaned), sources)
    written = {n for s in sentences if not s.attributed for n in s.citations}
    sentences = _attribute(sentences, sources, cite=attribute)
    evidence = []
    for n in dict.fromkeys(n for s in sentences for n in s.citations):
        citing = " ".join(s.text for s in sentences if n in s.citations)
        evidence.append(Evidence(n, sources[n - 1], best_snippet(sources[n - 1].text, citing), n not in written))
    return Checked(cleaned, tuple(sentences), tuple(evidence), tuple(invalid), unsupported)


def _verify(sentences: list[Sentence], sources: Sequence[Source]) -> tuple[list[Sentence], tuple[int, ...]]:
    """Check each model-written citation against what its sentence says (`backing`). Cited sources that
    back it less than MIN_SUPPORT, or much less (by more than SUPPORT_MARGIN) than the best cited one,
    are dropped from the sentence's citations; if none of the cited ones backs it but another source
    does, the citation is re-pointed there (as an attributed citation); if no source backs it, the
    sentence is unsupported and cites nothing. The text keeps the markers as written."""
    out: list[Sentence] = []
    dropped_all: dict[int, None] = {}  # an ordered set
    for sentence in sentences:
        if not sentence.citations:
            out.append(sentence)
            continue
        best, best_score = _best_source(sentence.text, sources)
        claims = _claims(sentence.text)
        cited = {n: backing(claims.get(n) or sentence.text, sources[n - 1].text) for n in sentence.citations}
        cited_best = max(cited.values())
        if cited_best >= MIN_SUPPORT:
            floor = max(MIN_SUPPORT, cited_best - SUPPORT_MARGIN)
            keep = tuple(n for n in sentence.citations if cited[n] >= floor)
            checked = Sentence(sentence.text, keep, supported=True, support=cited_best)
        elif best_score >= MIN_SUPPORT:
            keep = ()
            checked = Sentence(sentence.text, (best + 1,), attributed=True, supported=True, support=best_score)
        else:
            keep = ()
            checked = Sentence(sentence.text, (), supported=False, support=max(cited_best, best_score))
        for n in sentence.citations:
            if n not in keep:
                dropped_all.setdefault(n)
        out.append(checked)
    return out, tuple(dropped_all)


def _claims(sentence: str) -> dict[int, str]:
    """For each [n] in a sentence, the words written between the previous marker and it, when there are
    content words there ("Eggs [2] and a red button [3]"); a citation without its own clause ("according
    to sources [1] and [2], …") is checked against the whole sentence."""
    claims: dict[int, str] = {}
    start = 0
    for match in MARKER.finditer(sentence):
        clause = sentence[start : match.start()]
        start = match.end()
        if words(clause):
            for n in numbers_of(match):
                claims.setdefault(n, clause)
    return claims


def support(sentence: str, source_text: str) -> float:
    """Share of the sentence's content words that occur in the source text."""
    wanted = set(words(sentence))
    return len(wanted & set(words(source_text))) / len(wanted) if wanted else 0.0


def backing(claim: str, source_text: str) -> float:
    """How well a source backs a claim: `support`, but 0.0 when the claim has a number the source lacks
    (a wrong date or amount is not backed by a source that shares the other words), and 0.0 for a claim
    of numbers only."""
    claim = _LIST_PREFIX.sub("", claim)  # "4. The key is…": the item's number is no claim
    numbers = {w for w in words(claim) if w.isdigit()}
    if numbers == set(words(claim)):  # "3." or "2026": a number alone says nothing a source could back
        return 0.0
    return support(claim, source_text) if numbers <= set(words(source_text)) else 0.0


def _attribute(sentences: list[Sentence], sources: Sequence[Source], cite: bool = True) -> list[Sentence]:
    """Mark each uncited sentence supported if one source backs it (>= MIN_SUPPORT) and, with `cite`,
    cite that source; a sentence without content words ("Yes.") needs no source. The text is left as
    the model wrote it, so the answer reads the same whether it was streamed or returned whole."""
    out = []
    for sentence in sentences:
        if sentence.citations:
            out.append(sentence)
            continue
        best, score = _best_source(sentence.text, sources)
        if best >= 0 and score >= MIN_SUPPORT and cite:
            out.append(Sentence(sentence.text, (best + 1,), attributed=True, supported=True, support=score))
        else:
            supported = score >= MIN_SUPPORT or not words(sentence.text)
            out.append(Sentence(sentence.text, (), supported=supported, support=score))
    return out


def _best_source(sentence: str, sources: Sequence[Source]) -> tuple[int, float]:
    """(index of the source that backs `sentence` best, its backing); (-1, 0.0) without sources."""
    scores = [backing(sentence, s.text) for s in sources]
    if not scores:
        return -1, 0.0
    best = max(range(len(scores)), key=scores.__getitem__)
    return best, scores[best]


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of an answer with the source numbers each cites; markers that open a sentence (written
    after the previous sentence's full stop) are credited to the previous sentence."""
    parts = [p.strip() for p in _SENTENCE_END.split(text) if p and p.strip()]
    for i in range(len(parts) - 1, 0, -1):  # "4." of a numbered list opens the sentence after it
        if _LIST_NUMBER.fullmatch(parts[i - 1]):
            parts[i - 1 : i + 1] = [parts[i - 1] + " " + parts[i]]
    out: list[tuple[str, list[int]]] = []
    for part in parts:
        lead = LEADING_MARKERS.match(part)
        if lead and out:
            out[-1][1].extend(numbers_in(lead.group(1)))
            out[-1] = (out[-1][0] + " " + lead.group(1).strip(), out[-1][1])
            part = part[lead.end() :].strip()
            if not part:
                continue
        out.append((part, numbers_in(part)))
    return [Sentence(body, tuple(dict.fromkeys(numbers))) for body, numbers in out]


def best_snippet(source_text: str, claim: str, width: int = 240) -> str:
    """The sentence of `source_text` sharing the most words with `claim` (ties: the earliest)."""
    wanted = set(words(claim))
    paragraphs = _PARAGRAPH.split(source_text)  # a heading line or paragraph break ends a sentence too
    sentences = [s.text for p in paragraphs for s in split_sentences(" ".join(p.split()))]
    candidates = [s for s in sentences if tokens(s)] or [source_text]  # not a heading's bare "#"
    best = max(candidates, key=lambda s: len(wanted & set(words(s))))
    return best if len(best) <= width else best[: width - 1].rstrip() + "…"


def words(text: str) -> list[str]:
    """Lower-cased content words (CJK: single characters), without markers and common stop words."""
    return [w for w in tokens(text) if w not in _STOP]


def tokens(text: str) -> list[str]:
    """Lower-cased words (CJK: single characters), stop words included, without markers."""
    return WORD.findall(strip_markers(text).lower())
