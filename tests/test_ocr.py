"""OCR: scanned PDF pages and images become searchable, page by page, with the real PP-OCR engine.

The layout rules (reading order, paragraphs, joins), the junk-layer rule and the cache are tested on
hand-made lines first (the engine is not what those tests are about); everything else runs the real
rapidocr engine on real pages: the shared scanned bulletin, shared text PDFs rendered to images, and a
Chinese tldr page drawn with a system CJK font (skipped where none is installed; .ci/run installs one).
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from conftest import data_path

import rag
from ingest.errors import LoadError, UnsupportedFile
from ingest.loaders import NO_TEXT_OCR, load
from ingest.ocr import Line, Reader, Recognizer, layer_is_junk, page_text

PY_PDF = ("pdfs", "py-pdf-sample-files")
SCAN = ("pdfs", "pdfminer-samples", "nonfree", "175.pdf")
CRAZY = (*PY_PDF, "021-pdfa", "crazyones-pdfa.pdf")  # one English text page
ZEN = (*PY_PDF, "011-google-doc-document", "google-doc-document.pdf")
CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def line(text: str, x0: float, y0: float, x1: float, y1: float, confidence: float = 0.99) -> Line:
    return Line(text, (x0, y0, x1, y1), confidence)


# -- lines -> text (hand-made lines) -------------------------------------------------------------------


def test_two_columns_are_read_left_column_first():
    left = [line(f"left {i} of the first column", 50, 100 + 30 * i, 450, 120 + 30 * i) for i in range(4)]
    right = [line(f"right {i} of the second column", 550, 100 + 30 * i, 950, 120 + 30 * i) for i in range(4)]
    title = line("A title across both columns", 50, 20, 950, 45)
    text = page_text([*right, title, *left]).text
    order = [text.index(s) for s in ("A title", "left 0", "left 3", "right 0", "right 3")]
    assert order == sorted(order), text


def test_a_forms_labels_and_values_stay_on_their_rows():
    rows = [("DATE:", "December 20, 1974"), ("TITLE:", "Oversize Tire Accessory Kit"), ("ARM:", "89.00 In.")]
    lines = []
    for i, (label, value) in enumerate(rows):
        y = 100 + 40 * i + i  # a slightly skewed scan: each row a pixel lower
        lines += [line(label, 50, y, 130, y + 20), line(value, 400, y + 2, 700, y + 22)]
    text = page_text(lines).text
    assert "DATE: December 20, 1974" in text and "TITLE: Oversize Tire Accessory Kit" in text, text


def test_paragraphs_hyphens_cjk_and_unsure_lines():
    lines = [
        line("The boiler must be serviced by a qualified docu-", 50, 100, 900, 120),
        line("mented engineer every year.", 50, 125, 600, 145),
        line("■ □", 50, 150, 80, 170, confidence=0.5),  # junk read from a drawing: dropped
        line("A second paragraph after a gap.", 50, 200, 700, 220),
        line("锅炉每年必须由合格的", 50, 260, 500, 280),
        line("工程师检修。", 50, 285, 300, 305),
    ]
    page = page_text(lines)
    assert page.text.split("\n\n") == [
        "The boiler must be serviced by a qualified documented engineer every year.",
        "A second paragraph after a gap.",
        "锅炉每年必须由合格的工程师检修。",
    ]
    assert 0.98 < page.confidence <= 0.99 and len(page.lines) == 5


def test_nothing_sure_enough_is_no_text():
    assert page_text([line("□", 0, 0, 10, 10, 0.46), line("心", 20, 0, 30, 10, 0.57)]).text == ""


@pytest.mark.parametrize(
    ("text", "size", "junk"),
    [
        ("", (612, 792), True),  # no text layer
        ("Page 1 of 3  Received 2024", (612, 792), True),  # a stamp on a scan
        ("(cid:12)(cid:15)(cid:3) (cid:44)" * 20, (612, 792), True),  # a font without a Unicode map
        ("\ufffd\ufffd\ufffd ab", (612, 792), True),
        ("The boiler reset button is red. " * 3, (612, 792), False),
        ("Lorem ipsum", (4, 4), False),  # a tiny page with its text
    ],
)
def test_which_text_layers_are_junk(text, size, junk):
    assert layer_is_junk(text, *size) is junk


# -- the reader and its cache (a fake engine: the cache is the subject) ---------------------------------


class Counting(Recognizer):
    """Wraps an engine and counts the pages it is asked to read."""

    def __init__(self, inner: Recognizer | None = None, lines: list[Line] | None = None) -> None:
        self.inner, self.lines, self.calls = inner, lines or [], 0
        self.name = inner.name if inner else "fixed"

    def recognize(self, image):
        self.calls += 1
        return self.inner.recognize(image) if self.inner else list(self.lines)


def test_the_cache_is_keyed_by_pixels_and_survives_damage(tmp_path):
    from PIL import Image

    engine = Counting(lines=[line("Kept in the cache for next time", 0, 0, 500, 20)])
    reader = Reader(engine=engine, cache=tmp_path / "cache")
    white, black = Image.new("RGB", (64, 32), "white"), Image.new("RGB", (64, 32), "black")
    assert reader.read(white).text == "Kept in the cache for next time"
    assert reader.read(white.copy()).text == "Kept in the cache for next time"
    assert engine.calls == 1 and reader.pages == 2
    reader.read(black)
    assert engine.calls == 2
    for entry in (tmp_path / "cache").rglob("*.json"):
        entry.write_text("{not json")  # damaged: derived data, read again rather than trusted or fatal
    assert reader.read(white).text == "Kept in the cache for next time" and engine.calls == 3


def test_ocr_off_leaves_scans_unread_and_images_unsupported(tmp_path):
    from PIL import Image

    picture = tmp_path / "note.png"
    Image.new("RGB", (40, 20), "white").save(picture)
    with pytest.raises(UnsupportedFile, match="read only with OCR"):
        load(picture, ocr=Reader("off"))
    with pytest.raises(LoadError, match=r"no extractable text .*\(OCR is off\)"):
        load(data_path(*SCAN), ocr=Reader("off"))
    with pytest.raises(rag.InvalidOption, match="auto, off, force"):
        Reader("sometimes")


def test_huge_images_and_absurd_pages_are_refused_with_a_reason(tmp_path):
    from PIL import Image
    from pypdf import PdfWriter

    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 8_000)).save(bomb)  # 80 megapixels in a few kB
    engine = Counting(lines=[line("never read", 0, 0, 100, 10)])
    with pytest.raises(LoadError, match=r"too large for OCR: 10000x8000 pixels \(limit 60 megapixels\)"):
        load(bomb, ocr=Reader(engine=engine))
    writer = PdfWriter()
    writer.add_blank_page(width=300 * 72, height=300 * 72)
    huge = tmp_path / "poster.pdf"
    writer.write(huge)
    reader = Reader("force", engine=engine)
    with pytest.raises(LoadError, match=NO_TEXT_OCR):
        load(huge, ocr=reader)
    assert reader.problems == ["page 1: absurd page size for OCR: 300x300 inches"] and engine.calls == 0


def test_a_page_ocr_fails_on_is_reported_and_the_rest_kept(tmp_path, hash_embedder):
    from pypdf import PdfReader, PdfWriter

    class Broken(Recognizer):
        name = "broken"

        def recognize(self, image):
            raise RuntimeError("engine crashed")

    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(data_path(*SCAN), folder / "scan.pdf")
    writer = PdfWriter()
    for page in [*PdfReader(data_path(*ZEN)).pages, PdfReader(data_path(*SCAN)).pages[0]]:
        writer.add_page(page)
    writer.write(folder / "mixed.pdf")
    index = rag.open_index(tmp_path / "idx", embed_model=hash_embedder)
    report = index.add(folder, ocr=Reader(engine=Broken()))
    pages = len(PdfReader(data_path(*ZEN)).pages)
    assert report.added == [str(folder / "mixed.pdf")]
    assert report.warnings == [(str(folder / "mixed.pdf"), f"page {pages + 1}: OCR failed: engine crashed")]
    reason = f"{NO_TEXT_OCR} (page 1: OCR failed: engine crashed; page 2: OCR failed: engine crashed)"
    assert report.failed == [(str(folder / "scan.pdf"), reason)]


# -- the real engine ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("rapidocr")
    return rag.RapidOCR()


def render(pdf: Path, page: int = 1, dpi: int = 150):
    import pypdfium2

    doc = pypdfium2.PdfDocument(str(pdf))
    return doc[page - 1].render(scale=dpi / 72).to_pil().convert("RGB")


def chunks_of(tmp_path: Path, path: Path):
    from ingest.store import Store

    return Store.open(tmp_path / "idx").document_chunks(str(path))


def similarity(a: str, b: str) -> float:
    flat = lambda s: " ".join(s.split()).lower()  # noqa: E731
    return difflib.SequenceMatcher(None, flat(a), flat(b), autojunk=False).ratio()


def test_the_scanned_bulletin_indexes_and_reindexing_reads_nothing_again(tmp_path, embedder, engine):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(data_path(*SCAN), folder / "175.pdf")
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    counting = Counting(engine)
    reader = Reader(engine=counting, cache=tmp_path / "idx" / "ocr-cache")
    report = index.add(folder, ocr=reader)
    assert report.added == [str(folder / "175.pdf")] and not report.failed
    assert (report.ocr_pages, report.ocr_read, counting.calls) == (2, 2, 2)
    hit = index.search("Oversize Tire Accessory Kit", k=1, mode="text")[0]
    assert (Path(hit.path).name, hit.page) == ("175.pdf", 1)
    assert "Oversize Tire Accessory Kit" in hit.text and hit.ocr is not None and hit.ocr > 0.9
    assert hit.to_dict()["ocr"] == hit.ocr
    status = index.status()
    assert (status.ocr_pages, status.ocr_documents) == (2, 1)
    from typer.testing import CliRunner

    from rag.cli import app

    shown = CliRunner().invoke(
        app, ["search", "Oversize Tire Accessory Kit", "--index", str(tmp_path / "idx"), "-k", "1"]
    )
    assert shown.exit_code == 0 and "175.pdf, page 1 (OCR 9" in shown.stdout, shown.stdout
    out = CliRunner().invoke(app, ["status", "--index", str(tmp_path / "idx")]).stdout
    assert "ocr        2 pages read by OCR, in 1 file" in out

    index.add(folder, ocr=reader)  # unchanged
    (folder / "175.pdf").touch()  # same bytes, new mtime
    index.add(folder, ocr=reader)
    shutil.copy(folder / "175.pdf", folder / "copy of 175.pdf")  # a copy is loaded again: from the cache
    again = index.add(folder, ocr=reader)
    assert again.added == [str(folder / "copy of 175.pdf")]
    assert (again.ocr_pages, again.ocr_read, counting.calls) == (2, 0, 2)


def test_pdfs_with_only_pictures_are_not_indexed_as_noise(engine):
    reader = Reader(engine=engine)
    for parts in [
        (*PY_PDF, "007-imagemagick-images", "imagemagick-ASCII85Decode.pdf"),
        (*PY_PDF, "007-imagemagick-images", "imagemagick-lzw.pdf"),
        (*PY_PDF, "019-grayscale-image", "grayscale-image.pdf"),
        (*PY_PDF, "023-cmyk-image", "cmyk-image.pdf"),
    ]:
        with pytest.raises(LoadError, match=f"^{NO_TEXT_OCR}$"):
            load(data_path(*parts), ocr=reader)


def test_a_rendered_english_page_is_found_as_png_image_pdf_tiff_and_rotated_photo(tmp_path, embedder, engine):
    from PIL import Image

    source = data_path(*CRAZY)
    truth = load(source)[0].text
    page = render(source)
    folder = tmp_path / "docs"
    folder.mkdir()
    page.save(folder / "crazy.png")
    page.save(folder / "crazy-scan.pdf", resolution=150)  # an image-only PDF
    blank = Image.new("RGB", page.size, "white")
    page.save(folder / "two-frames.tiff", save_all=True, append_images=[blank, page])
    exif = Image.Exif()
    exif[0x0112] = 8  # orientation: the camera was turned; viewers rotate it back
    page.rotate(-90, expand=True).save(folder / "photo.jpg", exif=exif, quality=90)
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    report = index.add(folder, ocr=Reader(engine=engine))
    assert not report.failed and len(report.added) == 4
    hits = index.search("Here's to the crazy ones. The misfits. The rebels.", k=10, mode="text")
    found = {(Path(h.path).name, h.page) for h in hits}
    assert found >= {("crazy.png", None), ("crazy-scan.pdf", 1), ("two-frames.tiff", 1), ("photo.jpg", None)}
    tiff_pages = {c.page for c in chunks_of(tmp_path, folder / "two-frames.tiff")}
    assert tiff_pages == {1, 3}  # the blank frame 2 holds no text
    for name in ("crazy.png", "photo.jpg"):
        text = " ".join(c.text for c in chunks_of(tmp_path, folder / name))
        assert similarity(text, truth) > 0.9, text


def test_a_mixed_pdf_keeps_its_text_pages_exactly(tmp_path, engine):
    from pypdf import PdfReader, PdfWriter

    render(data_path(*CRAZY)).save(tmp_path / "scan.pdf", resolution=150)
    writer = PdfWriter()
    for page in PdfReader(data_path(*ZEN)).pages:
        writer.add_page(page)
    writer.add_page(PdfReader(tmp_path / "scan.pdf").pages[0])
    mixed = tmp_path / "mixed.pdf"
    writer.write(mixed)
    text_pages = [b.text for b in load(data_path(*ZEN))]
    blocks = load(mixed, ocr=Reader(engine=engine))
    assert [b.text for b in blocks[:-1]] == text_pages and all(b.ocr is None for b in blocks[:-1])
    assert blocks[-1].page == len(text_pages) + 1 and blocks[-1].ocr is not None
    assert "crazy ones" in blocks[-1].text.lower()


def test_an_edited_scan_reads_only_its_new_page(tmp_path, engine):
    from pypdf import PdfReader, PdfWriter

    render(data_path(*CRAZY)).save(tmp_path / "one.pdf", resolution=150)
    counting = Counting(engine)
    reader = Reader(engine=counting, cache=tmp_path / "cache")
    load(tmp_path / "one.pdf", ocr=reader)
    writer = PdfWriter()
    writer.add_page(PdfReader(tmp_path / "one.pdf").pages[0])
    writer.add_page(PdfReader(data_path(*SCAN)).pages[0])
    writer.write(tmp_path / "one.pdf")
    blocks = load(tmp_path / "one.pdf", ocr=reader)
    assert [b.page for b in blocks] == [1, 2] and counting.calls == 2 and reader.pages == 3


def cjk_font(size: int):
    from PIL import ImageFont

    for path in CJK_FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei)")


def test_a_chinese_page_is_found_by_a_phrase(tmp_path, embedder, engine):
    from PIL import Image, ImageDraw

    page = data_path("tldr", "zh", "common", "tar.md").read_text(encoding="utf-8")
    lines = [ln.strip("#>- `") for ln in page.splitlines() if ln.strip() and not ln.startswith("`")][:8]
    font = cjk_font(28)
    image = Image.new("RGB", (1240, 80 + 48 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        draw.text((60, 40 + 48 * i), text, fill="black", font=font)
    folder = tmp_path / "docs"
    folder.mkdir()
    image.save(folder / "tar.png")
    image.save(folder / "tar-scan.pdf", resolution=150)
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    report = index.add(folder, ocr=Reader(engine=engine))
    assert not report.failed
    text = " ".join(c.text for c in chunks_of(tmp_path, folder / "tar.png"))
    truth = "".join(lines)
    assert similarity(text.replace(" ", ""), truth.replace(" ", "")) > 0.9, text
    phrase = next(ln for ln in lines[1:] if len(ln) >= 8)[:8]
    hits = index.search(phrase, k=5, mode="text")
    assert {(Path(h.path).name, h.page) for h in hits} >= {("tar.png", None), ("tar-scan.pdf", 1)}


def test_the_ocr_mode_comes_from_flag_then_env_then_config_file(tmp_path, monkeypatch, minilm_path):
    from typer.testing import CliRunner

    from rag.cli import app, config

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('ocr = "force"\n')
    monkeypatch.setenv("RAG_HOME", str(home))
    assert config.resolve().ocr == "force"
    monkeypatch.setenv("RAG_OCR", "off")
    assert config.resolve().ocr == "off" and config.origins()["ocr"] == "env RAG_OCR"
    assert config.resolve(ocr="auto").ocr == "auto"
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(data_path(*SCAN), folder / "175.pdf")
    (folder / "note.md").write_text("# Note\n\nThe bulletin is in the hangar.\n")
    run = CliRunner().invoke(
        app, ["index", str(folder), "--index", str(tmp_path / "idx"), "--embed-model", str(minilm_path)]
    )
    assert (
        run.exit_code == 0
        and "175.pdf: no extractable text (a scanned PDF without a text layer?) (OCR is off)" in run.stderr
    )
    bad = CliRunner().invoke(app, ["index", str(folder), "--index", str(tmp_path / "idx"), "--ocr", "sometimes"])
    assert bad.exit_code == 1 and "unknown OCR mode 'sometimes'" in bad.stderr
