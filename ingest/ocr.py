"""On-device OCR for pages without a usable text layer: scanned PDF pages and image files.

Three parts, each usable alone:
- the seam: `Recognizer.recognize(image) -> list[Line]` (text, box in image pixels, confidence). The
  default engine, `RapidOCR`, runs PP-OCR detection + recognition through ONNX Runtime with the models
  that ship inside the `rapidocr` wheel (Chinese and English; nothing is downloaded). A Mac-native engine
  would be one more subclass; the loaders never see which engine runs.
- `page_text(lines)`: lines in reading order (columns found by cutting the page at its widest empty
  gutters), low-confidence lines dropped, lines joined into paragraphs (blank line between paragraphs so
  the chunker still cuts there), CJK lines joined without a space, English hyphenated line ends rejoined.
- `Reader`: what a loader is handed. It applies the mode (`auto` reads pages whose text layer is empty or
  junk, `force` every page, `off` none), bounds the image sizes it accepts, and keeps results in a cache
  keyed by the page's pixels, so a page already read (an unchanged, renamed or copied file, the old pages
  of an edited PDF) is never read again.
This module renders nothing from PDFs (ingest/loaders.py does) and knows nothing about the index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import statistics
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import InvalidOption, LoadError

if TYPE_CHECKING:
    from PIL.Image import Image

MODES = ("auto", "off", "force")
DEFAULT_MODE = "auto"

# Lines the recognizer is less sure of than this are dropped. Chosen with bench/ocr.py: CER on rendered
# pages barely moves for thresholds from 0 to 0.8 (Chinese worsens at 0.9), while what is read from
# photos and drawings (single symbols, "□", "■", scoring 0.45-0.65) is mostly dropped from 0.6 on.
MIN_CONFIDENCE = 0.7
# A page whose kept OCR text has fewer word characters than this holds no text worth indexing (a photo,
# a logo, a 16x16 test image): it is left out rather than indexed as noise.
MIN_PAGE_CHARS = 12
# Render resolution for PDF pages (dots per inch), chosen with bench/ocr.py: with detection run on the page
# scaled to 1024 px, a page takes the same time at 100, 150 and 200 dpi (recognition, on line crops
# resized to 48 px high, is most of it), and 200 misses the fewest words (English 2.0% vs 3.4% at 150).
DEFAULT_DPI = 200
# Refused before decoding: a page or image this big is a decompression bomb or nonsense, not a document.
MAX_PIXELS = 60_000_000  # ~ an A0 poster at 150 dpi, a 40-megapixel photo fits
MAX_PAGE_INCHES = 200  # a PDF page wider or taller than this is refused ("absurd page size")


@dataclass(frozen=True)
class Line:
    """One recognised line: its text, its box (x0, y0, x1, y1) in image pixels, and a confidence in [0, 1]."""

    text: str
    box: tuple[float, float, float, float]
    confidence: float


class Recognizer(ABC):
    """An OCR engine: reads the lines of text in an image.

    `name` identifies the engine and its models (it is part of the cache key: a new engine or model
    version reads every page again).
    """

    name: str

    @abstractmethod
    def recognize(self, image: Image) -> list[Line]:
        """The lines of text in `image` (an RGB PIL image), in any order."""


class RapidOCR(Recognizer):
    """PP-OCR (detection + direction + recognition; Chinese and English) on ONNX Runtime, via `rapidocr`.

    The models are the ones inside the installed `rapidocr` package; the engine is loaded on first use
    (~1 s) and shared by every page. `threads` limits ONNX Runtime's threads (default: all cores).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()
        self.name = f"rapidocr-{_version('rapidocr')}-PP-OCRv6-small"

    def _load(self) -> Any:
        with self._lock:
            if self._engine is None:
                try:
                    from rapidocr import RapidOCR as Engine
                except ImportError as exc:
                    raise LoadError(
                        f"OCR is not installed ({exc.name or 'rapidocr'} is missing): "
                        "pip install rapidocr onnxruntime, or index with --ocr off"
                    ) from None
                logging.getLogger("RapidOCR").setLevel(logging.ERROR)
                threads = self.threads or -1
                self._engine = Engine(
                    params={
                        "Global.log_level": "error",
                        "Global.text_score": 0.0,  # every line comes back; page_text drops the unsure ones
                        "Global.max_side_len": 4000,  # the loader chose the resolution; don't shrink it
                        # detection on the page scaled to at most 1024 px: ~4x faster than at full size,
                        # same CER (bench/ocr.py); lines are still recognised from the full-size crops
                        "Det.limit_type": "max",
                        "Det.limit_side_len": 1024,
                        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                    }
                )
            return self._engine

    def recognize(self, image: Image) -> list[Line]:
        import numpy as np

        result = self._load()(np.asarray(image.convert("RGB")))
        lines = []
        for text, score, quad in zip(result.txts or (), result.scores or (), _boxes(result), strict=False):
            xs, ys = [float(p[0]) for p in quad], [float(p[1]) for p in quad]
            lines.append(Line(str(text), (min(xs), min(ys), max(xs), max(ys)), float(score)))
        return lines


