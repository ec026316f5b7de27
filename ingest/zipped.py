"""Loaders for zip-packaged documents: Word (.docx, by python-docx) and EPUB e-books (by ebooklib).

Both are sniffed first (a ZIP with the expected member, unpacked size within `MAX_FILE_BYTES`), then
their text is extracted and Blocks are slices of that extracted text, cut at headings. This module
does not read headers, footers, comments, footnotes or text boxes of a DOCX, nor images, and it cannot
open DRM-protected e-books.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from ingest.blocks import Block, Mark, check_zip, cut, describe, nest, path_of
from ingest.errors import LoadError, UnsupportedFile
from ingest.markup import decode_html, html_to_markdown, split_markdown

_HEADING_STYLE = re.compile(r"heading ([1-9])")

# -- DOCX -----------------------------------------------------------------------------------------------


def load_docx(path: Path) -> list[Block]:
    """One block per Title/Heading 1-9 section, with its heading path; body paragraphs and table rows."""
    import docx

    check_zip(path, "word/document.xml", "a DOCX")
    try:
        document = docx.Document(str(path))
        parts = list(_docx_parts(document))
    except Exception as exc:  # python-docx, lxml and zipfile raise many unrelated types on damaged files
        raise LoadError(f"corrupt DOCX: {describe(exc)}") from None
    text, marks = _join(parts)
    return cut(text, marks)


def _docx_parts(document) -> Iterator[tuple[int | None, str]]:
    """(heading level or None for body text, text) for each paragraph and table, in document order."""
    from docx.table import Table

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            yield None, _table_text(item)
        else:
            yield _heading_level(item.style), item.text


def _heading_level(style) -> int | None:
    """0 for Title, N for Heading N; custom styles count as the built-in heading they are based on."""
    for _ in range(8):  # base styles form a chain; a broken file could make it a loop
        if style is None:
            return None
        name = (style.name or "").lower()
        if name == "title":
            return 0
        match = _HEADING_STYLE.fullmatch(name)
        if match:
            return int(match.group(1))
        style = style.base_style
    return None


def _table_text(table) -> str:
    rows = []
    for row in table.rows:
        cells = [" ".join(cell.text.split()) for cell in row.cells]
        # a merged cell is returned once per grid column it spans: keep it once
        cells = [c for i, c in enumerate(cells) if c and (i == 0 or c != cells[i - 1])]
        rows.append(" | ".join(cells))
    return "\n".join(r for r in rows if r)


def _join(parts: Iterable[tuple[int | None, str]]) -> tuple[str, list[Mark]]:
    """Join non-empty parts with blank lines; mark where each heading starts, with its path."""
    texts: list[str] = []
    marks: list[Mark] = []
    stack: list[tuple[int, str]] = []
    pos = 0
    for level, part in parts:
        part = part.strip()
        if not part:
            continue
        if level is not None:
            stack = nest(stack, level, " ".join(part.split()))
            marks.append((pos, path_of(stack)))
        texts.append(part)
        pos += len(part) + 2
    return "\n\n".join(texts), marks


# -- EPUB -----------------------------------------------------------------------------------------------


def load_epub(path: Path) -> list[Block]:
    """Chapters in reading order, each block headed by its chapter's TOC title (else its first heading)."""
    check_zip(path, "META-INF/container.xml", "an EPUB")
    book = _read_epub(path)
    titles = _toc_titles(book.toc)
    chapters = [(titles.get(name), text) for name, text in _chapters(book)]
    if not chapters:
        raise LoadError("no readable chapters (a DRM-protected EPUB?)")
    blocks: list[Block] = []
    pos = 0
    for title, text in chapters:
        blocks.extend(_chapter_blocks(title, text, pos))
        pos += len(text) + 1  # chapters' texts end in "\n" and are joined by another
    return blocks


def _read_epub(path: Path):
    from ebooklib import epub

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return epub.read_epub(str(path), options={"ignore_ncx": True})
    except Exception as exc:  # ebooklib, lxml and zipfile raise many unrelated types on damaged files
        raise LoadError(f"corrupt EPUB: {describe(exc)}") from None


def _toc_titles(toc, titles: dict[str, str] | None = None) -> dict[str, str]:
    """Map each chapter file named in the table of contents to its first title there."""
    titles = {} if titles is None else titles
    for entry in toc:
        if isinstance(entry, tuple | list):
            section, children = entry
            _add_title(titles, section)
            _toc_titles(children, titles)
        else:
            _add_title(titles, entry)
    return titles


def _add_title(titles: dict[str, str], entry) -> None:
    href, title = getattr(entry, "href", "") or "", " ".join((getattr(entry, "title", "") or "").split())
    if href and title:
        titles.setdefault(href.split("#")[0], title)


def _chapters(book) -> Iterator[tuple[str, str]]:
    """(file name, chapter text as Markdown) for each readable document in the spine."""
    from ebooklib import epub

    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if not isinstance(item, epub.EpubHtml) or isinstance(item, epub.EpubNav):
            continue
        try:
            page = decode_html(item.get_content())
        except (LoadError, UnsupportedFile):
            continue  # an empty or undecodable chapter (a blank page, an encrypted file) is skipped
        text = html_to_markdown(page, all_content=True)
        if text.strip():
            yield item.get_name(), text


def _chapter_blocks(title: str | None, text: str, offset: int) -> Iterator[Block]:
    """The chapter's heading sections, offsets shifted into the book's text, all under the chapter title.

    The chapter's own first heading is usually its title again: the TOC title replaces it.
    """
    blocks = split_markdown(text)
    first = next((b.heading[0] for b in blocks if b.heading), None)
    title = title or first
    for b in blocks:
        path = b.heading[1:] if b.heading[:1] == (first,) else b.heading
        yield Block(b.text, b.start + offset, b.end + offset, None, (title, *path) if title else path)
