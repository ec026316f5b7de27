"""The answer policy (rag/answer.py): on every path an answer can take — answered, bare markers asked
again, a sure refusal asked again, refused by the gate, by the model, cut at a loop or at max_tokens, in
Chinese — the text streamed is `Answer.text`, and a refused answer says which stage refused it.

Real LanceDB and the real MiniLM embedder; a scripted stand-in chat model that streams its replies in
pieces of one to three characters (cut anywhere, as tokens are), because what is tested is what the
policy does with a given reply, not the model.
"""

from __future__ import annotations

import math
import re

import pytest
from conftest import ScriptedGenerator, index_folder, make_pdf

import rag
from rag.answer import NO_ANSWER, NOT_IN_SOURCES, Retrieved, answer_events
from rag.generate import Piece
from rag.prompt import NOT_FOUND, NOT_FOUND_ZH, PLAIN_SYSTEM_PROMPT, SYSTEM_PROMPT
from rag.refusal import ReadCheck, gate_for

KEY = "Where is the spare key hidden?"
KEY_ZH = "备用钥匙藏在哪里？"
ABSENT = "What is the boiling point of liquid nitrogen in Kelvin?"
ABSENT_ZH = "液氮的沸点是多少开尔文？"
ANSWER = "The spare key is under the blue flowerpot [1]."


class Replies(ScriptedGenerator):
    """Gives each call the next of its replies (the last one again after that), in pieces of up to three
    characters, stopping at `max_tokens` pieces like a real model; `thinking` comes first, if given."""

    def __init__(self, *replies: str, thinking: str = "") -> None:
        super().__init__()
        self.replies, self.thinking = list(replies), thinking

    def stream(self, messages, *, max_tokens=512, thinking=False):
        self.calls.append([dict(m) for m in messages])
        reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        if thinking and self.thinking:
            yield Piece(thinking=self.thinking, prompt_tokens=100)
        for i, piece in enumerate(re.findall(r".{1,3}", reply, re.S)[:max_tokens], 1):
            yield Piece(text=piece, prompt_tokens=100, generated_tokens=i, generation_tps=10.0)


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder):
    """The house notes, a recipe, a two-page PDF manual and a Chinese note, indexed once for the module."""
    tmp = tmp_path_factory.mktemp("policy")
    folder = tmp / "docs"
    folder.mkdir()
    (folder / "house.md").write_text(
        "# House notes\n\n## Keys\n\nThe spare key is hidden under the blue flowerpot on the back porch.\n\n"
        "## Wifi\n\nThe wifi password is written on the fridge calendar.\n"
    )
    (folder / "recipes.txt").write_text(
        "Grandma's pancake recipe: two eggs, one cup of flour, one cup of milk, a pinch of salt.\n"
    )
    (folder / "家.md").write_text("# 钥匙\n\n备用钥匙藏在后门廊的蓝色花盆下面。\n")
    make_pdf(folder / "manual.pdf", ["The boiler reset button is red.", "Bleed the radiators every October."])
    return index_folder(tmp, folder, embedder, None)


def ask(index, question: str, *replies: str, **options) -> tuple[rag.Answer, Replies, list]:
    """Answer `question` with a stand-in giving `replies`; checks the invariant every path must keep:
    one SourcesEvent first, one DoneEvent last, and the TokenEvents' text is exactly `Answer.text`."""
    index._generator = llm = Replies(*replies, thinking=options.pop("thought", ""))
    events = list(index.stream_answer(question, k=3, **options))
    assert isinstance(events[0], rag.SourcesEvent) and isinstance(events[-1], rag.DoneEvent)
    assert [type(e) for e in events].count(rag.SourcesEvent) == [type(e) for e in events].count(rag.DoneEvent) == 1
    answer = events[-1].answer
    streamed = "".join(e.text for e in events if isinstance(e, rag.TokenEvent))
    assert streamed == answer.text
    assert answer.sources == events[0].sources and answer.sources  # refused or not, the sources are given
    assert answer.refused == bool(answer.refusal_reason)  # a refusal always says why, an answer never does
    return answer, llm, events


# -- answered ---------------------------------------------------------------------------------------------


def test_a_normal_answer_streams_its_text_and_is_checked(index):
    answer, llm, _ = ask(index, KEY, ANSWER)
    assert answer.text == ANSWER and not answer.refused and answer.stopped_reason == "end"
    assert len(llm.calls) == 1 and llm.calls[0][0]["content"] == SYSTEM_PROMPT
    assert answer.sentences and answer.citations  # the citation check ran on what was shown
    assert answer.timings.first_token_ms > 0 and answer.timings.generated_tokens > 0


