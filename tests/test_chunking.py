"""The chunker with the real MiniLM tokenizer: budgets, cut points, overlap, packing, pages, CJK."""

from __future__ import annotations

import json
import re
from itertools import pairwise

import pytest
from conftest import data_path, make_pdf

from ingest.chunking import ChunkConfig, chunk_blocks
from ingest.errors import InvalidOption
from ingest.loaders import Block, load


def ntokens(embedder, text: str) -> int:
    return len(embedder.token_spans(text))


def split_one(embedder, text: str, config: ChunkConfig, start: int = 0):
    return chunk_blocks([Block(text, start, start + len(text))], embedder.token_spans, config)


def xquad_paragraphs(articles: int) -> list[str]:
    data = json.loads(data_path("xquad-en", "xquad.en.json").read_text(encoding="utf-8"))
    return [" ".join(p["context"].split()) for article in data["data"][:articles] for p in article["paragraphs"]]


@pytest.fixture(scope="module")
def prose() -> str:
    """Real English prose (XQuAD paragraphs), one long block without paragraph breaks."""
    return " ".join(xquad_paragraphs(3))


@pytest.fixture(scope="module")
def sentences(embedder) -> list[str]:
    """Real English sentences ending in '.', each 8..28 MiniLM tokens."""
    text = " ".join(xquad_paragraphs(12))
    out = [s for s in re.split(r"(?<=\.)\s+", text) if s.endswith(".") and 8 <= ntokens(embedder, s) <= 28]
    assert len(out) >= 60
    return out


def zh_lines() -> list[str]:
    """Real Chinese description lines from tldr-pages (zh), without URLs."""
    folder = data_path("tldr", "zh", "common")
    lines = []
    for page in sorted(folder.glob("*.md"))[:80]:
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith(("> ", "- ")) and "http" not in line:
                lines.append(line[2:].strip())
    return lines


# -- budget --------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [ChunkConfig(254, 32), ChunkConfig(64, 16)], ids=["254-32", "64-16"])
def test_every_chunk_of_real_documents_fits_the_budget(embedder, config):
    pdfs = data_path("pdfs")
    docs = [
        load(pdfs / "py-pdf-sample-files" / "004-pdflatex-4-pages" / "pdflatex-4-pages.pdf"),
        load(pdfs / "py-pdf-sample-files" / "026-latex-multicolumn" / "multicolumn.pdf"),
        load(pdfs / "pdfminer-samples" / "nonfree" / "kampo.pdf"),  # Japanese
        load(data_path("tldr", "en", "common", "tar.md")),
        load(data_path("tldr", "zh", "common", "tar.md")),
    ]
    total = 0
    for blocks in docs:
        chunks = chunk_blocks(blocks, embedder.token_spans, config)
        assert chunks
        for c in chunks:
            assert c.text.strip() == c.text and c.text
            assert c.tokens <= config.max_tokens
            assert ntokens(embedder, c.text) <= config.max_tokens, (c.page, c.text[:80])
        total += len(chunks)
    assert total > len(docs)  # the long pages really were split


# -- one long block ------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [ChunkConfig(254, 32), ChunkConfig(64, 16)], ids=["254-32", "64-16"])
def test_long_prose_splits_on_whitespace_with_exact_offsets(embedder, prose, config):
    chunks = split_one(embedder, prose, config)
    assert len(chunks) >= 5
    for c in chunks:
        assert prose[c.start : c.end] == c.text
        assert c.start == 0 or prose[c.start - 1].isspace(), prose[c.start - 10 : c.start + 10]
        assert c.end == len(prose) or prose[c.end].isspace(), prose[c.end - 10 : c.end + 10]
        recount = ntokens(embedder, c.text)
        assert recount == c.tokens <= config.max_tokens
    # the chunks cover the whole text, in order
    assert chunks[0].start == 0 and chunks[-1].end == len(prose)
    assert all(b.start > a.start for a, b in pairwise(chunks))


def test_offsets_are_shifted_by_the_block_start(embedder, prose):
    config = ChunkConfig(64, 16)
    at_zero = split_one(embedder, prose, config)
    shifted = split_one(embedder, prose, config, start=1000)
    assert [(c.start + 1000, c.end + 1000, c.text) for c in at_zero] == [(c.start, c.end, c.text) for c in shifted]


def test_consecutive_chunks_overlap_by_at_most_overlap_tokens(embedder, prose):
    config = ChunkConfig(64, 16)
    chunks = split_one(embedder, prose, config)
    for a, b in pairwise(chunks):
        assert b.start < a.end, "the next chunk must start before the previous one ends"
        shared = prose[b.start : a.end]
        assert 0 < ntokens(embedder, shared) <= config.overlap_tokens


