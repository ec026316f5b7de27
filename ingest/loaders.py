"""Turn one file into text blocks that keep where they came from (page, heading path, char offset).

One loader per format, picked by suffix from `LOADERS`:

    suffix                       loader          one Block per ...
    .pdf                         load_pdf        page (1-based `page`); pypdf (PDFium for pages that lost their
                                                 spaces); `password` opens encrypted files
    .md .markdown                load_markdown   ATX heading section; heading path "Install > Linux"
    .rst                         load_rst        docutils section; heading path from the section titles
    .html .htm .xhtml            load_html       heading section of the main text (trafilatura drops nav/footer)
    .docx                        load_docx       Title/Heading 1-9 section; body paragraphs and table rows
    .epub                        load_epub       heading section of each chapter, under the chapter's TOC title
    .txt + SOURCE_SUFFIXES       load_text       file (code and config as plain text; the chunker finds paragraphs)

Anything else raises `UnsupportedFile`; so does content that is not what the name says (PNG bytes named
.txt, a text file named .docx). A file that has a loader but cannot be read raises `LoadError` with a
one-line reason (empty, corrupt, encrypted, over `MAX_FILE_BYTES`); loaders raise nothing else. Blocks
over `MAX_BLOCK_CHARS` are split at blank lines, keeping exact offsets, so memory stays bounded; then each
block's text is normalised for search (ingest/normalize.py), its offsets still pointing at the original.
Loaders never chunk, embed or write: they only read.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.blocks import (
    MAX_BLOCK_CHARS,
    MAX_FILE_BYTES,
    SNIFF_BYTES,
    Block,
    bound,
    check_magic,
    clean,
    describe,
    read_text,
    refuse_size,
)
from ingest.errors import LoadError, UnsupportedFile
from ingest.markup import load_html, load_markdown, load_rst
from ingest.zipped import load_docx, load_epub

if TYPE_CHECKING:
    from pypdf import PdfReader

# pypdf logs every recoverable oddity; without a handler Python prints them all to stderr mid-run.
logging.getLogger("pypdf").addHandler(logging.NullHandler())

__all__ = [
    "LOADERS",
    "LOADER_VERSION",
    "MAX_BLOCK_CHARS",
    "MAX_FILE_BYTES",
    "SNIFF_BYTES",
    "Block",
    "load",
    "read_text",
]

Loader = Callable[[Path], list[Block]]

# Bumped whenever a change here could turn a failed file into a readable one (or change what is read):
# files that failed under another version are tried again by the next index run.
LOADER_VERSION = 2  # 2: normalised text, PDFium for run-together pages, fontTools for CFF fonts


def load(path: Path, *, password: str | None = None) -> list[Block]:
    """Load `path` with the loader for its suffix.

    Args:
        path: the file; its suffix (any case) picks the loader from `LOADERS`.
        password: opens an encrypted PDF; ignored by other formats. Default None (no password).

    Raises:
        UnsupportedFile: no loader for the suffix, or the content is not what the suffix says.
        LoadError: a supported file that cannot be read; the message is a one-line reason.
    """
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedFile(f"unsupported file type '{path.suffix or path.name}'")
    try:
        refuse_size(path.stat().st_size)
        blocks = load_pdf(path, password) if loader is load_pdf else loader(path)
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or describe(exc)}") from None
    searchable = [n for n in (b.normalized() for b in bound(blocks)) if n.text.strip()]
    if not searchable:
        raise LoadError("no extractable text")
    return searchable


def load_pdf(path: Path, password: str | None = None) -> list[Block]:
    """One block per page (1-based page numbers), text extracted by pypdf."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    check_magic(path, b"%PDF", "a PDF")
    try:
        with warnings.catch_warnings():
            # pypdf warns on every recoverable oddity; those are not the user's problem.
            warnings.simplefilter("ignore")
            reader = PdfReader(path)
            _decrypt(reader, password)
            blocks = []
            second = _SecondExtractor(path, password)
            for number, page in enumerate(reader.pages, start=1):
                text = clean(page.extract_text() or "")
                if run_together(text) > RUN_TOGETHER_SHARE:  # spaces lost: PDFium may place them better
                    text = _better_spaced(text, second.page_text(number))
                if text.strip():
                    blocks.append(Block(text, 0, len(text), page=number))
    except FileNotDecryptedError:
        raise LoadError("encrypted PDF: a password is required") from None
    except DependencyError as exc:
        raise LoadError(f"encrypted PDF: {describe(exc)}") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise LoadError(f"corrupt PDF: {describe(exc)}") from None
    if not blocks:
        raise LoadError("no extractable text (a scanned PDF without a text layer?)")
    return blocks