def test_a_reply_of_bare_markers_is_asked_again_and_only_the_second_reply_is_streamed(index):
    answer, llm, _ = ask(index, KEY, "[1] [2]", "The spare key is under the blue flowerpot.")
    assert len(llm.calls) == 2 and llm.calls[1][0]["content"] == PLAIN_SYSTEM_PROMPT
    assert answer.text == "The spare key is under the blue flowerpot." and not answer.refused


def test_a_confident_refusal_is_asked_again_and_the_second_reply_is_the_answer(index):
    answer, llm, _ = ask(index, KEY, NOT_FOUND, "The spare key is under the blue flowerpot.")
    assert index.gate.probability(KEY, answer.sources) > index.gate.confident  # why it was asked again
    assert len(llm.calls) == 2 and llm.calls[1][0]["content"] == PLAIN_SYSTEM_PROMPT
    assert answer.text == "The spare key is under the blue flowerpot." and not answer.refused


def test_a_looping_reply_ends_at_its_first_repetition_and_streams_only_that(index):
    answer, llm, _ = ask(index, KEY, (ANSWER + " ") * 5)
    assert answer.text == ANSWER and answer.stopped_reason == "repetition" and not answer.refused
    assert len(llm.calls) == 1


def test_a_reply_cut_at_max_tokens_streams_what_was_generated(index):
    answer, _, _ = ask(index, KEY, ANSWER, max_tokens=8)  # 8 pieces of 3 characters
    assert answer.text == ANSWER[:24].rstrip() and answer.stopped_reason == "max_tokens"


def test_thinking_is_streamed_apart_and_never_reaches_the_text(index):
    answer, _, events = ask(index, KEY, ANSWER, thinking=True, thought="Source [1] says flowerpot.")
    assert "".join(e.text for e in events if isinstance(e, rag.ThinkingEvent)) == answer.thinking
    assert answer.thinking == "Source [1] says flowerpot." and answer.text == ANSWER


def test_with_general_answers_allowed_the_models_refusal_is_streamed_as_its_answer(index):
    answer, llm, _ = ask(index, KEY, NOT_FOUND, allow_general=True)
    assert answer.text == NOT_FOUND and not answer.refused and len(llm.calls) == 1


# -- questions about the documents as a whole ------------------------------------------------------------


@pytest.mark.parametrize(
    "question", ["What is this folder about?", "这些文档讲什么？", "Give me an overview of my notes"]
)
def test_a_question_about_the_whole_folder_is_answered_from_each_documents_opening(index, question):
    retrieved = index.sources(question, 5)
    assert index.gate.refuses(question, retrieved)[0]  # shares no words with any document: retrieval can't help
    reply = "The house notes say where the spare key is hidden [1]. The boiler reset button is red [2]. The pancake recipe needs two eggs [3]."
    answer, llm, _ = ask(index, question, reply)
    assert not answer.refused and answer.text == reply and len(llm.calls) == 1
    paths = [s.path for s in answer.sources]
    assert len(paths) == len(set(paths)) == 4 and all(s.chunk_index == 0 for s in answer.sources)
    assert [p.rsplit("/", 1)[1] for p in paths] == sorted(["house.md", "recipes.txt", "家.md", "manual.pdf"])
    prompt = llm.calls[0][-1]["content"]
    assert "blue flowerpot" in prompt and "pancake" in prompt and "蓝色花盆" in prompt and "boiler reset" in prompt
    assert answer.citations == [1, 2, 3]  # cited and checked like any answer


def test_a_summary_of_notes_on_a_topic_is_searched_and_judged_by_its_topic(index):
    question = "Summarise my notes on the spare key"
    answer, llm, _ = ask(index, question, ANSWER)
    assert not answer.refused and answer.text == ANSWER
    assert answer.sources[0].path.endswith("house.md") and "spare key" in answer.sources[0].text
    assert index.gate.probability("the spare key", answer.sources) > index.gate.probability(question, answer.sources)


# -- refused, each saying why -----------------------------------------------------------------------------


@pytest.mark.parametrize(("question", "expected"), [(ABSENT, NOT_FOUND), (ABSENT_ZH, NOT_FOUND_ZH)])
def test_the_gate_refuses_before_the_model_is_asked_in_the_questions_language(index, question, expected):
    answer, llm, _ = ask(index, question, "Liquid nitrogen boils at 77 K [1].")
    assert llm.calls == []
    assert answer.refused and answer.text == expected
    assert answer.refusal_reason.startswith("relevance ") and "gate" in answer.refusal_reason
    assert answer.timings.generated_tokens == 0 and answer.timings.first_token_ms == 0


def test_bare_markers_twice_are_refused_as_no_answer(index):
    answer, llm, _ = ask(index, KEY, "[1]", "[1] [2]")
    assert len(llm.calls) == 2
    assert answer.refused and answer.text == NOT_FOUND and answer.refusal_reason == NO_ANSWER