def _boxes(result: Any) -> list[Any]:
    boxes = getattr(result, "boxes", None)
    return [] if boxes is None else list(boxes)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "missing"


# -- lines -> text ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageText:
    """What OCR read on one page: its text (paragraphs separated by a blank line), the mean confidence of
    the lines kept (weighted by their length), and those lines in reading order."""

    text: str
    confidence: float
    lines: tuple[Line, ...] = ()


def page_text(lines: Sequence[Line], min_confidence: float = MIN_CONFIDENCE) -> PageText:
    """The text of a page from its recognised lines: unsure lines dropped, reading order, paragraphs."""
    kept = [ln for ln in lines if ln.confidence >= min_confidence and ln.text.strip()]
    if not kept:
        return PageText("", 0.0)
    height = statistics.median(ln.box[3] - ln.box[1] for ln in kept)
    width = max(ln.box[2] for ln in kept) - min(ln.box[0] for ln in kept)
    ordered: list[list[Line]] = []  # rows of lines (a row: boxes side by side), in reading order
    _xy_cut(kept, height, width, ordered)
    paragraphs: list[str] = []
    previous: Line | None = None
    for row in ordered:
        text = _join_row(row)
        line = Line(text, _union(row), min(ln.confidence for ln in row))
        if previous is None or _new_paragraph(previous, line, height):
            paragraphs.append(text)
        else:
            paragraphs[-1] = _join_lines(paragraphs[-1], text)
        previous = line
    chars = sum(len(ln.text) for ln in kept)
    confidence = sum(ln.confidence * len(ln.text) for ln in kept) / chars
    flat = tuple(ln for row in ordered for ln in row)
    return PageText("\n\n".join(paragraphs), round(confidence, 4), flat)


def _xy_cut(lines: list[Line], height: float, width: float, out: list[list[Line]]) -> None:
    """Append `lines` to `out` as rows in reading order: split at a column gutter if there is one (left
    column first), else at the widest horizontal gap (top first), else group them into rows."""
    if len(lines) > 1:
        columns = _column_split(lines, height, width)
        if columns:
            for part in columns:
                _xy_cut(part, height, width, out)
            return
        rows = _gap_split(lines, lambda b: (b[1], b[3]))
        if rows:
            for part in rows:
                _xy_cut(part, height, width, out)
            return
    out.extend(_rows(lines, height))


def _rows(lines: list[Line], height: float) -> list[list[Line]]:
    """Lines no gap separates (a slightly skewed scan, a table) grouped into rows by their vertical
    centres, top to bottom, each row left to right."""
    rows: list[list[Line]] = []
    centre = None
    for ln in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        middle = (ln.box[1] + ln.box[3]) / 2
        if centre is None or middle - centre > height / 2:
            rows.append([])
            centre = middle
        rows[-1].append(ln)
    return [sorted(row, key=lambda ln: ln.box[0]) for row in rows]


