"""Turn one file into text blocks that keep where they came from (page, heading path, char offset).

One loader per format, picked by suffix from `LOADERS`:

    suffix                       loader          one Block per ...
    .pdf                         load_pdf        page (1-based `page`); pypdf (PDFium for pages that lost their
                                                 spaces); `password` opens encrypted files; a page without a
                                                 usable text layer is rendered (PDFium) and read by OCR
    .png .jpg .jpeg .tif .tiff   load_image      frame (`page` = frame number for multi-frame TIFF/WebP,
    .webp .bmp                                   else None), read by OCR (ingest/ocr.py)
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
Blocks read by OCR carry their mean confidence (`Block.ocr`). OCR runs only when the caller hands `load`
an `ocr.Reader` that is not off; without one, scans stay "no extractable text" and images are refused.
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
from ingest.ocr import MAX_PAGE_INCHES, MAX_PIXELS, MIN_PAGE_CHARS, Reader, check_pixels, layer_is_junk, word_chars
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
LOADER_VERSION = 3  # 2: normalised text, PDFium for run-together pages, fontTools for CFF fonts; 3: OCR
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
NO_TEXT_OCR = "no text found, also by OCR"


def load(path: Path, *, password: str | None = None, ocr: Reader | None = None) -> list[Block]:
    """Load `path` with the loader for its suffix.

    Args:
        path: the file; its suffix (any case) picks the loader from `LOADERS`.
        password: opens an encrypted PDF; ignored by other formats. Default None (no password).
        ocr: reads scanned PDF pages and images (see ingest/ocr.py). Default None: no OCR.

    Raises:
        UnsupportedFile: no loader for the suffix, or the content is not what the suffix says.
        LoadError: a supported file that cannot be read; the message is a one-line reason.
    """
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedFile(f"unsupported file type '{path.suffix or path.name}'")
    try:
        refuse_size(path.stat().st_size)
        if loader is load_pdf:
            blocks = load_pdf(path, password, ocr)
        elif loader is load_image:
            blocks = load_image(path, ocr)
        else:
            blocks = loader(path)
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or describe(exc)}") from None
    searchable = [n for n in (b.normalized() for b in bound(blocks)) if n.text.strip()]
    if not searchable:
        raise LoadError("no extractable text")
    return searchable


def load_pdf(path: Path, password: str | None = None, ocr: Reader | None = None) -> list[Block]:
    """One block per page (1-based page numbers), text extracted by pypdf; with `ocr` on, a page whose
    text layer is empty or junk and that holds an image (or every page, with mode "force") is rendered
    and read by OCR. A page OCR can't read keeps its text layer and is noted in `ocr.problems`."""
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
            tried = False
            for number, page in enumerate(reader.pages, start=1):
                text = clean(page.extract_text() or "")
                if run_together(text) > RUN_TOGETHER_SHARE:  # spaces lost: PDFium may place them better
                    text = _better_spaced(text, second.page_text(number))
                if ocr is not None and ocr.on and _wants_ocr(ocr, page, text):
                    tried = True
                    read = _ocr_page(ocr, second, number)
                    if read is not None:
                        blocks.append(read)
                        continue
                if text.strip():
                    blocks.append(Block(text, 0, len(text), page=number))
    except FileNotDecryptedError:
        raise LoadError("encrypted PDF: a password is required") from None
    except DependencyError as exc:
        raise LoadError(f"encrypted PDF: {describe(exc)}") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise LoadError(f"corrupt PDF: {describe(exc)}") from None
    if not blocks:
        if tried:
            why = f" ({'; '.join(ocr.problems[:3])})" if ocr is not None and ocr.problems else ""
            raise LoadError(NO_TEXT_OCR + why)
        off = " (OCR is off)" if ocr is not None and not ocr.on else ""
        raise LoadError(f"no extractable text (a scanned PDF without a text layer?){off}")
    return blocks


def _wants_ocr(ocr: Reader, page: Any, text: str) -> bool:
    """Whether a page is read by OCR: every page when forced; else one whose text layer is empty or junk
    (`ocr.layer_is_junk`) and that draws at least one image (a page that is blank, or only vector
    drawings, has nothing OCR could add)."""
    if ocr.mode == "force":
        return True
    box = page.mediabox
    if not layer_is_junk(text, float(box.width), float(box.height)):
        return False
    try:
        return len(page.images) > 0
    except Exception:  # noqa: BLE001 - images pypdf can't list may still render: let OCR look
        return True


