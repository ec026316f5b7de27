"""Where a passage is: its span in a chunk's text, and its boxes on the image of its page.

A cited chunk is shown with its supporting sentence marked; for a PDF page or an image, the page is drawn
with that sentence's boxes on it. The boxes come from PDFium's character boxes on a page with a text layer,
and from OCR's line boxes on a page the index read by OCR. OCR's lines are looked up in the index's OCR
cache by the page's pixels (rendered exactly as indexing rendered them), and read again only when the
cache lacks them.

Text is matched on letters and digits only, NFKC case-folded, so pypdf's text of a page matches PDFium's
and OCR's line by line, and a sentence cut short with "…" matches its start. A passage that matches
nowhere gives no boxes, never a guess.

This module reads documents and renders pages; it knows nothing of HTTP, and writes nothing but OCR
cache entries (derived data, as indexing writes them). PDFium is not thread-safe: every call into it here
holds one lock.
"""

from __future__ import annotations

import ctypes
import io
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from ingest.errors import LoadError
from ingest.loaders import IMAGE_SUFFIXES, render_page, upright
from ingest.ocr import DEFAULT_DPI, Reader
from rag.defaults import DEFAULT_PAGE_WIDTH, MAX_PAGE_WIDTH

MIN_MATCH_SHARE = 0.6  # of a quote's letters a fuzzy match must find, within 1.5x the quote's length
MIN_BLOCK = 3  # letters: shorter common runs are chance
_PDFIUM = threading.Lock()
_PUNCTUATION = ".,;:!?)]}\"'»”’。，；：！？）」』"

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the page's width and height


@dataclass(frozen=True)
class PageView:
    """A passage on its page: `boxes` (x0, y0, x1, y1, as fractions of the page image's width and height,
    from its top left) and where they came from, `kind`: "text" (the PDF's text layer), "ocr" (OCR's
    lines), or "" (the passage was not found on the page, or the document has no page image)."""

    path: str
    page: int | None
    boxes: tuple[Box, ...] = ()
    kind: str = ""


def has_pages(path: str) -> bool:
    """Whether a document has page images: a PDF, or an image file (read by OCR)."""
    suffix = Path(path).suffix.lower()
    return suffix == ".pdf" or suffix in IMAGE_SUFFIXES


def find_span(text: str, quote: str) -> tuple[int, int] | None:
    """The (start, end) of `quote` in `text`, matched on letters and digits only; a near match (at least
    60% of the quote's letters, in order, within 1.5x its length) if there is no exact one; else None."""
    hay, where = _fold(text)
    needle, _ = _fold(quote)
    found = _match(hay, needle)
    if found is None:
        return None
    start, end = where[found[0]], where[found[1] - 1] + 1
    tail = quote.rstrip(" …")[len(quote.rstrip(" …").rstrip(_PUNCTUATION)) :]  # "." of a full sentence
    return start, end + len(tail) if tail and text.startswith(tail, end) else end


def page_image(path: Path, page: int | None, width: int = DEFAULT_PAGE_WIDTH) -> bytes:
    """Page `page` (1-based; None for a single image) of a PDF or an image file as PNG, `width` pixels
    wide (at most MAX_PAGE_WIDTH; an image is never enlarged). Raises LoadError if it can't be drawn."""
    width = max(100, min(int(width), MAX_PAGE_WIDTH))
    if path.suffix.lower() == ".pdf":
        with _pdf_page(path, page) as pdf_page:
            image = render_page(pdf_page, max(1, round(72 * width / max(pdf_page.get_width(), 1.0))))
    else:
        image = _frame(path, page)
        if image.width > width:
            image = image.resize((width, max(1, round(image.height * width / image.width))))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def locate(path: Path, page: int | None, quote: str, *, ocr: bool, ocr_cache: Any = None) -> PageView:
    """The boxes of `quote` on page `page` of the PDF or image at `path`. `ocr`: the page's indexed text
    was read by OCR (use OCR's lines, from `ocr_cache` when they are there); else the PDF's text layer."""
    view = PageView(str(path), page)
    if not quote.strip() or not has_pages(str(path)):
        return view
    if ocr:
        boxes = _ocr_boxes(path, page, quote, ocr_cache)
        return PageView(str(path), page, boxes, "ocr" if boxes else "")
    if path.suffix.lower() != ".pdf":
        return view
    with _pdf_page(path, page) as pdf_page:
        boxes = _text_layer_boxes(pdf_page, quote)
    return PageView(str(path), page, boxes, "text" if boxes else "")


# -- matching ------------------------------------------------------------------------------------------


