"""The pieces every loader shares: the `Block` type, safe text decoding, content sniffing, heading paths.

`read_text`/`decode_text` turn bytes into text (UTF-8 first, else a declared or detected encoding) and
refuse binary content; `cut` turns a text plus its heading positions into Blocks; `bound` splits
oversized Blocks so later stages work on bounded pieces. This module reads no file format itself (the
loaders in ingest/loaders.py, ingest/markup.py and ingest/zipped.py do) and never chunks or embeds.
"""

from __future__ import annotations

import codecs
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.errors import LoadError, UnsupportedFile
from ingest.normalize import normalize, source_span

SNIFF_BYTES = 8192
MAX_FILE_BYTES = 256 * 2**20  # above this a file is refused before it is read
MAX_MARKUP_BYTES = 32 * 2**20  # HTML/XML parsed into a tree takes ~25x its size in memory
MAX_BLOCK_CHARS = 64 * 1024  # a bigger Block is split, so the chunker tokenizes bounded pieces

# Signatures of common binary formats, to say what a misnamed file really is.
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF87a": "a GIF image",
    b"GIF89a": "a GIF image",
    b"%PDF-": "a PDF",
    b"PK\x03\x04": "a ZIP archive",
    b"\x1f\x8b": "gzip data",
    b"7z\xbc\xaf\x27\x1c": "a 7z archive",
    b"\x7fELF": "an executable",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "an old MS Office document",
    b"SQLite format 3\x00": "an SQLite database",
}


@dataclass(frozen=True)
class Block:
    """A run of text from one place in a document.

    `start`/`end` are character offsets into the page's text (PDF), the whole file's text (text, Markdown,
    reStructuredText, source code) or the text extracted from the document (DOCX, HTML, EPUB). Once
    `normalized`, `text` is the searchable form and `offsets` maps it back: `span(a, b)` is where
    text[a:b] came from in that original text.
    """

    text: str
    start: int
    end: int
    page: int | None = None
    heading: tuple[str, ...] = ()
    ocr: float | None = None  # mean OCR confidence when the text was read by OCR, else None (a text layer)
    offsets: tuple | None = field(default=None, compare=False, repr=False)

    def span(self, a: int, b: int) -> tuple[int, int]:
        """Original offsets (into the page or file text) of this block's text[a:b], for a < b."""
        s, e = source_span(self.offsets, a, b)
        return self.start + s, self.start + e

    def normalized(self) -> Block:
        """This block with searchable text (see ingest/normalize.py) and offsets back to the original."""
        if self.offsets is not None:
            return self
        text, offsets = normalize(self.text)
        heading = tuple(normalize(h)[0] for h in self.heading)
        if offsets is None and heading == self.heading:
            return self
        return replace(self, text=text, heading=heading, offsets=offsets)


# -- text ---------------------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """Read a text file: UTF-8 first, else the detected encoding; binary content is refused."""
    return decode_text(path.read_bytes())


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode text bytes: a BOM, else UTF-8, else `declared` (if it decodes), else the detected encoding.

    Raises LoadError for empty input and UnsupportedFile for binary content.
    """
    if not data or data.isspace():
        raise LoadError("empty file")
    refuse_binary(data)
    for encoding in ("utf-8-sig", declared):
        text = _try_decode(data, encoding)
        if text is not None:
            return clean(text)
    return clean(_detect(data))


def refuse_binary(data: bytes) -> None:
    """Raise UnsupportedFile if `data` starts like a known binary format or has NULs (UTF-16 with a BOM is text)."""
    kind = next((kind for magic, kind in _MAGIC.items() if data.startswith(magic)), None)
    if kind:
        raise UnsupportedFile(f"binary content in a text file: it looks like {kind}")
    if b"\x00" in data[:SNIFF_BYTES] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFile("binary content in a text file")


def _try_decode(data: bytes, encoding: str | None) -> str | None:
    if not encoding:
        return None
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _detect(data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise UnsupportedFile("not text: no encoding fits its bytes")
    # Short Western texts decode equally cleanly in several code pages; among the cleanest, prefer
    # Windows-1252 (what "Latin-1" files almost always are), else the detector's first choice.
    cleanest = [m for m in matches if m.chaos <= matches[0].chaos]
    best = next((m for m in cleanest if m.encoding == "cp1252"), matches[0])
    return str(best)


def clean(text: str) -> str:
    """Normalise newlines so offsets are stable; drop NULs some extractors emit."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def known_encoding(name: str | None) -> str | None:
    """The codec for a declared charset, or None if Python does not know it."""
    try:
        codec = codecs.lookup(name.strip()).name if name else None
    except LookupError:
        return None
    # Browsers (and the HTML standard) read a declared Latin-1 or ASCII page as Windows-1252.
    return "cp1252" if codec in ("latin-1", "iso8859-1", "ascii") else codec


