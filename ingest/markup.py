"""Loaders for markup text: Markdown, reStructuredText and HTML, each cut into heading sections.

Markdown and reStructuredText Blocks are slices of the file's own text (offsets into the file); HTML is
first reduced to its main content as Markdown by trafilatura (navigation, footers and other boilerplate
dropped), and Blocks are slices of that extracted text. `html_to_markdown` and `split_markdown` are
reused for EPUB chapters. This module does not render markup or follow links, includes or raw files.
"""

from __future__ import annotations

import html
import io
import re
import warnings
from pathlib import Path

from ingest.blocks import (
    MAX_MARKUP_BYTES,
    Block,
    Mark,
    clean,
    cut,
    decode_text,
    describe,
    known_encoding,
    nest,
    path_of,
    read_text,
    refuse_size,
)
from ingest.errors import LoadError

RST_PARSE_CHARS = 1_000_000  # docutils parses ~150 KB/s; a bigger .rst is read as plain text

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")  # CommonMark: closing #s follow a space
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)|<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)""", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.I)
_BODY_CLOSE = re.compile(r"</body\s*>", re.I)

# -- Markdown -------------------------------------------------------------------------------------------


def load_markdown(path: Path) -> list[Block]:
    """One block per heading section; each carries its heading path ("Install > Linux")."""
    return split_markdown(read_text(path))


def split_markdown(text: str) -> list[Block]:
    """Cut Markdown text at its ATX headings (not inside fenced code) into Blocks with heading paths."""
    marks: list[Mark] = []
    stack: list[tuple[int, str]] = []
    fence, pos = "", 0
    for line in text.splitlines(keepends=True):
        opener = _FENCE.match(line)
        if opener and not fence:
            fence = opener.group(1)
        elif opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
            fence = ""  # only a fence of the same character, at least as long, closes a code block
        match = None if fence else _ATX.match(line.rstrip("\r\n"))
        if match:
            stack = nest(stack, len(match.group(1)), match.group(2))
            marks.append((pos, path_of(stack)))
        pos += len(line)
    return cut(text, marks)


# -- HTML -----------------------------------------------------------------------------------------------


def load_html(path: Path) -> list[Block]:
    """The page's main text (no navigation or footer boilerplate), one block per heading section."""
    refuse_size(path.stat().st_size, MAX_MARKUP_BYTES, " of HTML")
    return split_markdown(html_to_markdown(decode_html(path.read_bytes())))


def decode_html(data: bytes) -> str:
    """HTML bytes as text: a BOM or UTF-8, else the charset the page declares, else the detected one."""
    declared = _CHARSET.search(data[:4096])
    charset = declared and (declared.group(1) or declared.group(2)).decode("ascii", "replace")
    return decode_text(data, known_encoding(charset))


def html_to_markdown(page: str, *, all_content: bool = False) -> str:
    """The main content of an HTML page as Markdown (headings as #, tables as pipes), by trafilatura.

    With `all_content` (EPUB chapters, which have no boilerplate) the whole body counts as content.
    Falls back to the page's title and visible text when trafilatura finds nothing (a tiny page).
    """
    import trafilatura

    refuse_size(len(page), MAX_MARKUP_BYTES, " of HTML")
    if all_content:
        page = _as_article(page)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = trafilatura.extract(
                page, output_format="markdown", include_formatting=True, include_tables=True, include_comments=False
            )
            text = text or _visible_text(page)
    except Exception as exc:  # lxml and trafilatura raise many unrelated types on hostile markup
        raise LoadError(f"unreadable HTML: {describe(exc)}") from None
    return clean(text).strip() + "\n"


def _as_article(page: str) -> str:
    # trafilatura trusts an <article> as the main content; without one it drops headings of short pages.
    opened = _BODY_OPEN.sub(lambda m: m.group(0) + "<article>", page, count=1)
    if opened == page:
        return f"<article>{page}</article>"
    return _BODY_CLOSE.sub("</article></body>", opened, count=1)


def _visible_text(page: str) -> str:
    import trafilatura

    title = _TITLE.search(page)
    heading = " ".join(html.unescape(title.group(1)).split()) if title else ""
    body = trafilatura.html2txt(page) or ("" if "<" in page else page)  # no markup at all: it is the text
    return f"# {heading}\n\n{body}" if heading else body


# -- reStructuredText -----------------------------------------------------------------------------------


def load_rst(path: Path) -> list[Block]:
    """One block per docutils section, with its title path; plain text if the markup cannot be parsed."""
    text = read_text(path)
    return cut(text, _rst_marks(text))


def _rst_marks(text: str) -> list[Mark]:
    from docutils import nodes

    doctree = _parse_rst(text)
    if doctree is None:
        return []
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    marks: list[Mark] = []
    stack: list[tuple[int, str]] = []
    for section in doctree.findall(nodes.section):
        title, depth = section[0].astext(), _depth(section)
        stack = nest(stack, depth, title)
        first = _title_line(lines, section)
        if first is not None:
            marks.append((offsets[first], path_of(stack)))
    return sorted(marks, key=lambda mark: mark[0])


def _parse_rst(text: str):
    """The docutils doctree, or None if the text is too big or docutils fails on it."""
    if len(text) > RST_PARSE_CHARS:
        return None
    from docutils.core import publish_doctree

    settings = {
        "report_level": 5,  # report nothing: bad markup is still indexed, as text
        "halt_level": 5,
        "warning_stream": io.StringIO(),
        "traceback": True,  # raise, instead of docutils printing and calling sys.exit
        "_disable_config": True,  # no docutils.conf from the user's home or the cwd
        "file_insertion_enabled": False,  # never read other files (.. include::)
        "raw_enabled": False,
        "doctitle_xform": False,  # keep a lone top title as a section, so it heads the path
        "syntax_highlight": "none",
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return publish_doctree(text, settings_overrides=settings)
    except Exception:  # docutils has many failure modes on broken markup; the text is still useful
        return None


def _depth(section) -> int:
    depth, node = 0, section
    while node is not None:
        depth += node.tagname == "section"
        node = node.parent
    return depth


def _title_line(lines: list[str], section) -> int | None:
    """The 0-based line where a section's title (or its overline) starts, if docutils' line is right."""
    underline = (section.line or 0) - 1  # docutils reports the 1-based line of the title's underline
    title = underline - 1
    if title < 0 or underline >= len(lines) or lines[title].strip() != section[0].rawsource.strip():
        return None
    over = title - 1
    if over >= 0 and lines[over].strip() and lines[over].strip() == lines[underline].strip():
        return over
    return title