def _gap_split(lines: list[Line], extent: Callable[[tuple], tuple[float, float]]) -> list[list[Line]] | None:
    """`lines` split in two at the widest gap along one axis that no box crosses, or None."""
    spans = sorted((extent(ln.box), i) for i, ln in enumerate(lines))
    best, at, reach = 0.0, -1, spans[0][0][1]
    for k in range(1, len(spans)):
        (start, end), _ = spans[k]
        if start - reach > best:
            best, at = start - reach, k
        reach = max(reach, end)
    if at < 0:
        return None
    first = {i for _, i in spans[:at]}
    return [[ln for i, ln in enumerate(lines) if i in first], [ln for i, ln in enumerate(lines) if i not in first]]


def _column_split(lines: list[Line], height: float, width: float) -> list[list[Line]] | None:
    """A split at a vertical gutter if both sides read like columns of text (3+ lines each, most of them
    wider than a fifth of the text's width); a gap between a form's labels and values is not one."""
    parts = _gap_split(lines, lambda b: (b[0], b[2]))
    if parts is None:
        return None
    left, right = parts
    gutter = min(ln.box[0] for ln in right) - max(ln.box[2] for ln in left)
    if gutter < height / 2:  # detection boxes are padded: a 0.25 in gutter at 150 dpi is ~20 px between them
        return None
    for side in parts:
        rows = {round(ln.box[1] / height) for ln in side}
        wide = sum(ln.box[2] - ln.box[0] > width / 5 for ln in side)
        if len(rows) < 3 or wide < len(side) / 2:
            return None
    return parts


def _join_row(row: list[Line]) -> str:
    text = row[0].text.strip()
    for ln in row[1:]:
        text = _join_words(text, ln.text.strip())
    return text


def _union(row: list[Line]) -> tuple[float, float, float, float]:
    return (
        min(ln.box[0] for ln in row),
        min(ln.box[1] for ln in row),
        max(ln.box[2] for ln in row),
        max(ln.box[3] for ln in row),
    )


def _new_paragraph(previous: Line, line: Line, height: float) -> bool:
    """A new paragraph starts after a vertical gap of more than ~0.8 line heights, or where the text jumps
    back up or sideways (a new column)."""
    gap = line.box[1] - previous.box[3]
    return gap > 0.8 * height or gap < -0.5 * height or line.box[0] > previous.box[2]


_HYPHENATED = re.compile(r"[A-Za-z]-$")


def _join_lines(text: str, nxt: str) -> str:
    """Join a paragraph's next line: a hyphenated English line end is rejoined ("docu-" + "ment")."""
    if _HYPHENATED.search(text) and nxt[:1].islower():
        return text[:-1] + nxt
    return _join_words(text, nxt)


def _join_words(text: str, nxt: str) -> str:
    """Join two pieces with a space, or none between CJK characters."""
    if not text or not nxt:
        return text + nxt
    return text + nxt if _cjk(text[-1]) or _cjk(nxt[0]) else f"{text} {nxt}"


def _cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF


def word_chars(text: str) -> int:
    """Letters and digits in `text` (any script)."""
    return sum(ch.isalnum() for ch in text)


# -- text layers --------------------------------------------------------------------------------------

_CID = re.compile(r"\(cid:\d+\)")


def layer_is_junk(text: str, width_pt: float, height_pt: float) -> bool:
    """True if a PDF page's extracted text is not worth keeping and the page should be read by OCR:
    fewer than 1 word character per 10,000 pt² (under ~48 on a Letter page: a stamp or a page number on
    a scan), or mostly "(cid:NN)" codes, U+FFFD and private-use characters (fonts without a Unicode map).
    Callers OCR such a page only if it has an image to read (ingest/loaders.py)."""
    unmapped = sum(len(m) for m in _CID.findall(text))
    unmapped += sum(ch == "\ufffd" or 0xE000 <= ord(ch) <= 0xF8FF for ch in text)
    visible = sum(not ch.isspace() for ch in text)
    if visible and unmapped / visible > 0.5:
        return True
    area = max(width_pt * height_pt, 1.0)
    return word_chars(text) < area / 10_000