def test_a_refusal_asked_again_and_refused_again_is_the_models_refusal(index):
    answer, llm, _ = ask(index, KEY, NOT_FOUND, "The sources do not contain the answer.")
    assert len(llm.calls) == 2
    assert answer.refused and answer.text == NOT_FOUND and answer.refusal_reason == NOT_IN_SOURCES
    assert answer.timings.generated_tokens > 0 and answer.timings.first_token_ms == 0  # nothing of it shown


def test_a_refusal_in_the_models_own_words_is_refused_with_the_words_it_streamed(index):
    own = "No information about a spare key is given."  # doesn't open like a refusal: shown as it came
    answer, llm, _ = ask(index, KEY, own)
    assert len(llm.calls) == 1
    assert answer.refused and answer.text == own and answer.refusal_reason == NOT_IN_SOURCES


def test_a_chinese_questions_refusal_by_the_model_is_the_chinese_sentence(index):
    answer, llm, _ = ask(index, KEY_ZH, NOT_FOUND)  # the model refused in English
    assert llm.calls  # past the gate: 家.md holds the answer
    assert answer.refused and answer.text == NOT_FOUND_ZH and answer.refusal_reason == NOT_IN_SOURCES


def test_the_policy_refuses_a_question_with_no_sources_without_asking_the_model():
    llm = Replies(ANSWER)
    events = list(answer_events(Retrieved(KEY, []), llm, gate_for("all-MiniLM-L6-v2")))
    answer = events[-1].answer
    assert [e.text for e in events if isinstance(e, rag.TokenEvent)] == [answer.text] == [NOT_FOUND]
    assert answer.refused and answer.refusal_reason == "no sources were retrieved" and llm.calls == []


# -- the read check: the model's own probability of "not found", read before it answers -------------------


class Reads(Replies):
    """Replies, plus a read check: `opening_logprob` gives log(`p_not_found`) and records what it read."""

    def __init__(self, *replies: str, p_not_found: float) -> None:
        super().__init__(*replies)
        self.p, self.read = p_not_found, []

    def opening_logprob(self, messages, text):
        self.read.append(([dict(m) for m in messages], text))
        return math.log(self.p)


CHECK = ReadCheck("scripted", threshold=0.3)


def read(index, question, p_not_found, *replies, **options):
    index._generator = llm = Reads(*(replies or (ANSWER,)), p_not_found=p_not_found)
    index.check = CHECK
    try:
        events = list(index.stream_answer(question, k=3, **options))
    finally:
        del index.check  # looked up again (none for the stand-in) by the next test
    answer = events[-1].answer
    assert "".join(e.text for e in events if isinstance(e, rag.TokenEvent)) == answer.text
    return answer, llm


def test_a_model_leaning_to_not_found_refuses_before_it_generates(index):
    answer, llm = read(index, KEY, 0.45)
    assert answer.refused and answer.text == NOT_FOUND and llm.calls == []
    assert answer.refusal_reason == ("the model reads the sources as not holding the answer (P(not found) 0.45 > 0.30)")
    assert answer.sources  # the closest sources stay
    ((messages, text),) = llm.read
    assert text == NOT_FOUND and messages[0]["content"] == SYSTEM_PROMPT and "blue flowerpot" in messages[1]["content"]


def test_below_the_threshold_the_answer_is_generated_from_the_prompt_just_read(index):
    answer, llm = read(index, KEY, 0.05)
    assert not answer.refused and answer.text == ANSWER
    assert llm.read[0][0] == llm.calls[0]  # the same messages: the reply reuses the KV cache of the read


def test_the_read_check_uses_the_not_found_sentence_of_the_questions_language(index):
    _, llm = read(index, KEY_ZH, 0.05)
    assert llm.read[0][1] == NOT_FOUND_ZH


@pytest.mark.parametrize("options", [{"allow_general": True}, {"thinking": True}], ids=["allow_general", "thinking"])
def test_the_read_check_is_skipped_where_it_does_not_apply(index, options):
    answer, llm = read(index, KEY, 0.9, **options)
    assert llm.read == [] and not answer.refused


def test_the_read_check_is_skipped_for_questions_about_the_whole_folder(index):
    answer, llm = read(index, "What is this folder about?", 0.9, "These are house notes [1].")
    assert llm.read == [] and not answer.refused


def test_the_read_check_also_reads_sources_the_caller_chose(index):
    chosen = index.sources("Where is the wifi password?", 1)
    answer, llm = read(index, KEY, 0.9, sources=chosen)
    assert answer.refused and len(llm.read) == 1 and llm.calls == []
