"""OCR quality and speed: character error rate (CER) and pages/s per engine and resolution, on pages
whose true text is known, plus the choices bench-marked for ingest/ocr.py.

    pip install -e '.[bench-ocr]'   # rapidfuzz, for edit distances
    python bench/ocr.py [--pages-per-pdf 2] [--zh 6] [--dpi 100 150 200] [--no-tesseract]

Pages: (a) pages of the shared text PDFs rendered to images with PDFium, their text layer (PDFium's,
normalised like the index's text) as the truth: English (py-pdf samples, the IRS instructions, the
2-column paper), the German book (009) and the Japanese slides/samples; (b) Chinese tldr pages
(../shared/data/tldr/zh) drawn with a CJK font at a size that matches 11 pt at the resolution.
CER = edit distance / length of the truth, both with whitespace runs collapsed (removed for CJK);
"words missed" = the truth's words (CJK: characters) OCR did not find, in any order, since a text
layer's order is the PDF's drawing order (the IRS form's three columns are drawn row by row).
Engines: rapidocr (PP-OCRv6 small, ONNX Runtime, the default) and Tesseract (Debian's `tesseract`
with eng/deu/jpn/chi_sim where installed), each in its own process so its peak RSS is its own.
Then: the confidence threshold (CER and junk characters kept from picture-only pages, per threshold),
render vs the scan's embedded image (pypdf) on the scanned bulletin, and a crash sweep: every PDF under
../shared/data/pdfs loaded with OCR off and auto (which files now index).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PDFS = SHARED / "pdfs"
FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
# (file under pdfs/, pages, language): pages with a real text layer (PDFium reads them right)
SOURCES = [
    ("py-pdf-sample-files/021-pdfa/crazyones-pdfa.pdf", [1], "en"),
    ("py-pdf-sample-files/011-google-doc-document/google-doc-document.pdf", [1], "en"),
    ("py-pdf-sample-files/001-trivial/minimal-document.pdf", [1], "en"),
    ("pdfminer-samples/nonfree/dmca.pdf", [1, 2], "en"),
    ("pdfminer-samples/nonfree/i1040nr.pdf", [3, 10], "en"),
    ("pdfminer-samples/nonfree/naacl06-shinyama.pdf", [2, 5], "en"),
    ("py-pdf-sample-files/009-pdflatex-geotopo/GeoTopo-komprimiert.pdf", [12, 40], "de"),
    ("pdfminer-samples/nonfree/nlp2004slides.pdf", [2, 3], "ja"),
    ("pdfminer-samples/nonfree/kampo.pdf", [1], "ja"),
]
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
TESSERACT_LANG = {"en": "eng", "de": "deu", "ja": "jpn", "zh": "chi_sim"}


def flat(text: str, lang: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    if lang in ("ja", "zh"):
        return "".join(text.split())
    return " ".join(text.split())


def cer(found: str, truth: str, lang: str) -> float:
    from rapidfuzz.distance import Levenshtein

    a, b = flat(found, lang), flat(truth, lang)
    return Levenshtein.distance(a, b) / max(len(b), 1)


def word_error(found: str, truth: str, lang: str) -> float:
    """Share of the truth's words (characters, for CJK) that OCR did not find, in any order: a text layer's
    order is the PDF's drawing order, which on multi-column pages is not the reading order."""
    from collections import Counter

    a, b = flat(found, lang), flat(truth, lang)
    units = (lambda t: list(t)) if lang in ("ja", "zh") else (lambda t: t.split())
    have, want = Counter(units(a)), Counter(units(b))
    return 1 - sum((have & want).values()) / max(sum(want.values()), 1)


