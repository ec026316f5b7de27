"""Write small PDFs whose extracted text is exactly what a test asks for, hostile characters included.

Each page is a list of lines drawn with one Type0 (Identity-H) font whose ToUnicode CMap maps every code
to the UTF-16 units the test chose, so pypdf's extraction yields lone surrogates, NULs, private-use and
bidi-override characters just as real PDFs with broken CMaps do. No glyphs are embedded: the PDFs are
for text extraction, not for viewing. This module only writes files; it knows nothing of the index.
"""

from __future__ import annotations

from pathlib import Path


def _utf16_units(ch: str) -> str:
    """The CMap destination for one character: UTF-16BE hex, a lone surrogate kept as its one unit."""
    o = ord(ch)
    if o > 0xFFFF:
        o -= 0x10000
        return f"{0xD800 + (o >> 10):04X}{0xDC00 + (o & 0x3FF):04X}"
    return f"{o:04X}"


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    """Write `pages` (each a list of text lines) to `path` as a PDF; returns `path`."""
    chars = sorted({ch for page in pages for line in page for ch in line})
    cid = {ch: i + 1 for i, ch in enumerate(chars)}
    cmap = _to_unicode(chars, cid)
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(data: bytes, extra: bytes = b"") -> bytes:
        return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"

    cmap_ref = add(stream(cmap))
    cidfont = add(
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Fuzz /CIDSystemInfo << /Registry (Adobe) "
        b"/Ordering (Identity) /Supplement 0 >> /DW 500 /CIDToGIDMap /Identity >>"
    )
    font = add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /Fuzz /Encoding /Identity-H "
        b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (cidfont, cmap_ref)
    )
    pages_ref = len(objects) + 1 + 2 * len(pages)  # the /Pages object comes after every page
    kids = []
    for lines in pages:
        ops = [b"BT /F1 10 Tf 12 TL 40 800 Td"]
        for line in lines:
            ops.append(b"<" + "".join(f"{cid[ch]:04X}" for ch in line).encode() + b"> Tj T*")
        ops.append(b"ET")
        content = add(stream(b"\n".join(ops)))
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_ref, content, font)
            )
        )
    add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_ref)
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    path.write_bytes(bytes(out))
    return path


def _to_unicode(chars: list[str], cid: dict[str, int]) -> bytes:
    lines = [
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Fuzz-UCS def /CMapType 2 def",
        "1 begincodespacerange <0000> <FFFF> endcodespacerange",
    ]
    for i in range(0, len(chars), 100):  # at most 100 entries per bfchar section
        part = chars[i : i + 100]
        lines.append(f"{len(part)} beginbfchar")
        lines += [f"<{cid[ch]:04X}> <{_utf16_units(ch)}>" for ch in part]
        lines.append("endbfchar")
    lines.append("endcmap CMapName currentdict /CMap defineresource pop end end")
    return "\n".join(lines).encode()
