"""Nothing a file sends stops an index run: seeded fuzzing, fault injection, and text normalisation.

The fuzz runs use the real MiniLM tokenizer (the crash this guards against was in it) with vectors made
from a hash of the text (the embedding model is not what these tests are about); the real embedder
indexes the generated hostile PDFs once, end to end.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from conftest import HashEmbedder, assert_consistent, data_path, pdf_from_content
from pdfmaker import write_pdf

from ingest import Store, index_paths
from ingest.blocks import clean
from ingest.loaders import load
from ingest.normalize import normalize, normalize_text

HOSTILE = [
    "\udb62",  # a lone high surrogate (what a real PDF's broken CMap gave)
    "\udc00",  # a lone low surrogate
    "\x00",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
    "\ue000",  # private use
    "\uf8ff",
    "\U000f0001",  # supplementary private use
    "\u202e",  # right-to-left override
    "\u2066",
    "\u200b",  # zero-width space
    "\ufeff",
    "\ufffd",
    "\uffff",
    "\ufb01",  # fi ligature
    "\u0301",  # combining acute
    "\U0001f600",
    "\u4e2d\u6587",
]


def _store(path: Path, embedder) -> Store:
    return Store.open_or_create(path, {"id": embedder.id, "fingerprint": embedder.fingerprint, "dim": embedder.dim}, {})


def _hostile_line(rng: random.Random, words: int = 12) -> str:
    pieces = []
    for _ in range(words):
        if rng.random() < 0.4:
            pieces.append(rng.choice(HOSTILE))
        pieces.append(rng.choice(["boiler", "classi\ufb01cation", "ma-", "trix", "key", "\u5bc6\u94a5", "x" * 40]))
    return " ".join(pieces)


def generated_pdfs(folder: Path, count: int, seed: int) -> list[Path]:
    """`count` PDFs of 1-3 pages of hostile lines; the first also has a 1 MB line."""
    rng = random.Random(seed)
    paths = []
    for n in range(count):
        pages = [[_hostile_line(rng) for _ in range(rng.randint(1, 8))] for _ in range(rng.randint(1, 3))]
        if n == 0:
            pages[0].append("A" * (1 << 20))
        paths.append(write_pdf(folder / f"gen-{n:03d}.pdf", pages))
    return paths


def test_a_pdf_with_a_lone_surrogate_is_indexed_not_fatal(tmp_path, embedder):
    """The reported crash: pypdf hands the tokenizer a lone surrogate. Fails before the fix."""
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "bad.pdf", [["The spare key \udb62 is under the \ue000 flowerpot \x07 \u202e here."]])
    (docs / "good.md").write_text("# Boiler\n\nThe boiler reset button is red.\n")
    store = _store(tmp_path / "idx", embedder)
    report = index_paths([docs], store, embedder)
    assert report.failed == []
    assert sorted(Path(p).name for p in report.added) == ["bad.pdf", "good.md"]
    [row] = [r for r in store.document_chunks(str(docs / "bad.pdf"))]
    assert row.text == "The spare key  is under the  flowerpot   here."


def test_generated_hostile_pdfs_index_with_the_real_embedder(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    paths = generated_pdfs(docs, 6, seed=7)
    report = index_paths([docs], _store(tmp_path / "idx", embedder), embedder)
    assert sorted(report.added) + sorted(p for p, _ in report.failed) == sorted(map(str, paths))
    assert len(report.added) == len(paths)  # every one of them has readable text once cleaned
    counts = assert_consistent(tmp_path / "idx")
    assert sum(counts.values()) == report.chunks
    texts = [r.text for r in _store(tmp_path / "idx", embedder).document_chunks(str(paths[1]))]
    assert all(not any(_is_junk(c) for c in t) for t in texts)


def _is_junk(ch: str) -> bool:
    o = ord(ch)
    return 0xD800 <= o <= 0xDFFF or 0xE000 <= o <= 0xF8FF or o >= 0xF0000 or (o < 0x20 and ch not in "\n\t")


@pytest.mark.parametrize("batches", [5, pytest.param(15, marks=pytest.mark.slow)])
def test_seeded_fuzz_of_generated_and_mutated_pdfs_never_aborts_a_run(tmp_path, hash_embedder, batches):
    """Generated hostile PDFs plus byte-level mutations of the shared PDFs (30 a batch, one index run a
    batch): every run finishes, and every file ends up indexed, failed (recorded in the index) or
    skipped (named in the report)."""
    sources = [p for p in sorted(data_path("pdfs").rglob("*.pdf")) if p.stat().st_size < 400_000]
    assert len(sources) >= 20
    rng = random.Random(1234)
    started = time.monotonic()
    totals = {"generated": 0, "mutated": 0, "runs": 0, "indexed": 0, "failed": 0, "skipped": 0}
    store = _store(tmp_path / "idx", hash_embedder)
    for batch in range(batches):
        folder = tmp_path / f"batch{batch}"
        folder.mkdir()
        made = generated_pdfs(folder, 4, seed=batch)
        totals["generated"] += len(made)
        for n in range(30):
            made.append(_mutate(rng.choice(sources), folder / f"mut-{n:02d}.pdf", rng))
        totals["mutated"] += 30
        report = index_paths([folder], store, hash_embedder)  # an abort fails the test right here
        totals["runs"] += 1
        accounted = set(report.added) | {p for p, _ in report.failed} | {p for p, _ in report.skipped}
        assert accounted == {str(p) for p in made}
        recorded = store.failures()
        assert all(p in recorded and recorded[p]["reason"] for p, _ in report.failed)
        assert all("\n" not in reason for _, reason in report.failed + report.skipped)
        totals["indexed"] += len(report.added)
        totals["failed"] += len(report.failed)
        totals["skipped"] += len(report.skipped)
    assert_consistent(tmp_path / "idx")
    print(f"fuzz: {totals}, {time.monotonic() - started:.1f} s")
    assert totals["runs"] == batches and totals["mutated"] == 30 * batches
    assert totals["indexed"] > 10 * batches  # many mutations still leave a readable PDF


def _mutate(source: Path, dest: Path, rng: random.Random) -> Path:
    data = bytearray(source.read_bytes())
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        at = rng.randrange(len(data))
        if op < 0.4:  # flip bytes
            for i in range(at, min(at + rng.randint(1, 16), len(data))):
                data[i] = rng.randrange(256)
        elif op < 0.55:  # truncate
            del data[max(at, 16) :]
        elif op < 0.75:  # duplicate a range
            end = min(at + rng.randint(1, 4096), len(data))
            data[at:at] = data[at:end]
        elif op < 0.9:  # delete a range
            del data[at : at + rng.randint(1, 2048)]
        else:  # hostile bytes inside a string
            data[at:at] = rng.choice([b"(\xdb\x62\x00\x07)", b"<DB62E000>", b"\xfe\xff\xdb\x62", b"\x00" * 64])
    dest.write_bytes(bytes(data))
    return dest


# -- fault injection: every stage of one file is contained ---------------------------------------------


def test_a_file_the_embedder_rejects_fails_alone_and_the_rest_land(tmp_path, minilm_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a", "b", "c"):
        (docs / f"{name}.md").write_text(f"# {name}\n\nNote {name} about the boiler.\n")
    (docs / "poison.md").write_text("# Poison\n\nThis note contains POISON for the embedder.\n")
    embedder = HashEmbedder(minilm_path, fail_on="POISON")
    store = _store(tmp_path / "idx", embedder)
    report = index_paths([docs], store, embedder)
    assert sorted(Path(p).name for p in report.added) == ["a.md", "b.md", "c.md"]
    [(path, reason)] = report.failed
    assert path.endswith("poison.md") and reason == "embedding failed: RuntimeError: the embedder choked"
    assert store.failures()[path]["reason"] == reason
    assert len(store.documents()) == 3


def test_a_bug_in_the_tokenizer_is_that_files_failure(tmp_path, minilm_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fine.md").write_text("# Fine\n\nAll good here.\n")
    (docs / "weird.md").write_text("# Weird\n\nThis one breaks TOKENIZER code.\n")
    embedder = HashEmbedder(minilm_path)
    inner = embedder.token_spans

    def spans(text):
        if "TOKENIZER" in text:
            raise TypeError("TextInputSequence must be str")
        return inner(text)

    embedder.token_spans = spans
    store = _store(tmp_path / "idx", embedder)
    report = index_paths([docs], store, embedder)
    assert [Path(p).name for p in report.added] == ["fine.md"]
    assert report.failed == [(str(docs / "weird.md"), "chunking failed: TypeError: TextInputSequence must be str")]


def test_a_previously_indexed_file_that_now_fails_to_embed_loses_its_stale_chunks(tmp_path, minilm_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    note = docs / "note.md"
    note.write_text("# Note\n\nFirst version.\n")
    (docs / "other.md").write_text("# Other\n\nStays.\n")
    embedder = HashEmbedder(minilm_path, fail_on="POISON")
    store = _store(tmp_path / "idx", embedder)
    index_paths([docs], store, embedder)
    note.write_text("# Note\n\nSecond version with POISON.\n")
    report = index_paths([docs], store, embedder)
    assert [p for p, _ in report.failed] == [str(note)]
    assert report.removed == [str(note)]
    assert list(store.documents()) == [str(docs / "other.md")]


def test_a_file_name_that_is_not_utf8_is_a_failure_not_a_crash(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\n\nFine.\n")
    raw = bytes(docs) + b"/bad-\xff-name.md"
    with open(raw, "wb") as f:
        f.write(b"# Bad name\n\nStill text.\n")
    store = _store(tmp_path / "idx", hash_embedder)
    report = index_paths([docs], store, hash_embedder)
    assert [Path(p).name for p in report.added] == ["good.md"]
    [(path, reason)] = report.failed
    assert path.endswith("bad-\ufffd-name.md") and "not valid UTF-8" in reason
    assert path in store.failures()


# -- normalisation: what is indexed and what is queried ------------------------------------------------


@pytest.mark.parametrize(
    "raw, clean_text",
    [
        ("classi\ufb01cation", "classification"),
        ("e\ufb03cient \ufb02ow", "efficient flow"),
        ("ma-\ntrix", "matrix"),
        ("ma- \n trix", "matrix"),
        ("Jean-\nPaul", "Jean-\nPaul"),  # a capital after the break: a real hyphen, kept
        ("bad\udb62char", "badchar"),
        ("split \ud83d\ude00 pair", "split \U0001f600 pair"),
        ("a\x00b\x07c\x1bd", "abcd"),
        ("pua\ue000\U000f0001x", "puax"),
        ("\u202eevil\u202c", "evil"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("soft\u00adhyphen", "softhyphen"),
        ("\uff21\uff22\uff23\uff11\uff12", "ABC12"),
        ("\u4e2d\u6587\uff0c\u6807\u70b9\u3002", "\u4e2d\u6587\uff0c\u6807\u70b9\u3002"),  # CJK punctuation kept
        ("no\u00a0break", "no break"),
        ("line\u2028sep", "line\nsep"),
        ("\u0645\u0631\u062d\u0628\u0627", "\u0645\u0631\u062d\u0628\u0627"),  # Arabic letters untouched
        ("plain text, nothing to do.\n", "plain text, nothing to do.\n"),
    ],
)
def test_normalize(raw, clean_text):
    text, offsets = normalize(raw)
    assert text == clean_text
    if offsets is not None:
        starts, ends = offsets
        assert len(starts) == len(ends) == len(text)
        # every character maps back onto the original, in order
        assert all(0 <= s < e <= len(raw) for s, e in zip(starts, ends, strict=True))
        assert list(starts) == sorted(starts)


def test_offsets_of_normalised_pdf_chunks_point_into_the_original_page_text(tmp_path, embedder):
    lines = [
        "The classi\ufb01cation of \ue000boilers is a ma-",
        "trix of e\ufb03ciency \udb62 and \x07 size.",
        "Second para\u202egraph with the \ufb02ow rate.",
    ]
    path = write_pdf(tmp_path / "p.pdf", [lines, ["Page two: no oddities at all here."]])
    from pypdf import PdfReader

    pages = {n: clean(p.extract_text()) for n, p in enumerate(PdfReader(path).pages, start=1)}
    blocks = load(path)
    assert [b.page for b in blocks] == [1, 2]
    from ingest.chunking import ChunkConfig, chunk_blocks

    for config in (ChunkConfig(), ChunkConfig(max_tokens=8, overlap_tokens=2)):
        chunks = chunk_blocks(blocks, embedder.token_spans, config)
        for c in chunks:
            original = pages[c.page][c.start : c.end]
            assert normalize_text(original).strip() == c.text, (c, original)
    assert "classification" in chunk_blocks(blocks, embedder.token_spans)[0].text
    assert "matrix of efficiency" in chunk_blocks(blocks, embedder.token_spans)[0].text


def test_text_search_finds_ligature_words_by_their_plain_spelling_and_vice_versa(tmp_path, embedder):
    import rag

    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "paper.pdf", [["We study the classi\ufb01cation of e\ufb03cient boilers."]])
    (docs / "other.md").write_text("# Other\n\nNothing about that here, only gardening.\n")
    index = rag.open_index(tmp_path / "idx", embed_model=embedder, llm="unused")
    index.add(docs)
    for query in ("classification", "classi\ufb01cation", "efficient"):
        hits = index.search(query, k=1, mode="text")
        assert hits and hits[0].path.endswith("paper.pdf"), query


def test_shared_pdfs_index_without_ligatures_or_junk_characters(tmp_path, hash_embedder):
    """The real PDFs: no indexed chunk keeps a ligature, private-use, control or surrogate character."""
    store = _store(tmp_path / "idx", hash_embedder)
    index_paths([data_path("pdfs")], store, hash_embedder, password="foo")
    rows = store._scan(["text"]).column("text").to_pylist()
    assert len(rows) > 100
    bad = [t for t in rows if any(_is_junk(c) or 0xFB00 <= ord(c) <= 0xFB06 for c in t)]
    assert bad == []


def _spaceless_pdf(path: Path, gap: float) -> Path:
    """A page whose words are separated only by gaps of `gap` points between glyphs placed one by one
    (Courier 12: 7.2 pt a glyph), as some generators write text: no space characters at all."""
    sentence = "Explain the importance of asking questions in class before the exam starts. "
    ops, y = [], 740
    for _ in range(8):
        x = 40.0
        for ch in sentence:
            if ch == " ":
                x += gap
                continue
            ops.append(f"1 0 0 1 {x:.2f} {y} Tm ({ch}) Tj")
            x += 7.2
        y -= 16
    return pdf_from_content(path, ["BT /F1 12 Tf " + " ".join(ops) + " ET"], font="Courier")


def test_a_page_whose_words_run_together_is_read_again_by_pdfium(tmp_path):
    from pypdf import PdfReader

    from ingest.loaders import run_together

    path = _spaceless_pdf(tmp_path / "tight.pdf", gap=2.0)
    plain = PdfReader(path).pages[0].extract_text()
    assert "Explaintheimportance" in plain and run_together(plain) > 0.9  # what pypdf alone gives
    [block] = load(path)
    assert "Explain the importance of asking questions in class" in block.text
    assert run_together(block.text) == 0.0


def test_pages_with_long_compound_words_are_not_second_guessed():
    """No page of the shared PDFs (German compounds, formulas, slides) triggers the second extractor."""
    from pypdf import PdfReader

    from ingest.loaders import RUN_TOGETHER_SHARE, run_together

    reader = PdfReader(data_path("pdfs", "py-pdf-sample-files", "009-pdflatex-geotopo", "GeoTopo-komprimiert.pdf"))
    scores = [run_together(p.extract_text() or "") for p in reader.pages]
    assert 0 < max(scores) < RUN_TOGETHER_SHARE