# -- binary containers ----------------------------------------------------------------------------------


def check_magic(path: Path, magic: bytes, kind: str) -> None:
    """Raise LoadError for an empty file, UnsupportedFile if `magic` is not in its first 1 KiB."""
    with path.open("rb") as f:
        head = f.read(1024)
    if not head:
        raise LoadError("empty file")
    if magic not in head:
        raise UnsupportedFile(f"not {kind}: its content does not start like one")


def check_zip(path: Path, member: str, kind: str) -> None:
    """Check `path` is a readable ZIP holding `member` (at most MAX_MARKUP_BYTES), all within MAX_FILE_BYTES unpacked."""
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        raise LoadError("empty file")
    if head != b"PK\x03\x04":
        raise UnsupportedFile(f"not {kind}: its content is not a ZIP package")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise LoadError(f"corrupt {kind.split()[-1]}: {describe(exc)}") from None
    sizes = {i.filename: i.file_size for i in infos}
    if member not in sizes:
        raise UnsupportedFile(f"not {kind}: a ZIP file without {member}")
    # a zip bomb, or just huge: either way it is not unpacked into memory
    refuse_size(sum(sizes.values()), MAX_FILE_BYTES, " unpacked")
    refuse_size(sizes[member], MAX_MARKUP_BYTES, f" of {member}")


def refuse_size(size: int, limit: int = MAX_FILE_BYTES, what: str = "") -> None:
    """Raise LoadError if `size` bytes (of `what`) is over `limit`."""
    if size > limit:
        raise LoadError(f"too large ({size // 2**20} MB{what} > {limit // 2**20} MB limit)")


def describe(exc: BaseException) -> str:
    """A one-line reason for a library exception."""
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:200]


# -- heading paths and blocks ---------------------------------------------------------------------------

Mark = tuple[int, tuple[str, ...]]  # (offset where a section starts, its heading path)


def nest(stack: list[tuple[int, str]], level: int, title: str) -> list[tuple[int, str]]:
    """The heading stack after a heading of `level`: deeper or equal headings are closed."""
    return [(lvl, t) for lvl, t in stack if lvl < level] + [(level, title)]


def path_of(stack: list[tuple[int, str]]) -> tuple[str, ...]:
    return tuple(title for _, title in stack)


def cut(text: str, marks: Sequence[Mark]) -> list[Block]:
    """Blocks for `text` cut at each mark (sorted offsets); text before the first mark has no heading.

    Whitespace-only sections are dropped; every Block's text is `text[start:end]`.
    """
    bounds = [(0, ())] + [m for m in marks if m[0] > 0]
    if marks and marks[0][0] == 0:
        bounds[0] = marks[0]
    ends = [start for start, _ in bounds[1:]] + [len(text)]
    return [
        Block(text[start:end], start, end, heading=heading)
        for (start, heading), end in zip(bounds, ends, strict=True)
        if text[start:end].strip()
    ]


def bound(blocks: Sequence[Block], limit: int = MAX_BLOCK_CHARS) -> Iterator[Block]:
    """Yield `blocks` with any longer than `limit` characters split into consecutive pieces.

    Cuts fall after a blank line if one is in the second half of the window, else after a line end,
    else at the limit; each piece keeps the block's page and heading and exact offsets.
    """
    for block in blocks:
        if len(block.text) <= limit:
            yield block
            continue
        text, pos = block.text, 0
        while pos < len(text):
            end = _cut_point(text, pos, limit)
            yield replace(block, text=text[pos:end], start=block.start + pos, end=block.start + end)
            pos = end


def _cut_point(text: str, pos: int, limit: int) -> int:
    hard = pos + limit
    if hard >= len(text):
        return len(text)
    floor = pos + limit // 2
    for sep in ("\n\n", "\n"):
        found = text.rfind(sep, floor, hard)
        if found != -1:
            return found + len(sep)
    return hard