def pages(args) -> list[dict]:
    """Every bench page: {name, lang, dpi, image (PNG path), truth}."""
    import pypdfium2
    from PIL import Image, ImageDraw, ImageFont

    out = []
    work = Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    for rel, numbers, lang in SOURCES:
        path = PDFS / rel
        if not path.is_file():
            continue
        doc = pypdfium2.PdfDocument(str(path))
        for number in numbers[: args.pages_per_pdf]:
            if number > len(doc):
                continue
            page = doc[number - 1]
            truth = page.get_textpage().get_text_bounded()
            for dpi in args.dpi:
                png = work / f"{path.stem}-{number}-{dpi}.png"
                page.render(scale=dpi / 72).to_pil().convert("RGB").save(png)
                out.append(
                    {"name": f"{path.stem} p{number}", "lang": lang, "dpi": dpi, "image": str(png), "truth": truth}
                )
    font = next((f for f in FONTS if Path(f).is_file()), None)
    zh = sorted((SHARED / "tldr" / "zh" / "common").glob("*.md"))[:: max(1, 400 // max(args.zh, 1))][: args.zh]
    if font is None:
        print("no CJK font: Chinese pages skipped (apt-get install fonts-wqy-microhei)", file=sys.stderr)
        zh = []
    for md in zh:
        lines = [ln.strip("#>- ") for ln in md.read_text(encoding="utf-8").splitlines() if ln.strip()][:14]
        for dpi in args.dpi:
            size = round(11 * dpi / 72)  # 11 pt at this resolution
            face = ImageFont.truetype(font, size)
            image = Image.new("RGB", (round(8.27 * dpi), round((1 + 0.3 * len(lines)) * dpi)), "white")
            draw = ImageDraw.Draw(image)
            for i, text in enumerate(lines):
                draw.text((round(0.8 * dpi), round(0.5 * dpi + i * 0.3 * dpi)), text, fill="black", font=face)
            png = work / f"zh-{md.stem}-{dpi}.png"
            image.save(png)
            out.append(
                {"name": f"tldr/zh {md.stem}", "lang": "zh", "dpi": dpi, "image": str(png), "truth": "\n".join(lines)}
            )
    return out


def run_engine(engine: str, items: list[dict], queue) -> None:
    """In a child process: read every page with one engine; put (results, peak RSS MB)."""
    from PIL import Image

    import rag
    from ingest.ocr import page_text

    results = []
    ocr = rag.RapidOCR() if engine == "rapidocr" else None
    if ocr is not None:
        ocr.recognize(Image.new("RGB", (64, 32), "white"))  # load the models outside the timings
    for item in items:
        image = Image.open(item["image"]).convert("RGB")
        started = time.perf_counter()
        if ocr is not None:
            lines = ocr.recognize(image)
            seconds = time.perf_counter() - started
            text = page_text(lines).text
            by_threshold = {t: page_text(lines, t).text for t in THRESHOLDS}
        else:
            lang = TESSERACT_LANG[item["lang"]]
            done = subprocess.run(
                ["tesseract", item["image"], "stdout", "-l", lang], capture_output=True, text=True, check=False
            )
            seconds = time.perf_counter() - started
            text, by_threshold = done.stdout, {}
        results.append(item | {"text": text, "seconds": seconds, "by_threshold": by_threshold})
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    queue.put((results, max(rss, rss_children)))


def in_child(engine: str, items: list[dict]):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=run_engine, args=(engine, items, queue))
    child.start()
    results = queue.get()
    child.join()
    return results


def tesseract_langs() -> set[str]:
    if shutil.which("tesseract") is None:
        return set()
    done = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, check=False)
    return set(done.stdout.split()[1:] if done.returncode == 0 else [])


def table(results: list[dict], engine: str, rss: float) -> None:
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        group = "zh" if r["lang"] == "zh" else ("en" if r["lang"] == "en" else r["lang"])
        groups.setdefault((group, r["dpi"]), []).append(r)
    for (lang, dpi), rows in sorted(groups.items()):
        errors = [cer(r["text"], r["truth"], r["lang"]) for r in rows]
        words = [word_error(r["text"], r["truth"], r["lang"]) for r in rows]
        seconds = [r["seconds"] for r in rows]
        print(
            f"| {engine} | {lang} | {dpi} | {len(rows)} | {100 * statistics.median(errors):.1f}% | "
            f"{100 * statistics.mean(errors):.1f}% | {100 * statistics.median(words):.1f}% | "
            f"{statistics.median(seconds):.2f} | "
            f"{1 / statistics.median(seconds):.2f} | {rss:.0f} |"
        )


def thresholds(results: list[dict], dpi: int) -> None:
    """Mean CER per confidence threshold, at one resolution, and what picture-only pages keep."""
    from PIL import Image

    import rag
    from ingest.ocr import page_text, word_chars

    rows = [r for r in results if r["dpi"] == dpi]
    engine = rag.RapidOCR()
    noise = []
    for rel in (
        "py-pdf-sample-files/023-cmyk-image/cmyk-image.pdf",
        "py-pdf-sample-files/019-grayscale-image/grayscale-image.pdf",
        "py-pdf-sample-files/008-reportlab-inline-image/inline-image.pdf",
    ):
        import pypdfium2

        page = pypdfium2.PdfDocument(str(PDFS / rel))[0]
        noise.append(engine.recognize(page.render(scale=dpi / 72).to_pil().convert("RGB")))
    noise.append(engine.recognize(Image.effect_noise((800, 600), 60).convert("RGB")))
    print(f"\n| threshold | mean CER en | mean CER zh | junk chars kept from 4 picture-only pages ({dpi} dpi) |")
    print("|---|---|---|---|")
    for t in THRESHOLDS:
        by = {
            lang: [cer(r["by_threshold"][t], r["truth"], r["lang"]) for r in rows if r["lang"] == lang]
            for lang in ("en", "zh")
        }
        junk = sum(word_chars(page_text(lines, t).text) for lines in noise)
        mean = {k: f"{100 * statistics.mean(v):.1f}%" if v else "-" for k, v in by.items()}
        print(f"| {t} | {mean['en']} | {mean['zh']} | {junk} |")


