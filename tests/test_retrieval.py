"""Retrieval quality features on real parts: metrics against hand-computed values, hybrid fusion, full-text
and hybrid search (exact terms, Chinese via ICU word segmentation and character pairs), filters, context assembly, and the
`rag eval retrieval` harness on a small BEIR slice of SciFact."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import pyarrow as pa
import pytest
from conftest import data_path, make_pdf
from typer.testing import CliRunner

import rag
from ingest.store import RRF_K, ChunkRow, fuse_ranked
from rag.cli import app
from rag.context import diversify, merge_adjacent
from rag.eval.metrics import mrr_at, ndcg_at, percentile, recall_at
from rag.retrieve import combine
from rag.types import Source

# -- metrics, by hand ------------------------------------------------------------------------------


def test_ndcg_matches_a_hand_computed_graded_case():
    qrels = {"a": 2, "b": 1, "c": 0}
    ranked = ["x", "b", "a", "b"]  # duplicate "b" counts once, at its best rank
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranked, qrels, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(["a", "b"], qrels, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "y"], qrels, 10) == 0.0
    assert ndcg_at(["x", "a"], qrels, 1) == 0.0  # cut-off respected
    assert ndcg_at(["a"], {"a": 0}, 10) == 0.0  # nothing relevant: 0, not a division by zero


def test_recall_mrr_and_percentiles_by_hand():
    qrels = {"a": 1, "b": 1, "c": 1, "z": 0}
    assert recall_at(["a", "x", "c"], qrels, 2) == pytest.approx(1 / 3)
    assert recall_at(["a", "x", "c", "b"], qrels, 10) == 1.0
    assert mrr_at(["x", "z", "b"], qrels, 10) == pytest.approx(1 / 3)
    assert mrr_at(["x", "y", "b"], qrels, 2) == 0.0
    assert percentile([10, 20, 30, 40], 50) == 25.0 and percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert percentile([7.0], 95) == 7.0


def _row(cid: str, path: str = "/d/a.md", index: int = 0, text: str = "t", start: int = 0, end: int = 1, page=None):
    return ChunkRow(cid, "default", path, "h", 1, 1, index, text, "th", "", page, start, end)


def test_bootstrap_intervals_and_paired_differences():
    from rag.eval.metrics import bootstrap_ci, paired_difference

    values = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] * 10
    low, high = bootstrap_ci(values)
    assert low < 0.5 < high and high - low < 0.3
    assert bootstrap_ci(values) == (low, high)  # seeded
    assert bootstrap_ci([0.7]) == (0.7, 0.7) and bootstrap_ci([]) == (0.0, 0.0)
    a = {f"q{i}": v for i, v in enumerate(values)}
    same = paired_difference(a, dict(a))
    assert same == (0.0, 0.0, 0.0)  # paired: no spread at all
    better = paired_difference(a, {q: v + 0.01 for q, v in a.items()})
    assert better[0] == pytest.approx(0.01) and better[1] == pytest.approx(0.01) and better[2] == pytest.approx(0.01)
    # a +0.01 shift is certain when paired; unpaired intervals of the two modes would overlap almost wholly
    noisy = paired_difference(a, {q: v + (0.05 if i % 2 else -0.05) for i, (q, v) in enumerate(a.items())})
    assert noisy[1] < 0 < noisy[2]


def test_reciprocal_rank_fusion_by_hand():
    """What fuses the word and character-pair lists of a Chinese text search."""
    vector = [(_row("a"), 0.9), (_row("b"), 0.8), (_row("c"), 0.7)]
    text = [(_row("c"), 12.0), (_row("d"), 9.0)]
    fused = fuse_ranked([vector, text])
    scores = {row.id: score for row, score in fused}
    assert scores["c"] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert scores["a"] == pytest.approx(1 / (RRF_K + 1))
    assert [row.id for row, _ in fused] == ["c", "a", "b", "d"]


def test_hybrid_combination_of_z_scores_by_hand():
    vector = [(_row("a"), 0.9), (_row("b"), 0.8), (_row("c"), 0.7)]
    text = [(_row("c"), 12.0), (_row("d"), 9.0)]
    z_a = 0.1 / math.sqrt(0.02 / 3)  # vector: mean 0.8, deviation sqrt(0.02 / 3); text: mean 10.5, deviation 1.5
    combined = combine(vector, text)
    scores = {s.chunk_id: s.score for s in combined}
    assert scores["a"] == pytest.approx(0.5 * z_a + 0.5 * -1.0)  # missing from text: its lowest z, -1
    assert scores["b"] == pytest.approx(0.5 * 0.0 + 0.5 * -1.0)
    assert scores["c"] == pytest.approx(0.5 * -z_a + 0.5 * 1.0)
    assert scores["d"] == pytest.approx(0.5 * -z_a + 0.5 * -1.0)  # missing from vector: its lowest z
    assert [s.chunk_id for s in combined] == ["a", "c", "b", "d"]
    # a list of one hit (no spread) lifts that hit above the chunks it lacks
    lone = {s.chunk_id: s.score for s in combine(vector, [(_row("b"), 3.0)])}
    assert lone["b"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0) and lone["a"] == pytest.approx(0.5 * z_a)
    assert [s.chunk_id for s in combine([], text)] == ["c", "d"]  # one list alone keeps its order


# -- search modes on a real index ------------------------------------------------------------------


@pytest.fixture
def index(tmp_path, docs, embedder):
    (docs / "parts.md").write_text(
        "# Spare parts\n\nThe replacement pump for the boiler is part number XJ-9921-B.\n\n"
        "## Filters\n\nThe water filter cartridge is model AQ-17.\n"
    )
    make_pdf(docs / "report.pdf", ["Quarterly report for the garden club.", "Budget: the fence repair cost 340 euros."])
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder)
    idx.add(docs)
    return idx


def test_text_and_hybrid_find_an_exact_code(index):
    text = index.search("XJ-9921-B", k=3, mode="text")
    assert text and text[0].path.endswith("parts.md")
    hybrid = index.search("XJ-9921-B", k=3, mode="hybrid")
    assert hybrid[0].path.endswith("parts.md")
    assert hybrid[0].score > 0  # above the average candidate of both lists (z-scores)


def test_modes_agree_on_an_easy_question_and_reject_unknown_modes(index):
    for mode in ("vector", "text", "hybrid"):
        assert index.search("spare key flowerpot", k=1, mode=mode)[0].path.endswith("house.md"), mode
    with pytest.raises(rag.InvalidOption, match="unknown retrieval mode") as bad:
        index.search("x", mode="fuzzy")
    assert "choose one of" in bad.value.hint


def test_an_unknown_collection_is_named_not_searched_as_empty(index):
    with pytest.raises(rag.NotInIndex, match="no collection 'nope'"):
        index.search("spare key", collection="nope")
    assert index.search("spare key", collection="default")  # the one that exists


def test_full_text_index_follows_the_ingest_path(index, docs):
    assert any(i.index_type == "FTS" for i in index._open()._table.list_indices())
    (docs / "parts.md").unlink()
    index.add(docs)
    assert all(not h.path.endswith("parts.md") for h in index.search("XJ-9921-B", k=5, mode="text"))
    (docs / "car.md").write_text("# Car\n\nThe tyre pressure code is TP-88.\n")
    index.add(docs)
    assert index.search("TP-88", k=1, mode="text")[0].path.endswith("car.md")


def test_filters_by_glob_type_and_collection(index, docs, tmp_path):
    assert {h.path.rsplit("/", 1)[1] for h in index.search("boiler", k=10, file_types=["pdf"])} <= {
        "manual.pdf",
        "report.pdf",
    }
    assert {h.path.rsplit("/", 1)[1] for h in index.search("boiler", k=10, path_globs=["*/p*.md"])} == {"parts.md"}
    assert index.search("boiler", k=10, path_globs=["/nowhere/**"]) == []
    other = tmp_path / "w"
    other.mkdir()
    (other / "w.md").write_text("# Work\n\nThe boiler at the office is serviced in May.\n")
    index.add(other, collection="work")
    assert {h.path for h in index.search("boiler", k=10, collection="work")} == {str(other / "w.md")}


def test_rerank_without_a_reranker_is_a_clear_error(tmp_path, docs, embedder):
    idx = rag.open_index(tmp_path / "i2", embed_model=embedder, reranker=False)
    idx.add(docs)
    with pytest.raises(rag.RagError, match="no reranker"):
        idx.search("spare key", rerank=True)
    assert idx.search("spare key", k=1)[0].path.endswith("house.md")  # default: off, no error


# -- Chinese full text -----------------------------------------------------------------------------


def _zh_pages(folder, n=30):
    src = data_path("tldr", "zh", "common")
    pages = sorted(src.glob("*.md"))[:n]
    for page in pages:
        shutil.copy(page, folder / page.name)
    return pages


def test_chinese_full_text_search_finds_the_page_from_its_description(tmp_path, embedder):
    folder = tmp_path / "zh"
    folder.mkdir()
    pages = _zh_pages(folder)
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder)
    idx.add(folder)
    hits = total = 0
    for page in pages:
        lines = [ln[2:].strip() for ln in page.read_text().splitlines() if ln.startswith("> ") and "更多信息" not in ln]
        query = lines[0].rstrip("。") if lines else ""
        if len(query) < 4:
            continue
        total += 1
        top = [h.path for h in idx.search(query, k=3, mode="text")]
        hits += str(folder / page.name) in top
    assert total >= 20 and hits / total >= 0.8, f"{hits}/{total}"


def _pieces(pages):
    """(4 characters from the middle of each description's longest CJK run of 6+, its page)."""
    import re

    out = []
    for page in pages:
        lines = [ln[2:].strip() for ln in page.read_text().splitlines() if ln.startswith("> ") and "更多信息" not in ln]
        runs = re.findall(r"[\u4e00-\u9fff]{6,}", lines[0]) if lines else []
        if runs:
            run = max(runs, key=len)
            out.append((run[len(run) // 2 - 2 : len(run) // 2 + 2], page.name))
    return out


def test_a_piece_cut_from_inside_chinese_words_is_found_through_the_pair_index(tmp_path, embedder):
    """ICU word breaks miss a query that cuts across words; the CJK character-pair index finds it."""
    folder = tmp_path / "zh"
    folder.mkdir()
    pages = _zh_pages(folder, n=60)
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder)
    idx.add(folder)
    store = idx._open()
    pieces = _pieces(pages)
    found = {True: 0, False: 0}
    for piece, name in pieces:
        for pairs in (True, False):
            top = [r.path for r, _ in store.search_text(piece, 3, pairs=pairs)]
            found[pairs] += str(folder / name) in top
    assert len(pieces) >= 30
    assert found[True] / len(pieces) >= 0.9, found
    assert found[True] > found[False], found  # words alone miss some of them
    # English queries never touch the pair index: the same results either way
    english = [(r.id, s) for r, s in store.search_text("archive files gzip", 5)]
    assert english == [(r.id, s) for r, s in store.search_text("archive files gzip", 5, pairs=False)]


def test_cjk_pairs_and_runs():
    from ingest.normalize import cjk_pairs, cjk_runs

    assert cjk_pairs("压缩文件，tar 猫") == "压缩 缩文 文件 猫"
    assert cjk_pairs("plain English text") == ""
    assert cjk_pairs("カタカナ 한국어") == "カタ タカ カナ 한국 국어"
    assert cjk_runs("列出已连接的设备。tar 压缩", 3) == ["列出已连接的设备"]


def test_an_index_made_before_the_pair_index_warns_then_gains_it_on_the_next_run(tmp_path, embedder):
    """An older index (no pairs column, no pair index) still answers Chinese queries by words, with a
    warning; the next `rag index` run adds the column, fills it and builds the index, changing nothing else."""
    folder = tmp_path / "zh"
    folder.mkdir()
    pages = _zh_pages(folder, n=20)
    (folder / "notes.md").write_text("# Notes\n\nThe spare key is under the blue flowerpot.\n")
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder)
    idx.add(folder)
    store = idx._open()
    table = store._table
    before = sorted(table.to_arrow().select(["id", "text"]).to_pylist(), key=lambda r: r["id"])
    table.drop_index("cjk_pairs_idx")
    table.drop_columns(["cjk_pairs"])  # what an index written before this column looks like
    piece, name = _pieces(pages)[0]
    old = rag.open_index(tmp_path / "idx", embed_model=embedder)
    with pytest.warns(rag.IndexIncomplete, match="character-pair index"):
        old.search(piece, k=3, mode="text")
    report = rag.open_index(tmp_path / "idx", embed_model=embedder).add(folder)
    assert report.embedded == 0  # nothing re-embedded: only the column and its index were added
    again = rag.open_index(tmp_path / "idx", embed_model=embedder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hits = again.search(piece, k=3, mode="text")
    assert str(folder / name) in [h.path for h in hits]
    table = again._open()._table
    after = table.to_arrow().select(["id", "text", "cjk_pairs"]).to_pylist()
    assert sorted(({"id": r["id"], "text": r["text"]} for r in after), key=lambda r: r["id"]) == before
    from ingest.normalize import cjk_pairs

    assert all(r["cjk_pairs"] == cjk_pairs(r["text"]) for r in after if cjk_pairs(r["text"]))


def test_whitespace_tokenisation_would_not_find_chinese_words(tmp_path):
    """The evidence for ICU: the same table with LanceDB's default tokenizer finds nothing."""
    import lancedb
    from lancedb.index import FTS

    table = lancedb.connect(str(tmp_path / "db")).create_table(
        "t", pa.table({"text": ["创建一个 gzip 压缩文件并将其写入文件。", "列出目录内容。显示隐藏文件。"]})
    )
    table.create_index("text", config=FTS(base_tokenizer="simple"))
    assert table.search("压缩文件", query_type="fts").limit(2).to_list() == []
    from ingest.store import _fts_config

    table.create_index("text", config=_fts_config(), replace=True)
    found = table.search("压缩文件", query_type="fts").limit(2).to_list()
    assert found and found[0]["text"].startswith("创建一个")


# -- context assembly ------------------------------------------------------------------------------


def _src(cid, path, index, score, text="x", start=0, end=1, page=None):
    return Source(cid, path, text, score, page=page, chunk_index=index, char_start=start, char_end=end)


def test_diversify_caps_chunks_per_document_but_fills_k():
    ranked = [_src(f"a{i}", "/a.pdf", i, 1 - i / 10) for i in range(5)] + [_src("b0", "/b.md", 0, 0.4)]
    picked = diversify(ranked, 3, per_document=2)
    assert [s.chunk_id for s in picked] == ["a0", "a1", "b0"]
    assert [s.chunk_id for s in diversify(ranked, 5, per_document=2)] == ["a0", "a1", "a2", "a3", "b0"]


def test_merge_adjacent_removes_overlap_using_offsets():
    source = "alpha beta gamma delta epsilon zeta"
    a = _src("1", "/d.txt", 3, 0.9, source[0:16], 0, 16)  # "alpha beta gamma"
    b = _src("2", "/d.txt", 4, 0.7, source[11:29], 11, 29)  # "gamma delta epsilo"
    c = _src("3", "/other.txt", 0, 0.8, "other")
    merged = merge_adjacent([a, c, b])
    assert [m.path for m in merged] == ["/d.txt", "/other.txt"]
    assert merged[0].text == source[0:29] and (merged[0].char_start, merged[0].char_end) == (0, 29)
    assert merged[0].score == 0.9
    far = _src("4", "/d.txt", 9, 0.5, "far", 90, 93)
    assert len(merge_adjacent([a, far])) == 2  # not adjacent: kept apart
    other_page = _src("5", "/d.txt", 4, 0.5, "p2", 0, 2, page=2)
    assert len(merge_adjacent([a, other_page])) == 2  # never across pages


def test_context_widens_hits_with_their_neighbours(tmp_path, embedder):
    folder = tmp_path / "long"
    folder.mkdir()
    sentences = [f"Paragraph {i} talks about topic number {i} in some detail." for i in range(120)]
    sentences[60] = "The secret ingredient of the soup is smoked paprika."
    (folder / "long.txt").write_text(" ".join(sentences))
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder)
    idx.add(folder)
    narrow = idx.sources("What is the secret ingredient of the soup?", k=1)
    wide = idx.sources("What is the secret ingredient of the soup?", k=1, widen=1)
    assert "smoked paprika" in narrow[0].text and "smoked paprika" in wide[0].text
    assert len(wide[0].text) > len(narrow[0].text) and wide[0].text.count("smoked paprika") == 1
    source = (folder / "long.txt").read_text()
    assert source[wide[0].char_start : wide[0].char_end] == wide[0].text


# -- the eval harness ------------------------------------------------------------------------------


def _beir_slice(root, queries=8, distractors=20):
    src = data_path("scifact")
    (root / "qrels").mkdir(parents=True)
    rows = (src / "qrels" / "test.tsv").read_text().splitlines()[1 : queries + 1]
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    qids = {r.split("\t")[0] for r in rows}
    docs = {r.split("\t")[1].strip() for r in rows}
    kept = []
    for line in (src / "corpus.jsonl").read_text().splitlines():
        doc_id = json.loads(line)["_id"]
        if doc_id in docs or len(kept) < len(docs) + distractors:
            kept.append(line)
    (root / "corpus.jsonl").write_text("\n".join(kept) + "\n")
    qs = [ln for ln in (src / "queries.jsonl").read_text().splitlines() if json.loads(ln)["_id"] in qids]
    (root / "queries.jsonl").write_text("\n".join(qs) + "\n")
    return len(qids)


def test_eval_retrieval_cli_reports_every_metric_and_reuses_its_index(tmp_path, minilm_path):
    n = _beir_slice(tmp_path / "beir")
    args = ["eval", "retrieval", str(tmp_path / "beir"), "--workspace", str(tmp_path / "ws")]
    args += ["--embed-model", str(minilm_path), "--modes", "text,vector,hybrid", "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    results = {r["mode"]: r for r in json.loads(first.stdout)["results"]}
    assert set(results) == {"text", "vector", "hybrid"}
    for r in results.values():
        assert r["queries"] == n
        for key in ("ndcg_10", "recall_10", "recall_100", "mrr_10"):
            assert 0.0 <= r[key] <= 1.0
        assert r["recall_100"] >= r["recall_10"] and 0 < r["p50_ms"] <= r["p95_ms"]
    assert results["vector"]["ndcg_10"] > 0.5  # judged abstracts among few distractors
    for r in results.values():
        low, high = r["ndcg_10_ci"]
        assert low <= r["ndcg_10"] <= high
    diffs = {(d["a"], d["b"]): d for d in json.loads(first.stdout)["differences"]}
    assert set(diffs) == {("text", "vector"), ("text", "hybrid"), ("vector", "hybrid")}
    d = diffs[("text", "hybrid")]
    assert d["ndcg_10_diff"] == pytest.approx(results["hybrid"]["ndcg_10"] - results["text"]["ndcg_10"])
    assert d["ci"][0] <= d["ndcg_10_diff"] <= d["ci"][1]
    again = CliRunner().invoke(app, args[:-3] + ["--modes", "text"])
    assert again.exit_code == 0, again.output
    assert "text" in again.stdout and "nDCG@10" in again.stdout and "95% CI" in again.stdout


def test_eval_retrieval_skips_rerank_when_the_reranker_cannot_load_before_indexing(tmp_path, minilm_path):
    """Offline, the default modes include hybrid+rerank and the default reranker isn't cached: the run
    says so in one line before it indexes anything, and evaluates the other modes."""
    _beir_slice(tmp_path / "beir", queries=3, distractors=3)
    args = ["eval", "retrieval", str(tmp_path / "beir"), "--workspace", str(tmp_path / "ws")]
    result = CliRunner().invoke(app, args + ["--embed-model", str(minilm_path)])
    assert result.exit_code == 0, result.output
    note = [line for line in result.stderr.splitlines() if line.startswith("skipping hybrid+rerank: ")]
    assert len(note) == 1 and "Qwen3-Reranker" in note[0]
    assert result.stderr.index(note[0]) < result.stderr.index("files]")  # before the corpus was indexed
    assert "hybrid+rerank" not in result.stdout and "hybrid " in result.stdout
    only = ["eval", "retrieval", str(tmp_path / "beir"), "--workspace", str(tmp_path / "ws2")]
    refused = CliRunner().invoke(app, only + ["--embed-model", str(minilm_path), "--modes", "hybrid+rerank"])
    assert refused.exit_code == 1 and "no mode left to evaluate" in refused.stderr
    assert not (tmp_path / "ws2" / "corpus").exists()  # nothing was written or indexed


def test_hybrid_plus_rerank_rescores_the_top_candidates_with_a_real_llm(tmp_path, docs, embedder, smollm2_path):
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder, reranker=str(smollm2_path))
    idx.add(docs)
    plain = idx.search("Where is the spare key hidden?", k=3, rerank=False)
    reranked = idx.search("Where is the spare key hidden?", k=3, rerank=True)
    assert {s.chunk_id for s in reranked} <= {s.chunk_id for s in idx.search("Where is the spare key hidden?", k=20)}
    assert all(0.0 <= s.score <= 1.0 for s in reranked) and reranked == sorted(reranked, key=lambda s: -s.score)
    assert [s.score for s in plain] != [s.score for s in reranked]  # RRF scores replaced by P(yes)
    expected = idx.reranker.score("Where is the spare key hidden?", [reranked[0].text])[0]
    assert reranked[0].score == pytest.approx(expected, abs=1e-4)