def _fold(text: str) -> tuple[str, list[int]]:
    """`text`'s letters and digits, NFKC case-folded, and for each the index of the character it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch).casefold():
            if c.isalnum():
                out.append(c)
                where.append(i)
    return "".join(out), where


def _match(hay: str, needle: str) -> tuple[int, int] | None:
    """The span of `needle` in `hay` (both folded): exact, else the densest run of common blocks."""
    if len(needle) < 2 or not hay:
        return None
    at = hay.find(needle)
    if at >= 0:
        return at, at + len(needle)
    blocks = [
        b for b in SequenceMatcher(None, hay, needle, autojunk=False).get_matching_blocks() if b.size >= MIN_BLOCK
    ]
    best: tuple[int, int, int] | None = None  # letters matched, start, end
    for i, first in enumerate(blocks):
        matched = 0
        for last in blocks[i:]:
            if last.a + last.size - first.a > 1.5 * len(needle):
                break
            matched += last.size
            if best is None or matched > best[0]:
                best = (matched, first.a, last.a + last.size)
    if best is None or best[0] < MIN_MATCH_SHARE * len(needle):
        return None
    return best[1], best[2]


# -- PDF text layer --------------------------------------------------------------------------------------


@contextmanager
def _pdf_page(path: Path, page: int | None) -> Iterator[Any]:
    """Page `page` (None: the first) of the PDF at `path`, opened for the block only, holding PDFium's lock."""
    import pypdfium2

    with _PDFIUM:
        try:
            doc = pypdfium2.PdfDocument(str(path))
        except (pypdfium2.PdfiumError, OSError) as exc:
            raise LoadError(f"cannot open the PDF: {exc}") from None
        try:
            number = page or 1
            if not 1 <= number <= len(doc):
                raise LoadError(f"no page {number}: the PDF has {len(doc)} pages now")
            yield doc[number - 1]
        finally:
            doc.close()


def _text_layer_boxes(page: Any, quote: str) -> tuple[Box, ...]:
    """Boxes of `quote` on a PDF page from PDFium's character boxes, one per line of the passage."""
    import pypdfium2.raw as pdfium

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        chars = "".join(_char(pdfium.FPDFText_GetUnicode(textpage, i)) for i in range(count))
        span = find_span(chars, quote)
        if span is None:
            return ()
        lines: list[list[float]] = []  # [left, bottom, right, top] in PDF units, one per line
        for i in range(*span):
            left, bottom, right, top = textpage.get_charbox(i)
            if right <= left or top <= bottom:
                continue  # a space or line break PDFium made up: no glyph
            line = lines[-1] if lines else None
            if line is not None and bottom < line[3] and top > line[1] and left >= line[0] - 1:  # same line
                line[:] = [min(line[0], left), min(line[1], bottom), max(line[2], right), max(line[3], top)]
            else:
                lines.append([left, bottom, right, top])
        return tuple(_to_fractions(page, pdfium, *line) for line in lines)
    finally:
        textpage.close()


def _char(code: int) -> str:
    return chr(code) if 0 < code < 0xD800 or 0xDFFF < code < 0x110000 else " "


def _to_fractions(page: Any, pdfium: Any, left: float, bottom: float, right: float, top: float) -> Box:
    """A box in PDF units as fractions of the rendered page (crop box and page rotation applied)."""
    scale = 20  # device units per PDF unit: the conversion rounds to whole device units
    width, height = round(page.get_width() * scale), round(page.get_height() * scale)
    xs, ys = [], []
    for x, y in ((left, bottom), (right, top)):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium.FPDF_PageToDevice(page, 0, 0, width, height, 0, x, y, dx, dy)
        xs.append(dx.value / width)
        ys.append(dy.value / height)
    return (_unit(min(xs)), _unit(min(ys)), _unit(max(xs)), _unit(max(ys)))


def _unit(value: float) -> float:
    return round(min(max(value, 0.0), 1.0), 5)


# -- OCR lines -------------------------------------------------------------------------------------------


def _frame(path: Path, page: int | None) -> Any:
    """Frame `page` (1-based; None: the first) of an image file, upright and RGB, as OCR read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.seek((page or 1) - 1)
            return upright(image)
    except (EOFError, ValueError):
        raise LoadError(f"no frame {page} in the image now") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise LoadError(f"cannot read the image: {exc}") from None


def _ocr_boxes(path: Path, page: int | None, quote: str, cache: Any) -> tuple[Box, ...]:
    """Boxes of `quote` among OCR's lines of the page: whole lines, the first and last cut at the
    passage's first and last letter (letters assumed evenly spread along a line)."""
    if path.suffix.lower() == ".pdf":
        with _pdf_page(path, page) as pdf_page:
            image = render_page(pdf_page, DEFAULT_DPI)
    else:
        image = _frame(path, page)
    lines = Reader("auto", cache=cache).read(image).lines
    folded = [_fold(line.text)[0] for line in lines]
    owner = [(n, i) for n, text in enumerate(folded) for i in range(len(text))]  # letter -> (line, letter)
    found = _match("".join(folded), _fold(quote)[0])
    if found is None:
        return ()
    (first, start), (last, end) = owner[found[0]], owner[found[1] - 1]
    width, height = image.size
    boxes = []
    for n in range(first, last + 1):
        x0, y0, x1, y1 = lines[n].box
        letters = max(len(folded[n]), 1)
        a = start / letters if n == first else 0.0
        b = (end + 1) / letters if n == last else 1.0
        boxes.append((x0 + (x1 - x0) * a, y0, x0 + (x1 - x0) * b, y1))
    return tuple(
        (_unit(x0 / width), _unit(y0 / height), _unit(x1 / width), _unit(y1 / height)) for x0, y0, x1, y1 in boxes
    )
