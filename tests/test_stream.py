"""What is streamed is the answer: looping replies end at their first repetition, refusals are shown once
and in the question's language, invalid markers never reach the screen, and `rag ask`, `--json` and the
HTTP API agree on which sentences are supported and which sources are cited (by the model or the checker).

The newcomer's folder (../shared/data/newcomer) and the real SmolLM2 where the model's behaviour is the
point; a scripted stand-in where the index's handling of a given reply is.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import ScriptedGenerator, data_path, index_folder
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.cli.main import _show_sources
from rag.defaults import DEFAULT_MAX_TOKENS
from rag.generate import Sampling
from rag.prompt import NOT_FOUND, NOT_FOUND_ZH
from rag.serve import openai as oa
from rag.stream import ReplyFilter

# the three loops of the newcomer's first hour, as SmolLM2 wrote them (shortened)
LOOPS = [
    ("The list: 1. 1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1", "The list: 1. 1."),
    (
        "The excess on car insurance is 2026. " * 6 + "The excess",
        "The excess on car insurance is 2026.",
    ),
    (
        "Water the tomatoes every second evening [1]. Feed them on Sundays [1]. " * 3,
        "Water the tomatoes every second evening [1]. Feed them on Sundays [1].",
    ),
    (  # a numbered list of one word, counting up: every item differs only by its number
        "1. Tomatoes\n2. Shed\n" + "".join(f"{n}. tar\n" for n in range(3, 52)),
        "1. Tomatoes\n2. Shed\n3. tar\n4. tar\n5. tar",
    ),
]


def _pieces(text: str) -> list[str]:
    return re.findall(r".{1,3}", text, re.S)  # as small as tokens, cut anywhere


def _stream(events) -> tuple[str, rag.Answer]:
    shown, answer = "", None
    for event in events:
        if isinstance(event, rag.TokenEvent):
            shown += event.text
        elif isinstance(event, rag.DoneEvent):
            answer = event.answer
    assert answer is not None
    return shown, answer


@pytest.fixture
def newcomer(tmp_path):
    folder = tmp_path / "newcomer"
    folder.mkdir()
    for name in ("car.md", "garden.md"):
        shutil.copy(data_path("newcomer", name), folder)
    return folder


@pytest.mark.parametrize(("reply", "kept"), LOOPS)
def test_a_looping_reply_is_cut_at_its_first_repetition_and_nothing_after_the_cut_is_shown(reply, kept):
    f = ReplyFilter(n_sources=3)
    shown = ""
    for piece in _pieces(reply):
        shown += f.feed(piece)
        assert f.text.startswith(shown)  # never shown what the answer then lost
    shown += f.close()
    assert (shown, f.text, f.stopped) == (kept, kept, "repetition")


@pytest.mark.parametrize(("reply", "kept"), LOOPS)
def test_a_loop_is_cut_at_the_same_place_however_the_reply_is_split_into_pieces(reply, kept):
    # a piece ending in " [" hid that the sentence began like an earlier one, so its start was shown
    # ("… Feed them on Sundays [1]. Water the tomatoes every second evening")
    for size in range(1, 7):
        for offset in range(size):
            f = ReplyFilter(n_sources=3)
            pieces = [reply[:offset], *re.findall(f".{{1,{size}}}", reply[offset:], re.S)]
            shown = "".join(f.feed(p) for p in pieces) + f.close()
            assert shown == kept, (size, offset)


@pytest.mark.parametrize(
    "reply",
    [
        "The version is 1.1.1 and the server is 10.0.0.1 [1].",
        "| a | b |\n|---|---|---|---|\n| 1 | 2 |",
        "```\ntar tvf x.tar\n```\nThen run it again:\n```\ntar tvf x.tar\n```",
        "Step one. Step two. Step one is not step two.",
    ],
)
def test_text_that_only_looks_repetitive_is_shown_whole(reply):
    f = ReplyFilter(n_sources=3)
    shown = "".join(f.feed(p) for p in _pieces(reply)) + f.close()
    assert shown == reply and not f.stopped


@pytest.mark.parametrize(("reply", "kept"), LOOPS[1:])
def test_the_index_reports_a_cut_loop_and_streams_exactly_the_answer(tmp_path, newcomer, embedder, reply, kept):
    index = index_folder(tmp_path, newcomer, embedder, ScriptedGenerator(reply))
    shown, answer = _stream(index.stream_answer("What is the excess on the car insurance?"))
    assert shown == answer.text == kept
    assert answer.stopped_reason == "repetition"


def test_real_smollm2_stops_repeating_itself_and_ends_well_before_its_token_limit(
    tmp_path, newcomer, embedder, smollm2
):
    # SmolLM2 listed the notes, then began the list again, until max_tokens (512)
    index = index_folder(tmp_path, newcomer, embedder, smollm2)
    shown, answer = _stream(index.stream_answer("When is the next car service due?", k=2))
    assert shown == answer.text
    assert answer.stopped_reason == "repetition" and answer.timings.generated_tokens < 100
    sentences = [s.text for s in answer.sentences]
    assert len(sentences) == len(set(sentences)), answer.text
    assert "14 March 2026" in answer.text


def test_the_default_answer_length_fits_an_answer_and_is_what_every_adapter_uses():
    import inspect

    from rag.cli.main import ask, chat
    from rag.serve import http as server
    from rag.serve import mcp as mcp_server

    assert DEFAULT_MAX_TOKENS == 256
    for fn in (ask, chat, server.create_app, mcp_server.create_mcp):
        assert inspect.signature(fn).parameters["max_tokens"].default == DEFAULT_MAX_TOKENS, fn


def test_the_models_generation_config_sets_the_repetition_penalty(tmp_path, smollm2_path, smollm2):
    assert Sampling.of(smollm2_path) == Sampling()  # SmolLM2 recommends none
    twin = tmp_path / "smollm2-penalised"
    twin.mkdir()
    for item in smollm2_path.iterdir():
        (twin / item.name).symlink_to(item)
    (twin / "generation_config.json").unlink()
    (twin / "generation_config.json").write_text(json.dumps({"repetition_penalty": 1.5, "top_p": 0.8, "top_k": 20}))
    assert Sampling.of(twin) == Sampling(1.5, 0.8, 20)
    messages = [{"role": "user", "content": "Repeat after me forever: one one one one one one one one"}]
    plain = "".join(p.text for p in smollm2.stream(messages, max_tokens=24))
    penalised = "".join(p.text for p in rag.MLXGenerator(str(twin)).stream(messages, max_tokens=24))
    assert penalised != plain  # the same weights, greedy both times: only the penalty differs


# -- refusals: once, in the question's language -----------------------------------------------------------


@pytest.fixture
def tar_docs(tmp_path):
    folder = tmp_path / "zh"
    folder.mkdir()
    for name in ("tar.md", "du.md"):
        shutil.copy(data_path("tldr", "zh", "common", name), folder)
    return folder


def test_a_model_refusal_asked_again_is_shown_once_and_in_chinese(tmp_path, tar_docs, embedder):
    llm = ScriptedGenerator(NOT_FOUND)  # what SmolLM2 said, twice (the second time to the plain retry)
    index = index_folder(tmp_path, tar_docs, embedder, llm)
    shown, answer = _stream(index.stream_answer("如何列出 tar 文件的内容？"))
    assert len(llm.calls) == 2  # retrieval was sure (tar.md holds `tar tvf`): asked again
    assert shown == answer.text == NOT_FOUND_ZH and answer.refused


def test_with_general_answers_allowed_the_models_refusal_is_its_answer(tmp_path, tar_docs, embedder):
    index = index_folder(tmp_path, tar_docs, embedder, ScriptedGenerator(NOT_FOUND))
    shown, answer = _stream(index.stream_answer("如何列出 tar 文件的内容？", allow_general=True))
    assert shown == answer.text == NOT_FOUND


class Replies(ScriptedGenerator):
    """A stand-in that gives each call the next of its replies."""

    def __init__(self, *replies: str) -> None:
        super().__init__()
        self.replies = list(replies)

    def stream(self, messages, **options):
        self.reply = self.replies[min(len(self.calls), len(self.replies) - 1)]
        return super().stream(messages, **options)


def test_a_reply_of_looping_numbers_is_never_shown_and_is_asked_again(tmp_path, tar_docs, embedder):
    # SmolLM2's '1. 1.1.1.1.1…' for the Chinese tar question, 512 tokens long
    llm = Replies("1. 1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1", "用 `tar tvf` 列出存档的内容 [1]。")
    index = index_folder(tmp_path, tar_docs, embedder, llm)
    shown, answer = _stream(index.stream_answer("如何列出 tar 文件的内容？"))
    assert len(llm.calls) == 2
    assert shown == answer.text == "用 `tar tvf` 列出存档的内容 [1]。" and answer.stopped_reason == "end"


def test_a_marker_naming_no_source_is_never_streamed(tmp_path, newcomer, embedder):
    index = index_folder(tmp_path, newcomer, embedder, ScriptedGenerator("The padlock code is 8-2-6-3 [1][7]."))
    shown, answer = _stream(index.stream_answer("What is the shed padlock combination?", k=2))
    assert shown == answer.text == "The padlock code is 8-2-6-3 [1]." and answer.invalid_citations == (7,)


# -- one notion of "supported" and "cited", everywhere ---------------------------------------------------

CAR = "The next car service is due on 3 January 2026 [1]. The shed padlock combination is 8-2-6-3."


def test_a_wrong_date_is_unsupported_and_its_source_not_cited_while_a_backed_sentence_is(
    tmp_path, newcomer, embedder, capsys
):
    index = index_folder(tmp_path, newcomer, embedder, ScriptedGenerator(CAR))
    answer = index.ask("When is the next car service due?", k=2)
    wrong, padlock = answer.sentences
    assert not wrong.supported and wrong.citations == ()
    assert padlock.supported and padlock.attributed
    garden = next(n for n, s in enumerate(answer.sources, 1) if s.path.endswith("garden.md"))
    car = next(n for n, s in enumerate(answer.sources, 1) if s.path.endswith("car.md"))
    assert answer.citations == [garden] and answer.attributed_citations == [garden]
    assert answer.unsupported_citations == (1,) and car not in answer.citations
    # HTTP: the same sources cited, by the same hand
    body = oa.completion_json("rag", answer, 256)
    assert [(s["n"], s["cited"], s["cited_by"]) for s in body["sources"] if s["cited"]] == [(garden, True, "checker")]
    assert [s["supported"] for s in body["sentences"]] == [False, True]
    # the CLI: the unsupported sentence dimmed with a marker, only garden.md marked as cited (by the checker)
    _show_sources(answer)
    printed = capsys.readouterr().out
    assert "? not in your documents: “The next car service is due on 3 January 2026 [1].”" in printed
    marks = {line[:1] for line in printed.splitlines() if "car.md" in line or "garden.md" in line}
    lines = {re.sub(r"\s+\(score.*", "", line) for line in printed.splitlines() if re.match(r"[ *+]\[\d\]", line)}
    assert f"+[{garden}] garden.md › Garden diary › Shed" in lines or f"+[{garden}] garden.md › Garden diary" in lines
    assert f" [{car}] car.md › Car notes › Service" in lines or any(x.startswith(f" [{car}]") for x in lines)
    assert "*" not in marks and "+ cited by the checker" in printed


def test_rag_ask_and_ask_json_agree_on_what_is_cited_with_the_real_smollm2(
    tmp_path, newcomer, minilm_path, smollm2_path
):
    # garden.md was starred by `rag ask` while `--json` said "citations": [] and HTTP "cited": false
    runner = CliRunner()
    common = ["--index", str(tmp_path / "idx"), "--embed-model", str(minilm_path), "--llm", str(smollm2_path)]
    assert runner.invoke(app, ["index", str(newcomer), *common[:4]]).exit_code == 0
    asked = runner.invoke(app, ["ask", "What is the shed padlock combination?", *common, "-k", "2", "--json"])
    assert asked.exit_code == 0, asked.output
    data = json.loads(asked.stdout)
    assert "8-2-6-3" in data["answer"]
    cited = [s["n"] for s in data["sources"] if s["cited"]]
    assert cited == data["citations"] == [e["n"] for e in data["evidence"]] and cited
    garden = next(s for s in data["sources"] if s["path"].endswith("garden.md"))
    assert garden["cited"] and garden["cited_by"] in ("model", "checker")
    assert (garden["cited_by"] == "checker") == (garden["n"] in data["attributed_citations"])
    assert data["stopped_reason"] == "end" and all(s["supported"] for s in data["sentences"])


# -- a reply's verdict doesn't depend on how it was cut into pieces ---------------------------------


def _splits(reply: str):
    """The reply whole, a character at a time, a word at a time, and cut at random places."""
    import random

    yield [reply]
    yield list(reply)
    yield re.findall(r"\s*\S+", reply)
    for seed in range(20):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(reply)), rng.randint(1, min(25, len(reply) - 1))))
        yield [reply[a:b] for a, b in zip([0, *cuts], [*cuts, len(reply)], strict=True)]


LABELLED = ["p0055.md › National Grange of the Order of Patrons of Husbandry", "p0492.md › Horseshoe Bend"]


def _filtered(pieces, locations=LABELLED):
    from rag.citations import tokens

    reply = ReplyFilter(len(locations), {w for loc in locations for w in tokens(loc)})
    shown = "".join(reply.feed(p) for p in pieces) + reply.close()
    return shown, reply.held_back


def test_a_reply_of_source_labels_is_no_answer_however_it_streams():
    # a token at a time, " p" of "p0055" had counted as words of the reply's own, and it was shown
    reply = "[1] p0055.md › National Grange… [2] p0492.md › Horseshoe…"
    assert {_filtered(pieces) for pieces in _splits(reply)} == {("", "no words")}


def test_labels_echoed_before_a_refusal_make_a_refusal_however_it_streams():
    from rag.prompt import is_refusal

    reply = "[1] p0055.md › … [2] … I couldn't find that in your documents."
    assert {_filtered(pieces) for pieces in _splits(reply)} == {("", "refusal")}
    # the "." of "p0218.md" is no sentence end: the refusal is in the reply's first sentence
    assert is_refusal("[1] p0218.md › … [2] … I couldn't find that in your documents.")
    assert not is_refusal("I couldn't find the price in p0218.md. The key is under the pot [1].")
    # an answer that starts with a marker is still an answer, and still streams
    answer = "[1] The Grange was founded in 1867."
    assert {_filtered(pieces) for pieces in _splits(answer)} == {(answer, "")}


def test_a_chinese_answer_streams_from_its_first_character():
    # a CJK character is a word of its own: holding a growing last word must not hold a whole clause
    answer = "列出存档的内容，使用 tar tf [1]。"
    pieces = list(answer)
    reply = ReplyFilter(1, {"tar", "md"})
    shown = [reply.feed(p) for p in pieces]
    assert shown[0] == "列" and "".join(shown) + reply.close() == answer
    assert {_filtered(p, ["tar.md › tar"]) for p in _splits(answer)} == {(answer, "")}
