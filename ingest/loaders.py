"""Turn one file into text blocks that keep where they came from (page, heading path, char offset).

One loader per format, picked by suffix from `LOADERS`; anything else raises `UnsupportedFile`. A file
that has a loader but cannot be read raises `LoadError` with a one-line reason. Loaders never chunk,
embed or write: they only read.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import LoadError, UnsupportedFile

SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Block:
    """A run of text from one place in a document.

    `start`/`end` are character offsets into the page's text (PDF) or the whole file's text (others).
    """

    text: str
    start: int
    end: int
    page: int | None = None
    heading: tuple[str, ...] = ()


def load(path: Path) -> list[Block]:
    """Load `path` with the loader for its suffix. Raises UnsupportedFile or LoadError."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedFile(f"unsupported file type '{path.suffix or path.name}'")
    blocks = loader(path)
    if not any(b.text.strip() for b in blocks):
        raise LoadError("no extractable text")
    return blocks


def load_pdf(path: Path) -> list[Block]:
    """One block per page (1-based page numbers), text extracted by pypdf."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    _check_magic(path, b"%PDF", "PDF")
    try:
        with warnings.catch_warnings():
            # pypdf warns on every recoverable oddity; those are not the user's problem.
            warnings.simplefilter("ignore")
            reader = PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):
                raise LoadError("encrypted PDF: a password is required")
            blocks = []
            for number, page in enumerate(reader.pages, start=1):
                text = _clean(page.extract_text() or "")
                if text.strip():
                    blocks.append(Block(text, 0, len(text), page=number))
    except LoadError:
        raise
    except FileNotDecryptedError:
        raise LoadError("encrypted PDF: a password is required") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise LoadError(f"corrupt PDF: {exc}") from None
    if not blocks:
        raise LoadError("no extractable text (a scanned PDF without a text layer?)")
    return blocks


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")  # CommonMark: closing #s follow a space
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def load_markdown(path: Path) -> list[Block]:
    """One block per heading section; each carries its heading path ("Install > Linux")."""
    text = read_text(path)
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    start, heading, fence, pos = 0, (), "", 0
    for line in text.splitlines(keepends=True):
        opener = _FENCE.match(line)
        if opener and not fence:
            fence = opener.group(1)
        elif opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
            fence = ""  # only a fence of the same character, at least as long, closes a code block
        match = None if fence else _ATX.match(line.rstrip("\r\n"))
        if match:
            _append(blocks, text, start, pos, heading)
            level = len(match.group(1))
            stack = [(lvl, title) for lvl, title in stack if lvl < level] + [(level, match.group(2))]
            start, heading = pos, tuple(title for _, title in stack)
        pos += len(line)
    _append(blocks, text, start, len(text), heading)
    return blocks


def load_text(path: Path) -> list[Block]:
    """One block per file; paragraphs are found later by the chunker."""
    text = read_text(path)
    return [Block(text, 0, len(text))]


def read_text(path: Path) -> str:
    """Read a text file: UTF-8 first, else the detected encoding; binary content is refused."""
    data = path.read_bytes()
    if not data.strip():
        raise LoadError("empty file")
    if b"\x00" in data[:SNIFF_BYTES] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFile("binary content in a text file")
    try:
        return _clean(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise UnsupportedFile("not text: no encoding fits its bytes")
    # Short Western texts decode equally cleanly in several code pages; among the cleanest, prefer
    # Windows-1252 (what "Latin-1" files almost always are), else the detector's first choice.
    cleanest = [m for m in matches if m.chaos <= matches[0].chaos]
    best = next((m for m in cleanest if m.encoding == "cp1252"), matches[0])
    return _clean(str(best))


def _append(blocks: list[Block], text: str, start: int, end: int, heading: tuple[str, ...]) -> None:
    if text[start:end].strip():
        blocks.append(Block(text[start:end], start, end, heading=heading))


def _check_magic(path: Path, magic: bytes, kind: str) -> None:
    with path.open("rb") as f:
        head = f.read(1024)
    if not head:
        raise LoadError("empty file")
    if magic not in head:
        raise UnsupportedFile(f"not a {kind}: its content does not start like one")


def _clean(text: str) -> str:
    # Normalise newlines so offsets are stable; drop NULs some PDF extractors emit.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


LOADERS: dict[str, Callable[[Path], list[Block]]] = {
    ".pdf": load_pdf,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
}
