"""Split loaded blocks into chunks measured in tokens of the embedder's own tokenizer.

Defaults (why): 256 tokens per chunk fits all-MiniLM-L6-v2's 256-token window without truncation and is
a paragraph or two of prose (~1,000 English characters), small enough that five sources fit a small
LLM's prompt and big enough to carry context; 32 tokens of overlap (~1 sentence) keeps a fact that
straddles a cut retrievable from both sides.

Rules: consecutive small blocks (sections) on the same page are packed together up to the budget; a
chunk never spans two PDF pages (so a citation's page is exact); cuts fall on whitespace, preferring
paragraph then sentence ends, and between characters only in CJK text, which has no spaces. A single
"word" longer than the budget (a URL, a base64 blob) is the one case cut inside.
This module does not load files or compute embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ingest.errors import InvalidOption
from ingest.loaders import Block

DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32

Spans = list[tuple[int, int]]
TokenSpans = Callable[[str], Spans]  # text -> character span of each token (no special tokens)

_SENTENCE_END = frozenset(".!?。！？；;:")


@dataclass(frozen=True)
class ChunkConfig:
    max_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS

    def __post_init__(self) -> None:
        if self.max_tokens < 8 or not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise InvalidOption(
                f"chunking of {self.max_tokens} tokens with {self.overlap_tokens} overlap",
                "need max_tokens >= 8 and 0 <= overlap_tokens < max_tokens / 2",
            )


@dataclass(frozen=True)
class Chunk:
    text: str  # normalised for search (ingest/normalize.py); the original is text[start:end] of the source
    start: int  # character offsets into the page text (PDF) or the file text (others)
    end: int
    page: int | None
    heading: tuple[str, ...]
    tokens: int
    ocr: float | None = None  # the page's mean OCR confidence when its text was read by OCR


def chunk_blocks(blocks: Sequence[Block], spans: TokenSpans, config: ChunkConfig = ChunkConfig()) -> list[Chunk]:
    """Chunk one document's blocks. `spans` gives token character spans for a text."""
    chunks: list[Chunk] = []
    group: list[tuple[Block, int]] = []
    for block in blocks:
        token_spans = spans(block.text)
        n = len(token_spans)
        fits = sum(t for _, t in group) + n <= config.max_tokens
        if group and (not fits or group[0][0].page != block.page or group[0][0].ocr != block.ocr):
            chunks.append(_join(group))
            group = []
        if n > config.max_tokens:
            chunks.extend(_split(block, token_spans, config))
        elif block.text.strip():
            group.append((block, n))
    if group:
        chunks.append(_join(group))
    return chunks


def _join(group: list[tuple[Block, int]]) -> Chunk:
    blocks = [b for b, _ in group]
    text = "\n\n".join(b.text.strip() for b in blocks)
    first, last = blocks[0].text, blocks[-1].text
    start = blocks[0].span(len(first) - len(first.lstrip()), len(first))[0]
    end = blocks[-1].span(0, len(last.rstrip()))[1]
    tokens = sum(n for _, n in group)
    return Chunk(text, start, end, blocks[0].page, _common_heading(blocks), tokens, blocks[0].ocr)


def _common_heading(blocks: list[Block]) -> tuple[str, ...]:
    """The heading path all packed blocks share (empty if none: better no section than a wrong one)."""
    prefix = blocks[0].heading
    for b in blocks[1:]:
        n = 0
        while n < min(len(prefix), len(b.heading)) and prefix[n] == b.heading[n]:
            n += 1
        prefix = prefix[:n]
    return prefix


def _split(block: Block, spans: Spans, config: ChunkConfig) -> Iterator[Chunk]:
    text, n, s = block.text, len(spans), 0
    while s < n:
        e = min(s + config.max_tokens, n)
        if e < n:
            e = _best_cut(text, spans, s + config.max_tokens // 2, e)
        a, b = spans[s][0], spans[e - 1][1]
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        piece = piece.strip()
        if piece:
            start, end = block.span(a + lead, a + lead + len(piece))
            yield Chunk(piece, start, end, block.page, block.heading, e - s, block.ocr)
        if e >= n:
            break
        nxt = max(e - config.overlap_tokens, s + 1)
        while nxt < e and not _boundary(text, spans, nxt):
            nxt += 1
        s = nxt


def _best_cut(text: str, spans: Spans, lo: int, hi: int) -> int:
    """The best token index in (lo, hi] to cut before: paragraph > sentence > word > CJK char."""
    best, best_rank = hi, 0
    for j in range(hi, lo, -1):
        rank = _rank(text, spans, j)
        if rank > best_rank:
            best, best_rank = j, rank
            if rank == 4:
                break
    return best


def _rank(text: str, spans: Spans, j: int) -> int:
    gap = text[spans[j - 1][1] - 1 : spans[j][0] + 1]
    if "\n\n" in gap:
        return 4
    if not _boundary(text, spans, j):
        return 0
    before = text[: spans[j - 1][1]].rstrip()
    if before and before[-1] in _SENTENCE_END:
        return 3
    return 2 if any(c.isspace() for c in gap) else 1


def _boundary(text: str, spans: Spans, j: int) -> bool:
    """True if a cut before token j splits no word: whitespace around it, or CJK on either side."""
    if j <= 0 or j >= len(spans):
        return True
    left, right = spans[j - 1][1], spans[j][0]
    gap = text[max(left - 1, 0) : right + 1]
    if any(c.isspace() for c in gap):
        return True
    return _is_cjk(text[left - 1]) or _is_cjk(text[right]) if 0 < left and right < len(text) else True


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF  # kana
        or 0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= o <= 0xD7AF  # hangul
        or 0xF900 <= o <= 0xFAFF
        or 0x3000 <= o <= 0x303F  # CJK punctuation
        or 0xFF00 <= o <= 0xFFEF  # full-width forms
    )
