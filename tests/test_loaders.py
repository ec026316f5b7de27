"""Loading real and hostile files, and the pipeline turning bad files into report lines."""

from __future__ import annotations

import shutil
import struct
import zlib
from itertools import pairwise

import pytest
from conftest import data_path
from pypdf import PdfReader

from ingest import ChunkConfig, Store, index_paths
from ingest.blocks import clean
from ingest.errors import LoadError, UnsupportedFile
from ingest.loaders import load
from ingest.normalize import normalize_text

PY_PDF = ("pdfs", "py-pdf-sample-files")
PDFMINER = ("pdfs", "pdfminer-samples")


def png_bytes() -> bytes:
    """A real 1x1 PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


# -- real PDFs -------------------------------------------------------------------------------------


def test_trivial_pdf_gives_page_one_text():
    path = data_path(*PY_PDF, "001-trivial", "minimal-document.pdf")
    [block] = load(path)
    assert block.page == 1
    assert block.text.startswith("Lorem ipsum dolor sit amet")
    # offsets are into the page text as extracted; the block's text is its searchable form
    page_text = clean(PdfReader(path).pages[0].extract_text())
    assert (block.start, block.end) == (0, len(page_text))
    assert block.text == normalize_text(page_text)
    assert block.heading == ()


def test_four_page_pdf_gives_one_block_per_page():
    blocks = load(data_path(*PY_PDF, "004-pdflatex-4-pages", "pdflatex-4-pages.pdf"))
    assert [b.page for b in blocks] == [1, 2, 3, 4]
    assert blocks[0].text.startswith("Hello, here is some text without a meaning.")
    for b in blocks:
        assert len(b.text) > 1000
        assert (b.start, b.end) == (0, len(b.text))
        assert "\r" not in b.text and "\x00" not in b.text


def test_suffix_is_case_insensitive(tmp_path):
    upper = tmp_path / "MINIMAL.PDF"
    shutil.copy(data_path(*PY_PDF, "001-trivial", "minimal-document.pdf"), upper)
    assert load(upper)[0].text.startswith("Lorem ipsum")


@pytest.mark.parametrize(
    "parts, reason",
    [
        (PDFMINER + ("simple1.pdf",), "corrupt PDF: "),  # no xref table
        (PY_PDF + ("017-unreadable-meta-data", "unreadablemetadata.pdf"), "corrupt PDF: "),
        (PDFMINER + ("encryption", "rc4-128.pdf"), "encrypted PDF: a password is required"),
        (PDFMINER + ("encryption", "aes-256.pdf"), "encrypted PDF: a password is required"),
        (PY_PDF + ("005-libreoffice-writer-password", "libreoffice-writer-password.pdf"), "encrypted PDF"),
        (PDFMINER + ("nonfree", "175.pdf"), "no extractable text"),  # scanned, no text layer
        (PY_PDF + ("019-grayscale-image", "grayscale-image.pdf"), "no extractable text"),  # image only
    ],
    ids=["simple1-no-xref", "017-unreadable", "rc4-128", "aes-256", "005-password", "175-scanned", "019-image-only"],
)
def test_hostile_pdfs_raise_load_error_with_reason(parts, reason):
    with pytest.raises(LoadError) as info:
        load(data_path(*parts))
    assert str(info.value).startswith(reason)
    assert "\n" not in str(info.value)


def test_corrupted_zen_pdf_is_still_read():
    # The file is damaged, but pypdf recovers it: the whole Zen of Python comes out on page 1.
    [block] = load(data_path(*PDFMINER, "zen_of_python_corrupted.pdf"))
    assert block.page == 1
    assert block.text.startswith("Beautiful is better than ugly.\nExplicit is better than implicit.")
    assert "Namespaces are one honking great idea" in block.text


# -- Markdown --------------------------------------------------------------------------------------


def test_markdown_heading_paths_nest_and_ignore_fenced_code(tmp_path):
    path = tmp_path / "notes.md"
    text = (
        "# A\n\nintro\n\n## B\n\nbee\n\n```python\n# a comment, not a heading\nx = 1\n```\n\n"
        "### C\n\nsee\n\n## D\n\ndee\n\n# E\n\ne\n"
    )
    path.write_text(text, encoding="utf-8")
    blocks = load(path)
    assert [b.heading for b in blocks] == [("A",), ("A", "B"), ("A", "B", "C"), ("A", "D"), ("E",)]
    assert "# a comment, not a heading" in blocks[1].text
    for b in blocks:
        assert text[b.start : b.end] == b.text
        assert b.page is None
    # the blocks tile the file
    assert blocks[0].start == 0 and blocks[-1].end == len(text)
    assert all(a.end == b.start for a, b in pairwise(blocks))


def test_markdown_text_before_the_first_heading_has_no_heading(tmp_path):
    path = tmp_path / "pre.md"
    path.write_text("Some preamble.\n\n## Usage ##\n\nRun it.\n\n#not-a-heading\n", encoding="utf-8")
    blocks = load(path)
    assert [(b.heading, b.text.split("\n")[0]) for b in blocks] == [((), "Some preamble."), (("Usage",), "## Usage ##")]
    assert "#not-a-heading" in blocks[1].text


def test_markdown_crlf_is_normalised(tmp_path):
    path = tmp_path / "crlf.md"
    path.write_bytes(b"# Title\r\n\r\nLine one.\r\n\r\n## Sub\r\n\r\nLine two.\r\n")
    blocks = load(path)
    assert [b.heading for b in blocks] == [("Title",), ("Title", "Sub")]
    assert all("\r" not in b.text for b in blocks)
    assert blocks[1].text == "## Sub\n\nLine two.\n"


def test_markdown_heading_ending_in_hash_keeps_it(tmp_path):
    path = tmp_path / "langs.md"
    path.write_text("# Learn C#\n\nSharp.\n\n## F# basics\n\nFunctional.\n", encoding="utf-8")
    assert [b.heading for b in load(path)] == [("Learn C#",), ("Learn C#", "F# basics")]


def test_markdown_tilde_line_inside_backtick_fence_does_not_close_it(tmp_path):
    path = tmp_path / "fence.md"
    path.write_text("# Top\n\n```\n~~~\n# not a heading\n```\n\nbody\n", encoding="utf-8")
    assert [b.heading for b in load(path)] == [("Top",)]


# -- text encodings and binary content ------------------------------------------------------------


def test_latin1_text_is_decoded(tmp_path):
    path = tmp_path / "latin1.txt"
    text = "El niño comió en el año pasado. ¿Dónde está la estación? Mañana iremos a la montaña.\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # really not UTF-8
    [block] = load(path)
    assert block.text == text
    assert "Mañana" in block.text and "estación" in block.text


def test_latin1_french_text_is_decoded(tmp_path):
    path = tmp_path / "menu.txt"
    text = (
        "Le café était très animé ce matin-là. Nous avons mangé une crème brûlée délicieuse "
        "près de la fenêtre, à côté du théâtre.\n"
    )
    path.write_bytes(text.encode("latin-1"))
    [block] = load(path)
    assert "très" in block.text and "crème" in block.text


def test_utf16_text_with_bom_is_decoded(tmp_path):
    path = tmp_path / "utf16.txt"
    text = "Grüße aus Köln, schöne Straße.\n"
    path.write_bytes(text.encode("utf-16"))  # has NUL bytes, but a BOM says it is text
    assert load(path)[0].text == text


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.md"
    path.write_bytes("# Überschrift\n\nText.\n".encode("utf-8-sig"))
    [block] = load(path)
    assert block.heading == ("Überschrift",) and block.text.startswith("# Überschrift")


def test_text_with_nul_bytes_is_unsupported(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"name=value\x00\x00\x01\x02more")
    with pytest.raises(UnsupportedFile, match="binary content"):
        load(path)


def test_png_renamed_to_txt_is_unsupported(tmp_path):
    path = tmp_path / "picture.txt"
    path.write_bytes(png_bytes())
    with pytest.raises(UnsupportedFile, match="binary content"):
        load(path)


@pytest.mark.parametrize("name, content", [("empty.txt", b""), ("blank.md", b"  \n\n\t\n"), ("empty.pdf", b"")])
def test_empty_files_are_load_errors(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match="empty") as info:
        load(path)
    assert not isinstance(info.value, UnsupportedFile)


def test_png_renamed_to_pdf_is_unsupported(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(png_bytes())
    with pytest.raises(UnsupportedFile, match="not a PDF"):
        load(path)


@pytest.mark.parametrize("name, shown", [("table.xyz", "'.xyz'"), ("Makefile", "'Makefile'"), ("page.xyz2", "'.xyz2'")])
def test_unknown_suffix_is_unsupported(tmp_path, name, shown):
    path = tmp_path / name
    path.write_text("plain words\n")
    with pytest.raises(UnsupportedFile) as info:
        load(path)
    assert str(info.value) == f"unsupported file type {shown}"


# -- the pipeline with bad files ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path, embedder):
    meta = {
        "id": embedder.id,
        "fingerprint": embedder.fingerprint,
        "dim": embedder.dim,
        "max_tokens": embedder.max_tokens,
    }
    return Store.open_or_create(tmp_path / "idx", meta, {"max_tokens": 254, "overlap_tokens": 32})


def test_index_paths_reports_bad_files_and_indexes_the_good_one(tmp_path, embedder, store):
    folder = tmp_path / "mixed"
    folder.mkdir()
    bad = {
        "simple1.pdf": (PDFMINER + ("simple1.pdf",), "corrupt PDF: "),
        "rc4-128.pdf": (PDFMINER + ("encryption", "rc4-128.pdf"), "encrypted PDF: a password is required"),
        "password.pdf": (
            PY_PDF + ("005-libreoffice-writer-password", "libreoffice-writer-password.pdf"),
            "encrypted PDF",
        ),
        "175.pdf": (PDFMINER + ("nonfree", "175.pdf"), "no extractable text"),
    }
    for name, (parts, _) in bad.items():
        shutil.copy(data_path(*parts), folder / name)
    shutil.copy(data_path(*PY_PDF, "001-trivial", "minimal-document.pdf"), folder / "good.pdf")
    (folder / "photo.pdf").write_bytes(png_bytes())  # not a PDF: a failure, in a folder as when named
    (folder / "photo.png").write_bytes(png_bytes())  # with OCR off, an image is a type not read: skipped
    (folder / ".hidden.txt").write_text("hidden words\n")

    seen = []
    report = index_paths([folder], store, embedder, ChunkConfig(254, 32), progress=seen.append, ocr="off")

    good = str((folder / "good.pdf").resolve())
    assert report.added == [good]
    assert report.updated == [] and report.unchanged == []
    failed = dict(report.failed)
    bad["photo.pdf"] = ((), "not a PDF")
    assert set(failed) == {str((folder / n).resolve()) for n in bad}
    for name, (_, reason) in bad.items():
        assert failed[str((folder / name).resolve())].startswith(reason)
    assert report.skipped == [
        (str((folder / "photo.png").resolve()), "an image: read only with OCR (--ocr auto or force)")
    ]
    # events as each file starts (done = files before it), ends, and while chunks embed; the hidden file is not visited
    done = [p.done for p in seen]
    assert done == sorted(done) and set(done) == set(range(8)) and seen[-1].total == 7

    # only the good file reached the store, searchable, with its page
    assert store.documents() == {good: store.documents()[good]}
    assert store.count_chunks() == report.chunks > 0
    [(row, score)] = store.search(embedder.embed(["Lorem ipsum dolor sit amet"])[0], 1)
    assert (row.path, row.page) == (good, 1) and score > 0.5

    # a second run: the good file is unchanged, the bad ones still fail, nothing is written
    again = index_paths([folder], store, embedder, ChunkConfig(254, 32), ocr="off")
    assert again.unchanged == [good] and again.added == [] and again.chunks == 0
    assert dict(again.failed) == failed


def test_index_paths_reports_a_named_unsupported_file_as_failed(tmp_path, embedder, store):
    photo = tmp_path / "photo.pdf"
    photo.write_bytes(png_bytes())
    table = tmp_path / "table.xyz"
    table.write_text("a,b\n")
    report = index_paths([photo, table], store, embedder, ChunkConfig(254, 32))
    assert report.added == [] and report.skipped == []
    assert dict(report.failed) == {
        str(photo.resolve()): "not a PDF: its content does not start like one",
        str(table.resolve()): "unsupported file type '.xyz'",
    }
    assert store.count_chunks() == 0