def render_vs_embedded(dpi: int) -> None:
    """The scanned bulletin: PDFium's render of the page vs the scan pypdf hands out, read by rapidocr."""
    import warnings

    import pypdfium2
    from pypdf import PdfReader

    import rag
    from ingest.ocr import page_text

    engine = rag.RapidOCR()
    path = PDFS / "pdfminer-samples/nonfree/175.pdf"
    print("\n| page source (175.pdf, 2 pages) | pixels | seconds/page (extract + OCR) | chars kept | finds the title |")
    print("|---|---|---|---|---|")
    doc = pypdfium2.PdfDocument(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = PdfReader(path)
        for label, get in (
            (f"PDFium render, {dpi} dpi", lambda i: doc[i].render(scale=dpi / 72).to_pil().convert("RGB")),
            ("pypdf embedded image", lambda i: reader.pages[i].images[0].image.convert("RGB")),
        ):
            times, chars, found, size = [], 0, False, None
            for i in range(2):
                started = time.perf_counter()
                image = get(i)
                text = page_text(engine.recognize(image)).text
                times.append(time.perf_counter() - started)
                size, chars = image.size, chars + len(text)
                found |= "Oversize Tire Accessory Kit" in text
            print(f"| {label} | {size[0]}x{size[1]} | {statistics.median(times):.2f} | {chars} | {found} |")


def sweep() -> None:
    """Every shared PDF with OCR off and auto: which index now, and no crash (an exception that is not a
    one-line RagError)."""
    from ingest.errors import RagError
    from ingest.loaders import load
    from ingest.ocr import Reader

    reader = Reader("auto")
    changed, crashes, files = [], [], sorted(PDFS.rglob("*.pdf"))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for path in files:
        outcome = {}
        for mode in ("off", "auto"):
            try:
                blocks = load(
                    path,
                    password="foo" if "encryption" in str(path) else "openpassword",
                    ocr=Reader(mode, engine=reader.engine) if mode == "off" else reader,
                )
                outcome[mode] = f"{sum(b.ocr is not None for b in blocks)} OCR / {len(blocks)} pages"
            except RagError as exc:
                outcome[mode] = f"failed: {exc}"
            except Exception as exc:  # noqa: BLE001 - a crash is what this sweep looks for
                crashes.append(f"{path.name}: {type(exc).__name__}: {exc}")
                outcome[mode] = "CRASH"
        if outcome["off"] != outcome["auto"]:
            changed.append((path.relative_to(PDFS), outcome["off"], outcome["auto"]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nCrash sweep: {len(files)} PDFs, {len(crashes)} crashes, {reader.calls} pages OCR'd; peak RSS {peak:.0f} MB (before: {peak_before:.0f} MB)"
    )
    for line in crashes:
        print("  CRASH", line)
    print("\n| PDF | OCR off | OCR auto |\n|---|---|---|")
    for rel, off, auto in changed:
        print(f"| {rel} | {off} | {auto} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages-per-pdf", type=int, default=2)
    parser.add_argument("--zh", type=int, default=6, help="Chinese tldr pages")
    parser.add_argument("--dpi", type=int, nargs="+", default=[100, 150, 200])
    parser.add_argument("--no-tesseract", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], choices=["engines", "thresholds", "render", "sweep"])
    args = parser.parse_args()
    items = pages(args)
    print(f"{len(items)} page images ({len(items) // len(args.dpi)} pages x {len(args.dpi)} resolutions)")
    results = []
    if "engines" not in args.skip:
        print(
            "\n| engine | pages | dpi | n | median CER | mean CER | median words missed | median s/page | pages/s "
            "| peak RSS MB |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        results, rss = in_child("rapidocr", items)
        table(results, "rapidocr", rss)
        langs = set() if args.no_tesseract else tesseract_langs()
        usable = [i for i in items if TESSERACT_LANG[i["lang"]] in langs]
        if usable:
            found, rss = in_child("tesseract", usable)
            table(found, "tesseract", rss)
        elif not args.no_tesseract:
            print("(tesseract not installed: apt-get install tesseract-ocr tesseract-ocr-chi-sim)")
    middle = args.dpi[len(args.dpi) // 2]
    if results and "thresholds" not in args.skip:
        thresholds(results, middle)
    if "render" not in args.skip:
        render_vs_embedded(middle)
    if "sweep" not in args.skip:
        sweep()


if __name__ == "__main__":
    main()