def _ocr_page(ocr: Reader, second: _SecondExtractor, number: int) -> Block | None:
    """The page rendered and read by OCR as a Block, or None if OCR found no text there (or failed:
    then the reason is added to `ocr.problems`)."""
    try:
        image = second.render(number, ocr.dpi)
        read = ocr.read(image)
    except LoadError as exc:
        ocr.problems.append(f"page {number}: {exc}")
        return None
    except Exception as exc:  # noqa: BLE001 - one page OCR can't read never loses the rest of the file
        ocr.problems.append(f"page {number}: OCR failed: {describe(exc)}")
        return None
    if word_chars(read.text) < MIN_PAGE_CHARS:
        return None
    return Block(read.text, 0, len(read.text), page=number, ocr=read.confidence)


def load_image(path: Path, ocr: Reader | None = None) -> list[Block]:
    """One block per frame of an image, read by OCR (EXIF orientation applied). `page` is the frame
    number for multi-frame images (TIFF, animated WebP), None for a single picture."""
    if ocr is None or not ocr.on:
        raise UnsupportedFile("an image: read only with OCR (--ocr auto or force)")
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if path.stat().st_size == 0:
        raise LoadError("empty file")
    blocks = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                frames = getattr(image, "n_frames", 1)
                for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                    check_pixels(*frame.size)
                    read = ocr.read(upright(frame))
                    if word_chars(read.text) >= MIN_PAGE_CHARS:
                        page = number if frames > 1 else None
                        blocks.append(Block(read.text, 0, len(read.text), page=page, ocr=read.confidence))
    except UnidentifiedImageError:
        raise UnsupportedFile(
            f"not a {path.suffix.lstrip('.').upper()} image: its content is not one PIL reads"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise LoadError(f"image too large for OCR (limit {MAX_PIXELS // 1_000_000} megapixels)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise LoadError(f"corrupt image: {describe(exc)}") from None
    if not blocks:
        raise LoadError(NO_TEXT_OCR)
    return blocks


def upright(frame: Any) -> Any:
    """An image frame as OCR reads it: EXIF orientation applied, RGB (rag/pages.py finds OCR's cached
    lines for it by these pixels)."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(frame).convert("RGB")


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

    def render(self, number: int, dpi: int) -> Any:
        """Page `number` as an RGB PIL image at `dpi` (see `render_page`)."""
        import pypdfium2

        if self._doc is None:
            self._doc = pypdfium2.PdfDocument(str(self.path), password=self.password or None)
        return render_page(self._doc[number - 1], dpi)

    def page_text(self, number: int) -> str:
        try:
            import pypdfium2

            if self._doc is None:
                self._doc = pypdfium2.PdfDocument(str(self.path), password=self.password or None)
            page = self._doc[number - 1]
            return clean(page.get_textpage().get_text_bounded())
        except Exception:  # noqa: BLE001 - a second opinion only; pypdf's text is kept
            return ""


def render_page(page: Any, dpi: int) -> Any:
    """A pypdfium2 page as an RGB PIL image at `dpi` (less for a page too big for `MAX_PIXELS`): the
    pixels OCR reads, so the same call elsewhere (rag/pages.py) finds OCR's cached lines for the page.
    Raises LoadError for an absurd page size."""
    width, height = page.get_size()
    if max(width, height) > MAX_PAGE_INCHES * 72 or min(width, height) <= 0:
        raise LoadError(f"absurd page size for OCR: {width / 72:.0f}x{height / 72:.0f} inches")
    scale = min(dpi / 72, (MAX_PIXELS / max(width * height, 1.0)) ** 0.5)
    check_pixels(round(width * scale), round(height * scale), "page")
    return page.render(scale=scale).to_pil().convert("RGB")


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
    **dict.fromkeys(IMAGE_SUFFIXES, load_image),
    ".txt": load_text,
    **dict.fromkeys(SOURCE_SUFFIXES, load_text),
}
