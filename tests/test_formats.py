"""More formats: encrypted PDFs, DOCX, HTML, EPUB, reStructuredText, source files; sniffing; huge files.

Every document here is real: DOCX built with python-docx, EPUB with ebooklib, HTML and reST written as
files, the encrypted PDFs from ../shared/data.
"""

from __future__ import annotations

import random
import zipfile
from itertools import pairwise

import docx
import pytest
from conftest import data_path
from docx.enum.style import WD_STYLE_TYPE
from ebooklib import epub
from test_loaders import png_bytes

from ingest import markup
from ingest.blocks import MAX_MARKUP_BYTES
from ingest.errors import LoadError, UnsupportedFile
from ingest.loaders import LOADERS, MAX_BLOCK_CHARS, MAX_FILE_BYTES, load
from ingest.markup import decode_html, html_to_markdown

ENCRYPTED = ("pdfs", "pdfminer-samples", "encryption")
LIBREOFFICE = ("pdfs", "py-pdf-sample-files", "005-libreoffice-writer-password", "libreoffice-writer-password.pdf")


def assert_ordered(blocks):
    """Blocks are in order, do not overlap, and their offsets span exactly their text."""
    assert all(b.end - b.start == len(b.text) for b in blocks)
    assert all(a.end <= b.start for a, b in pairwise(blocks))


def assert_tiles(blocks, source):
    """Blocks are exact slices of `source` that cover it from start to end, in order."""
    assert all(b.text == source[b.start : b.end] for b in blocks)
    assert blocks[0].start == 0 and blocks[-1].end == len(source)
    assert all(a.end == b.start for a, b in pairwise(blocks))


# -- encrypted PDFs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parts, password, first_words",
    [
        (ENCRYPTED + ("rc4-128.pdf",), "foo", "Secret!"),
        (ENCRYPTED + ("aes-256.pdf",), "foo", "Secret!"),  # AES: needs the cryptography package
        (LIBREOFFICE, "openpassword", "Lorem ipsum dolor sit amet"),
    ],
    ids=["rc4-128", "aes-256", "libreoffice"],
)
def test_encrypted_pdf_opens_with_its_password(parts, password, first_words):
    blocks = load(data_path(*parts), password=password)
    assert blocks[0].page == 1
    assert blocks[0].text.startswith(first_words)


@pytest.mark.parametrize("password, reason", [(None, "a password is required"), ("wrong", "wrong password")])
@pytest.mark.parametrize("parts", [ENCRYPTED + ("rc4-128.pdf",), ENCRYPTED + ("aes-256.pdf",), LIBREOFFICE])
def test_encrypted_pdf_without_the_right_password_says_so(parts, password, reason):
    with pytest.raises(LoadError) as info:
        load(data_path(*parts), password=password)
    assert str(info.value) == f"encrypted PDF: {reason}"


def test_password_is_ignored_for_an_unencrypted_pdf():
    path = data_path("pdfs", "py-pdf-sample-files", "001-trivial", "minimal-document.pdf")
    assert load(path, password="unused")[0].text.startswith("Lorem ipsum")


# -- DOCX ------------------------------------------------------------------------------------------------


def write_docx(path):
    document = docx.Document()
    document.add_heading("Boiler manual", 0)
    document.add_paragraph("Read this before touching the boiler.")
    document.add_heading("Install", 1)
    document.add_paragraph("Mount the unit on a load-bearing wall.")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "Part", (0, 1): "Torque", (1, 0): "Flue bolt", (1, 1): "12 Nm"}.items():
        table.cell(row, col).text = text
    document.add_heading("Linux", 2)
    document.add_paragraph("Thermostat firmware updates need a Linux laptop.")
    fancy = document.styles.add_style("Fancy Heading", WD_STYLE_TYPE.PARAGRAPH)
    fancy.base_style = document.styles["Heading 1"]
    document.add_paragraph("Maintenance", style="Fancy Heading")
    document.add_paragraph("")  # empty paragraphs add nothing
    document.add_paragraph("Service it every year.")
    document.save(path)
    return path