# A page whose Latin letters sit mostly in "words" of 20+ letters lost its spaces in extraction (pypdf
# misses word gaps narrower than its threshold). No page of ../shared/data/pdfs scores above 0.13 (German
# compounds and formulas in GeoTopo); a page that lost all its spaces scores near 1.
RUN_TOGETHER_SHARE = 0.3
_LATIN = re.compile(r"[A-Za-z]")
_LONG_RUN = re.compile(r"[A-Za-z]{20,}")


def run_together(text: str) -> float:
    """Share of a page's Latin letters that sit in runs of 20+ letters (0 for pages with under 200)."""
    letters = len(_LATIN.findall(text))
    if letters < 200:
        return 0.0
    return sum(len(m) for m in _LONG_RUN.findall(text)) / letters


def _better_spaced(text: str, other: str) -> str:
    """`other` if it has at least 90% of `text`'s letters and at most half its run-together share."""
    enough = len(_LATIN.findall(other)) >= 0.9 * len(_LATIN.findall(text))
    return other if enough and run_together(other) <= run_together(text) / 2 else text


class _SecondExtractor:
    """PDFium's text layer (pypdfium2), opened only when a page needs it: it places spaces from glyph
    gaps where pypdf's plain extraction runs words together. Any PDFium error gives "" (pypdf's text stays)."""

    def __init__(self, path: Path, password: str | None) -> None:
        self.path, self.password = path, password
        self._doc: Any = None  # a pypdfium2.PdfDocument once opened

    def page_text(self, number: int) -> str:
        try:
            import pypdfium2

            if self._doc is None:
                self._doc = pypdfium2.PdfDocument(str(self.path), password=self.password or None)
            page = self._doc[number - 1]
            return clean(page.get_textpage().get_text_bounded())
        except Exception:  # noqa: BLE001 - a second opinion only; pypdf's text is kept
            return ""


def _decrypt(reader: PdfReader, password: str | None) -> None:
    # Many "encrypted" PDFs only restrict printing/copying: the empty user password opens them.
    if not reader.is_encrypted or reader.decrypt(""):
        return
    if password is None:
        raise LoadError("encrypted PDF: a password is required")
    if not reader.decrypt(password):
        raise LoadError("encrypted PDF: wrong password")


def load_text(path: Path) -> list[Block]:
    """One block per file; paragraphs are found later by the chunker."""
    text = read_text(path)
    return [Block(text, 0, len(text))]


# Plain-text source and config files: indexed verbatim, so a question about the code finds it.
SOURCE_SUFFIXES = (
    # programming languages
    *(".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".go", ".rs", ".java", ".kt", ".kts"),
    *(".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".rb", ".php", ".swift", ".scala", ".lua"),
    *(".pl", ".r", ".jl", ".dart", ".ex", ".exs", ".erl", ".hs", ".ml", ".clj", ".sql"),
    # shells
    *(".sh", ".bash", ".zsh", ".fish", ".ps1"),
    # config and data as text
    *(".toml", ".yaml", ".yml", ".ini", ".cfg", ".conf", ".json", ".csv", ".tsv", ".log"),
    # other plain-text markup, read as text
    *(".text", ".tex", ".org", ".adoc", ".asciidoc"),
)

LOADERS: dict[str, Loader] = {
    ".pdf": load_pdf,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".rst": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".xhtml": load_html,
    ".docx": load_docx,
    ".epub": load_epub,
    ".txt": load_text,
    **dict.fromkeys(SOURCE_SUFFIXES, load_text),
}
