"""Questions about the documents as a whole (rag/overview.py): which phrasings are recognised, in English
and Chinese, and what an overview holds (each document's opening, spread over a large collection)."""

from __future__ import annotations

import pytest

from rag.overview import OPENING_CHARS, Scope, overview, scope
from rag.types import Source


@pytest.mark.parametrize(
    "question",
    [
        "What is this folder about?",
        "what are these documents about",
        "What's in my notes?",
        "Summarize the documents.",
        "Please give me an overview of my files",
        "What do these files cover?",
        "这些文档讲什么？",
        "这个文件夹是关于什么的",
        "总结一下这些文档",
        "请概述我的笔记",
    ],
)
def test_questions_about_the_whole_collection(question):
    assert scope(question) == Scope()


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("Summarise my notes on tar archives", "tar archives"),
        ("What do my notes say about backups?", "backups"),
        ("give me a summary of the documents about the boiler", "the boiler"),
        ("总结一下关于备份的笔记", "备份"),
    ],
)
def test_questions_about_a_topic_in_general_keep_the_topic(question, topic):
    assert scope(question) == Scope(topic)


@pytest.mark.parametrize(
    "question",
    [
        "How do I extract a tar archive?",
        "What is in the box?",
        "What is the capital of France?",
        "Where is the key?",
        "备用钥匙在哪里？",
    ],
)
def test_ordinary_questions_are_left_alone(question):
    assert scope(question) is None


def _first(name: str, text: str) -> Source:
    return Source(path=f"/docs/{name}", text=text, score=1.0, chunk_id=name)


def test_an_overview_spreads_over_a_large_collection_and_shows_each_opening():
    firsts = [_first(f"{i:02d}.md", f"Document {i}.") for i in range(20)]
    shown = overview(firsts, limit=5)
    assert [s.path for s in shown] == [f"/docs/{i:02d}.md" for i in (0, 5, 10, 14, 19)]
    assert overview(firsts[:3], limit=5) == firsts[:3]


def test_a_long_opening_is_cut_at_a_paragraph_or_sentence_end():
    text = "# Title\n\n" + "A sentence about the topic. " * 40
    (cut,) = overview([_first("long.md", text)])
    assert len(cut.text) <= OPENING_CHARS and cut.text.endswith("topic.") and cut.text.startswith("# Title")
    assert cut.char_end == cut.char_start + len(cut.text)