def test_docx_heading_styles_give_heading_paths(tmp_path):
    blocks = load(write_docx(tmp_path / "manual.docx"))
    assert [b.heading for b in blocks] == [
        ("Boiler manual",),
        ("Boiler manual", "Install"),
        ("Boiler manual", "Install", "Linux"),
        ("Boiler manual", "Maintenance"),  # a custom style based on Heading 1
    ]
    assert blocks[0].text.startswith("Boiler manual\n\nRead this before touching the boiler.")
    assert "Part | Torque\nFlue bolt | 12 Nm" in blocks[1].text  # table rows, cell by cell
    assert blocks[3].text == "Maintenance\n\nService it every year."
    assert all(b.page is None for b in blocks)
    assert blocks[0].start == 0
    assert_ordered(blocks)


def test_docx_merged_cells_are_read_once(tmp_path):
    document = docx.Document()
    table = document.add_table(rows=1, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Wide cell"
    table.cell(0, 2).text = "Narrow"
    document.save(tmp_path / "merged.docx")
    [block] = load(tmp_path / "merged.docx")
    assert block.text == "Wide cell | Narrow"


def test_docx_without_text_is_a_load_error(tmp_path):
    docx.Document().save(tmp_path / "blank.docx")
    with pytest.raises(LoadError, match="no extractable text"):
        load(tmp_path / "blank.docx")


def test_damaged_docx_files(tmp_path):
    good = write_docx(tmp_path / "good.docx").read_bytes()
    (tmp_path / "truncated.docx").write_bytes(good[: len(good) // 2])
    with pytest.raises(LoadError, match="^corrupt DOCX: "):
        load(tmp_path / "truncated.docx")

    (tmp_path / "notes.docx").write_text("Just some text saved with the wrong name.\n")
    with pytest.raises(UnsupportedFile, match="^not a DOCX"):
        load(tmp_path / "notes.docx")

    with zipfile.ZipFile(tmp_path / "sheet.docx", "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedFile, match="^not a DOCX: a ZIP file without word/document.xml"):
        load(tmp_path / "sheet.docx")


# -- HTML ------------------------------------------------------------------------------------------------

ARTICLE_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Heating help</title><script>var trackerzzz = 1;</script></head>
<body>
<header><div class="logo">Acmeheat</div></header>
<nav><ul><li><a href="/">Homepagelink</a></li><li><a href="/shop">Shopmenu</a></li>
<li><a href="/about">Aboutuslink</a></li><li><a href="/blog">Blogmenu</a></li></ul></nav>
<article>
<h1>Boiler guide</h1>
<p>The boiler reset button is red and sits under the front cover of the unit, close to the floor.</p>
<h2>Bleeding radiators</h2>
<p>Bleed the radiators every October with the small brass key that is kept in the kitchen drawer.</p>
<table><tr><th>Room</th><th>Valve</th></tr><tr><td>Kitchen</td><td>left side</td></tr></table>
<h2>Pressure</h2>
<p>Keep the pressure gauge between one and one and a half bar while the heating system is cold.</p>
</article>
<footer><p>Copyright Footerco 2024. Privacypolicylink. Cookiesettings.</p></footer>
</body></html>
"""


def test_html_keeps_the_article_and_drops_navigation_and_footer(tmp_path):
    path = tmp_path / "help.html"
    path.write_text(ARTICLE_PAGE, encoding="utf-8")
    blocks = load(path)
    everything = "".join(b.text for b in blocks)
    for boilerplate in ("Homepagelink", "Shopmenu", "Aboutuslink", "Footerco", "Cookiesettings", "trackerzzz"):
        assert boilerplate not in everything
    assert [b.heading for b in blocks] == [
        ("Boiler guide",),
        ("Boiler guide", "Bleeding radiators"),
        ("Boiler guide", "Pressure"),
    ]
    assert "reset button is red" in blocks[0].text
    assert "brass key" in blocks[1].text and "Kitchen" in blocks[1].text  # the table is kept
    assert blocks[2].text.startswith("## Pressure")
    assert_tiles(blocks, html_to_markdown(decode_html(path.read_bytes())))


def test_tiny_html_page_falls_back_to_title_and_text(tmp_path):
    path = tmp_path / "tiny.htm"
    path.write_text("<html><head><title>Gate code</title></head><body></body></html>")
    [block] = load(path)
    assert block.heading == ("Gate code",)


FRENCH = (
    "Le café était très animé ce matin-là. Nous avons mangé une crème brûlée délicieuse près de la fenêtre, "
    "à côté du théâtre. Après le déjeuner, nous sommes allés à la forêt où les élèves étudiaient les châteaux."
)


@pytest.mark.parametrize(
    "encoding, head, words",
    [
        ("latin-1", '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">', "Crème brûlée."),
        ("shift_jis", '<meta charset="shift_jis">', "東京は日本の首都です。京都は古い都です。"),
        ("cp1252", "", FRENCH),  # nothing declared: detected
    ],
    ids=["declared-latin-1", "declared-shift-jis", "detected-cp1252"],
)
def test_html_is_decoded_with_its_declared_or_detected_charset(tmp_path, encoding, head, words):
    page = f"<html><head>{head}<title>Menu</title></head><body><article><h2>Plats</h2><p>{words}</p></article></body></html>"
    path = tmp_path / "menu.html"
    path.write_bytes(page.encode(encoding))
    [block] = load(path)
    assert block.heading == ("Plats",)
    assert words in block.text


# -- EPUB ------------------------------------------------------------------------------------------------


def write_epub(path):
    book = epub.EpubBook()
    book.set_identifier("weather-book-1")
    book.set_title("Weather stories")
    book.set_language("en")
    storm = epub.EpubHtml(title="The Storm", file_name="text/storm.xhtml", lang="en")
    storm.content = (
        "<h1>Storm</h1><p>It was a dark and stormy night on the moor.</p>"
        "<h2>Rain</h2><p>The rain fell in torrents, except at occasional intervals.</p>"
    )
    dawn = epub.EpubHtml(title="Dawn", file_name="text/dawn.xhtml", lang="en")
    dawn.content = "<h1>Chapter Two: Dawn</h1><p>The sun rose slowly over the wet hills.</p>"
    book.add_item(storm)
    book.add_item(dawn)
    book.toc = [epub.Link("text/storm.xhtml", "Chapter One: The Storm", "storm")]  # dawn is not in the TOC
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", storm, dawn]
    epub.write_epub(str(path), book)
    return path


def test_epub_chapters_in_reading_order_under_their_titles(tmp_path):
    blocks = load(write_epub(tmp_path / "weather.epub"))
    assert [b.heading for b in blocks] == [
        ("Chapter One: The Storm",),  # the TOC title replaces the chapter's own first heading
        ("Chapter One: The Storm", "Rain"),
        ("Chapter Two: Dawn",),  # not in the TOC: its first heading
    ]
    assert "dark and stormy night" in blocks[0].text
    assert "rain fell in torrents" in blocks[1].text
    assert "sun rose slowly" in blocks[2].text
    assert all("Table of Contents" not in b.text for b in blocks)  # the navigation document is skipped
    assert blocks[0].start == 0
    assert_ordered(blocks)


def test_damaged_epub_files(tmp_path):
    (tmp_path / "story.epub").write_text("Once upon a time.\n")
    with pytest.raises(UnsupportedFile, match="^not an EPUB"):
        load(tmp_path / "story.epub")

    with zipfile.ZipFile(tmp_path / "broken.epub", "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr(
            "META-INF/container.xml", "<container><rootfiles><rootfile full-path='x.opf'/></rootfiles></container>"
        )
    with pytest.raises(LoadError, match="^corrupt EPUB: "):
        load(tmp_path / "broken.epub")


# -- reStructuredText ------------------------------------------------------------------------------------

RST = """\
=============
Boiler manual
=============

Read this before touching the boiler.

Install
-------

Mount the unit on a load-bearing wall.

Linux
~~~~~

Use ``apt install thermo``.

Maintenance
-----------

Service it every year.
"""


def test_rst_section_titles_give_heading_paths(tmp_path):
    path = tmp_path / "manual.rst"
    path.write_text(RST, encoding="utf-8")
    blocks = load(path)
    assert [b.heading for b in blocks] == [
        ("Boiler manual",),
        ("Boiler manual", "Install"),
        ("Boiler manual", "Install", "Linux"),
        ("Boiler manual", "Maintenance"),
    ]
    assert blocks[0].text.startswith("=============\nBoiler manual\n")  # the overline starts the section
    assert blocks[2].text == "Linux\n~~~~~\n\nUse ``apt install thermo``.\n\n"
    assert_tiles(blocks, RST)


def test_rst_bad_markup_is_indexed_quietly(tmp_path, capfd):
    path = tmp_path / "broken.rst"
    path.write_text(
        "Title\n=====\n\nBroken :nosuchrole:`x` and `unclosed and *open.\n\n"
        ".. include:: /etc/passwd\n\n.. nosuchdirective::\n\nSub\n-----\n\nText.\n\nOther\n^^^^^\n\nMore.\n",
        encoding="utf-8",
    )
    blocks = load(path)
    assert [b.heading for b in blocks] == [("Title",), ("Title", "Sub"), ("Title", "Sub", "Other")]
    assert "unclosed" in blocks[0].text
    assert all("root:" not in b.text for b in blocks)  # includes are never followed
    assert capfd.readouterr().err == ""


def test_rst_too_big_to_parse_is_read_as_plain_text(tmp_path, monkeypatch):
    monkeypatch.setattr(markup, "RST_PARSE_CHARS", 100)
    path = tmp_path / "manual.rst"
    path.write_text(RST, encoding="utf-8")
    [block] = load(path)
    assert block.heading == () and block.text == RST


# -- source and config files -----------------------------------------------------------------------------


def test_source_and_config_suffixes_have_a_loader():
    wanted = (
        ".py .js .ts .tsx .jsx .go .rs .java .kt .c .h .cpp .hpp .cs .rb .php .swift .sh .bash .zsh .sql .r "
        ".scala .lua .pl .toml .yaml .yml .ini .cfg .json .csv .tsv .log .tex .org .adoc"
    ).split()
    assert [s for s in wanted if s not in LOADERS] == []


@pytest.mark.parametrize(
    "name, content",
    [
        ("boiler.py", 'def reset(boiler):\n    """Press the red button."""\n    boiler.press("red")\n'),
        ("App.tsx", "export const App = () => <h1>Thermostat</h1>;\n"),
        ("settings.yaml", "boiler:\n  pressure_bar: 1.5\n  # refill below one bar\n"),
        ("rooms.csv", "room,valve\nkitchen,left\n"),
    ],
)
def test_source_files_are_read_as_plain_text(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    [block] = load(path)
    assert (block.text, block.start, block.end, block.heading) == (content, 0, len(content), ())


def test_non_utf8_source_file_is_decoded(tmp_path):
    path = tmp_path / "legacy.c"
    text = "/* Pièce détachée: la vanne thermostatique du salon est à changer l'année prochaine. */\n"
    path.write_bytes(text.encode("cp1252"))
    assert load(path)[0].text == text


# -- sniffing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["photo.md", "photo.txt", "photo.html", "photo.py", "photo.rst", "photo.json"])
def test_png_with_a_text_name_is_unsupported(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(png_bytes())
    with pytest.raises(UnsupportedFile, match="binary content in a text file: it looks like a PNG image"):
        load(path)


def test_zip_named_txt_is_unsupported(tmp_path):
    path = tmp_path / "notes.txt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(UnsupportedFile, match="it looks like a ZIP archive"):
        load(path)


@pytest.mark.parametrize("name", ["empty.docx", "empty.epub", "empty.html", "empty.rst", "empty.py"])
def test_empty_files_of_every_format_are_load_errors(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(LoadError, match="empty file"):
        load(tmp_path / name)


def test_unreadable_path_is_a_load_error(tmp_path):
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(LoadError, match="^cannot read: "):
        load(tmp_path / "folder.txt")


# -- very large files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["huge.txt", "huge.pdf", "huge.docx", "huge.html"])
def test_file_over_the_size_limit_fails_before_it_is_read(tmp_path, name):
    path = tmp_path / name
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 50 * 2**20)  # sparse: no disk or memory used
    with pytest.raises(LoadError) as info:
        load(path)
    assert str(info.value) == f"too large ({MAX_FILE_BYTES // 2**20 + 50} MB > {MAX_FILE_BYTES // 2**20} MB limit)"


def test_markup_over_the_tree_limit_is_refused(tmp_path):
    path = tmp_path / "dump.html"
    with path.open("wb") as f:
        f.truncate(MAX_MARKUP_BYTES + 8 * 2**20)
    with pytest.raises(LoadError, match=r"^too large \(40 MB of HTML > 32 MB limit\)$"):
        load(path)

    with zipfile.ZipFile(tmp_path / "bloated.docx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b" " * (MAX_MARKUP_BYTES + 2**20))  # a tiny file, huge unpacked
    with pytest.raises(LoadError, match=r"^too large \(33 MB of word/document.xml > 32 MB limit\)$"):
        load(tmp_path / "bloated.docx")


@pytest.mark.parametrize("name", ["big.txt", "big.md"])
def test_five_megabyte_text_is_split_into_bounded_blocks(tmp_path, name):
    rng = random.Random(7)
    words = "boiler radiator valve pressure kitchen drawer thermostat flue pipe gauge".split()
    paragraphs, size = [], 0
    while size < 5_000_000:
        paragraph = " ".join(rng.choice(words) for _ in range(rng.randint(5, 300)))
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    source = "# Manual\n\n" + "\n\n".join(paragraphs) + "\n"
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    blocks = load(path)
    assert len(blocks) > 5_000_000 // MAX_BLOCK_CHARS
    assert all(len(b.text) <= MAX_BLOCK_CHARS for b in blocks)
    assert all(b.text.endswith("\n\n") for b in blocks[:-1])  # cut at paragraph boundaries
    assert_tiles(blocks, source)
    assert {b.heading for b in blocks} == ({("Manual",)} if name == "big.md" else {()})


@pytest.mark.parametrize(
    "source, ends_with",
    [
        ("".join(f'{{"row": {i}, "value": "{"x" * 40}"}}\n' for i in range(5000)), "\n"),  # no blank lines
        ('{"rows": [' + ", ".join(f'"{i:06d}"' for i in range(40000)) + "]}", None),  # one long line
    ],
    ids=["lines", "one-line"],
)
def test_long_text_without_paragraphs_is_cut_at_lines_then_anywhere(tmp_path, source, ends_with):
    path = tmp_path / "data.json"
    path.write_text(source, encoding="utf-8")
    blocks = load(path)
    assert len(blocks) > 1 and all(len(b.text) <= MAX_BLOCK_CHARS for b in blocks)
    if ends_with:
        assert all(b.text.endswith(ends_with) for b in blocks)
    else:
        assert all(len(b.text) == MAX_BLOCK_CHARS for b in blocks[:-1])
    assert_tiles(blocks, source)