# -- the reader a loader is handed --------------------------------------------------------------------


@dataclass
class Reader:
    """OCR as the loaders use it: the mode, the engine, the cache, the limits, and counters.

    Args:
        mode: "auto" (pages without a usable text layer, and images), "force" (every PDF page, text
            layer or not, and images) or "off" (nothing: images are not read, scans stay unreadable).
        engine: the Recognizer; default RapidOCR, loaded on the first page that needs it.
        cache: where results are kept, keyed by page pixels + engine + resolution: a folder (or a
            FolderCache), any object with `get(key)` and `put(key, data)` (state.TableCache keeps them
            in object storage), or None for no cache.
        dpi: resolution PDF pages are rendered at.
        on_page: called after each page read by OCR (cached or not), e.g. to report progress.
    """

    mode: str = DEFAULT_MODE
    engine: Recognizer | None = None
    cache: Any = None  # Path | FolderCache | state.TableCache | None
    dpi: int = DEFAULT_DPI
    on_page: Callable[[], None] | None = None
    calls: int = 0  # pages the engine actually read (cache misses)
    pages: int = 0  # pages whose text came from OCR (cached or read now)
    problems: list[str] = field(default_factory=list)  # "page 3: OCR failed: ..." for the file being loaded
    _cache_broken: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.mode = check_mode(self.mode)
        if isinstance(self.cache, (str, os.PathLike)):
            self.cache = FolderCache(Path(self.cache))

    @property
    def on(self) -> bool:
        return self.mode != "off"

    def read(self, image: Image) -> PageText:
        """OCR one page image (its size already checked with `check_pixels`). The engine's lines are
        cached by the image's pixels; the text is made from them each time (`page_text`)."""
        engine = self.engine = self.engine or RapidOCR()
        key = self._key(image, engine)
        lines = self._cached(key)
        if lines is None:
            self.calls += 1
            lines = engine.recognize(image)
            self._store(key, lines)
        self.pages += 1
        if self.on_page:
            self.on_page()
        return page_text(lines)

    def _key(self, image: Image, engine: Recognizer) -> str:
        digest = hashlib.blake2b(digest_size=20)
        digest.update(f"{engine.name}\0{image.mode}\0{image.size}\0".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()

    def _cached(self, key: str) -> list[Line] | None:
        if self.cache is None:
            return None
        try:
            data = self.cache.get(key)
            return (
                None
                if data is None
                else [Line(str(t), (b[0], b[1], b[2], b[3]), float(c)) for t, b, c in data["lines"]]
            )
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None  # a damaged entry is derived data: the page is read again and the entry rewritten

    def _store(self, key: str, lines: list[Line]) -> None:
        if self.cache is None or self._cache_broken:
            return
        data = {"lines": [[ln.text, [round(v, 1) for v in ln.box], round(ln.confidence, 4)] for ln in lines]}
        try:
            self.cache.put(key, data)
        except OSError:
            self._cache_broken = True  # a read-only index: OCR still works, it just isn't kept


@dataclass(frozen=True)
class FolderCache:
    """OCR results as one JSON file per page image under `folder` (two-character fan-out)."""

    folder: Path

    def get(self, key: str) -> dict | None:
        try:
            return json.loads((self.folder / key[:2] / f"{key}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def put(self, key: str, data: dict) -> None:
        folder = self.folder / key[:2]
        tmp = folder / f"{key}.{os.getpid()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, folder / f"{key}.json")  # atomic: a reader sees the whole entry or none
        except OSError:
            tmp.unlink(missing_ok=True)
            raise


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidOption(f"--ocr {mode!r}", f"choose one of {', '.join(MODES)}")
    return mode


def check_pixels(width: int, height: int, what: str = "image") -> None:
    """Raise LoadError for an image too big to decode safely (a decompression bomb, or not a document)."""
    if width * height > MAX_PIXELS:
        raise LoadError(
            f"{what} too large for OCR: {width}x{height} pixels (limit {MAX_PIXELS // 1_000_000} megapixels)"
        )