def test_no_overlap_loses_and_repeats_nothing(embedder, prose):
    chunks = split_one(embedder, prose, ChunkConfig(64, 0))
    assert len(chunks) > 10
    assert all(b.start >= a.end for a, b in pairwise(chunks))
    assert " ".join(c.text for c in chunks).split() == prose.split()


def test_paragraph_breaks_are_preferred_cut_points(embedder, sentences):
    # Paragraphs of two real sentences (<= 56 tokens): every cut window (the second half of a
    # 128-token budget) holds a paragraph break, so every cut must fall on one.
    paragraphs = [f"{a} {b}" for a, b in zip(sentences[0::2], sentences[1::2], strict=False)][:30]
    text = "\n\n".join(paragraphs)
    chunks = split_one(embedder, text, ChunkConfig(128, 0))
    assert len(chunks) >= 4
    for c in chunks[:-1]:
        assert text[c.end : c.end + 2] == "\n\n", text[c.end - 20 : c.end + 20]
    for c in chunks[1:]:
        assert text[c.start - 2 : c.start] == "\n\n"
    assert all(c.text in paragraphs or "\n\n" in c.text for c in chunks)


def test_sentence_ends_are_preferred_over_plain_word_breaks(embedder, sentences):
    text = " ".join(sentences[:60])  # one paragraph, sentences <= 28 tokens
    chunks = split_one(embedder, text, ChunkConfig(64, 0))
    assert len(chunks) >= 4
    for c in chunks[:-1]:
        assert c.text.endswith("."), c.text[-40:]


# -- packing small blocks -------------------------------------------------------------------------


def test_small_sections_on_one_page_are_packed_with_the_common_heading(tmp_path, embedder):
    md = tmp_path / "guide.md"
    md.write_text(
        "# Guide\n\n## Install\n\nPick your system.\n\n### Linux\n\nRun the installer script.\n\n"
        "### macOS\n\nDrag the app to Applications.\n"
    )
    blocks = load(md)
    assert [b.heading for b in blocks] == [
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Install", "macOS"),
    ]
    [chunk] = chunk_blocks(blocks, embedder.token_spans, ChunkConfig(254, 32))
    assert chunk.heading == ("Guide",)
    assert (
        chunk.text.index("Pick your system") < chunk.text.index("installer script") < chunk.text.index("Applications")
    )
    assert chunk.tokens == sum(ntokens(embedder, b.text) for b in blocks) == ntokens(embedder, chunk.text)
    assert (chunk.start, chunk.end, chunk.page) == (0, len(md.read_text().rstrip()), None)  # stripped, exact

    # without the top section, the common prefix is deeper
    [sub] = chunk_blocks(blocks[1:], embedder.token_spans, ChunkConfig(254, 32))
    assert sub.heading == ("Guide", "Install")
    assert sub.start == blocks[1].start


def test_packing_respects_the_budget_and_never_splits_a_small_block(embedder, sentences):
    blocks, pos = [], 0
    for i, s in enumerate(sentences[:20]):
        blocks.append(Block(s, pos, pos + len(s), heading=("Notes", f"Part {i}")))
        pos += len(s) + 2
    chunks = chunk_blocks(blocks, embedder.token_spans, ChunkConfig(64, 16))
    assert 1 < len(chunks) < len(blocks)
    for c in chunks:
        assert ntokens(embedder, c.text) <= 64
        assert c.heading == ("Notes",) or len(c.text.split("\n\n")) == 1
    # every block lands whole in exactly one chunk, in order
    assert [p for c in chunks for p in c.text.split("\n\n")] == [b.text for b in blocks]


def test_blocks_from_different_pdf_pages_never_share_a_chunk(tmp_path, embedder):
    pdf = make_pdf(tmp_path / "three.pdf", ["Page one says alpha.", "Page two says beta.", "Page three says gamma."])
    blocks = load(pdf)
    chunks = chunk_blocks(blocks, embedder.token_spans, ChunkConfig(254, 32))  # all would fit in one
    assert [(c.page, c.text) for c in chunks] == [
        (1, "Page one says alpha."),
        (2, "Page two says beta."),
        (3, "Page three says gamma."),
    ]


def test_real_multipage_pdf_chunks_keep_their_page_and_page_offsets(embedder):
    pdf = data_path("pdfs", "py-pdf-sample-files", "004-pdflatex-4-pages", "pdflatex-4-pages.pdf")
    blocks = load(pdf)
    pages = {b.page: b.text for b in blocks}
    chunks = chunk_blocks(blocks, embedder.token_spans, ChunkConfig(254, 32))
    assert len(chunks) > 4  # each ~4,000-character page is split
    assert {c.page for c in chunks} == {1, 2, 3, 4}
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)
    for c in chunks:
        assert pages[c.page][c.start : c.end] == c.text


# -- text without spaces ---------------------------------------------------------------------------


def test_chinese_without_spaces_is_split_within_budget(embedder):
    lines = [x for x in zh_lines() if not any(c.isspace() or c.isascii() for c in x)]
    text = "".join(lines)
    assert len(text) > 2000 and not any(c.isspace() for c in text)
    config = ChunkConfig(64, 16)
    chunks = split_one(embedder, text, config)
    assert len(chunks) > 10
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert ntokens(embedder, c.text) <= config.max_tokens
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in pairwise(chunks):
        assert b.start < a.end  # overlap works between characters too


def test_mixed_chinese_and_english_never_cuts_inside_an_english_word(embedder):
    text = "".join(zh_lines())  # Chinese with `commands` and English words, few spaces
    chunks = split_one(embedder, text, ChunkConfig(64, 16))
    assert len(chunks) > 10

    def inside_word(i: int) -> bool:
        return (
            0 < i < len(text)
            and (text[i - 1].isascii() and text[i - 1].isalnum())
            and (text[i].isascii() and text[i].isalnum())
        )

    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert ntokens(embedder, c.text) <= 64
        assert not inside_word(c.start) and not inside_word(c.end), text[c.start - 10 : c.end + 10]


# -- giant words -----------------------------------------------------------------------------------


def test_a_single_giant_word_is_chunked_within_budget(embedder):
    # MiniLM's WordPiece maps a >100-character word to one [UNK]: one chunk, nothing lost.
    word = "x" * 5000
    chunks = split_one(embedder, word, ChunkConfig(64, 16))
    assert all(ntokens(embedder, c.text) <= 64 for c in chunks)
    assert "".join(c.text for c in chunks) == word


def test_a_long_blob_without_spaces_is_cut_inside_within_budget(embedder):
    blob = "aGVsbG8gd29ybGQ+/" * 300  # base64-like: thousands of tokens, no whitespace
    assert ntokens(embedder, blob) > 1000
    chunks = split_one(embedder, blob, ChunkConfig(64, 16))
    assert len(chunks) > 10
    for c in chunks:
        assert blob[c.start : c.end] == c.text
        assert ntokens(embedder, c.text) <= 64
    # no word boundary to start an overlap on: chunks abut and rebuild the blob exactly
    assert all(b.start == a.end for a, b in pairwise(chunks))
    assert "".join(c.text for c in chunks) == blob


def test_a_giant_word_inside_prose_leaves_the_prose_cuts_on_whitespace(embedder, sentences):
    before, after = " ".join(sentences[:12]), " ".join(sentences[12:24])
    blob = "aGVsbG8gd29ybGQ+/" * 40
    text = f"{before} {blob} {after}"
    chunks = split_one(embedder, text, ChunkConfig(64, 0))
    blob_start, blob_end = len(before) + 1, len(before) + 1 + len(blob)
    for c in chunks:
        assert ntokens(embedder, c.text) <= 64
        for cut in (c.start, c.end):
            if not blob_start < cut < blob_end:  # outside the blob, cuts are at whitespace
                assert cut in (0, len(text)) or text[cut - 1].isspace() or text[cut].isspace()
    assert " ".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


# -- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens, overlap", [(7, 0), (0, 0), (-8, 0), (8, -1), (64, 32), (64, 40), (8, 4)])
def test_chunk_config_rejects_invalid_values(max_tokens, overlap):
    with pytest.raises(InvalidOption, match="max_tokens"):  # a RagError, and a ValueError
        ChunkConfig(max_tokens, overlap)


@pytest.mark.parametrize("max_tokens, overlap", [(8, 3), (8, 0), (64, 31), (256, 32)])
def test_chunk_config_accepts_valid_values(max_tokens, overlap):
    config = ChunkConfig(max_tokens, overlap)
    assert (config.max_tokens, config.overlap_tokens) == (max_tokens, overlap)


def test_default_config_fits_minilm(embedder):
    assert ChunkConfig().max_tokens <= embedder.max_tokens
    assert ChunkConfig() == ChunkConfig(256, 32)


def test_whitespace_only_blocks_make_no_chunks(embedder):
    assert chunk_blocks([Block("   \n\n  ", 0, 7)], embedder.token_spans, ChunkConfig()) == []
