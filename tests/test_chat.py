"""Chat: follow-ups are rewritten into standalone questions before retrieval, with history and reset —
through the API (a scripted chat model where the rewrite itself is not under test, the real Qwen2.5 in a
slow test) and through `rag chat` with the real SmolLM2."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import data_path, index_folder
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.generate import Piece

BOILERS = (
    "# Boilers\n\nThe manual covers two boilers: the Vaillant ecoTEC and the Worcester Greenstar.\n\n"
    "## Vaillant ecoTEC reset\n\nTo reset the Vaillant ecoTEC, hold the red button for five seconds.\n\n"
    "## Worcester Greenstar reset\n\nTo reset the Worcester Greenstar, turn the dial to the reset symbol "
    "for three seconds.\n"
)
GARDEN = "# Garden\n\nWater the tomatoes every morning. The hose is kept in the shed behind the greenhouse.\n"


class ScriptedChat(rag.Generator):
    """A chat model that answers rewrite prompts with a fixed standalone question and answer prompts
    with the first sentence of source [1]; it records every prompt it was given."""

    def __init__(self, rewrite: str) -> None:
        self.rewrite = rewrite
        self.prompts: list[list[dict]] = []

    def stream(self, messages, *, max_tokens=64, thinking=False):
        self.prompts.append(list(messages))
        user = messages[-1]["content"]
        if "Standalone question:" in user:
            yield Piece(text=self.rewrite)
            return
        first = re.search(r"<source>\n(.+?)\n</source>", user, re.S)
        lines = [line for line in first.group(1).splitlines() if line and not line.startswith("#")] if first else []
        yield Piece(text=(lines[0].split(". ")[0].rstrip(".") + " [1].") if lines else "No sources.")


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "boilers.md").write_text(BOILERS)
    (docs / "garden.md").write_text(GARDEN)
    return docs


def test_a_follow_up_is_rewritten_from_the_history_and_retrieves_with_the_rewrite(tmp_path, folder, embedder):
    model = ScriptedChat(rewrite="Standalone question: How do I reset the Worcester Greenstar boiler?")
    index = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=model)
    index.add(folder)
    chat = index.chat(k=2)

    first = chat.ask("Which boilers does the manual cover?")
    assert first.question == "Which boilers does the manual cover?"  # the first turn is never rewritten
    assert len(model.prompts) == 1

    second = chat.ask("And how do I reset the second one?")
    rewrite_prompt = model.prompts[1][-1]["content"]
    assert "Which boilers does the manual cover?" in rewrite_prompt  # the history reached the rewriter
    assert "Vaillant ecoTEC and the Worcester Greenstar" in rewrite_prompt  # with the previous answer
    assert "And how do I reset the second one?" in rewrite_prompt
    assert second.question == "How do I reset the Worcester Greenstar boiler?"  # label stripped
    assert "Worcester Greenstar, turn the dial" in second.sources[0].text
    answer_prompt = model.prompts[2][-1]["content"]
    assert "Question: How do I reset the Worcester Greenstar boiler?" in answer_prompt
    assert [t.message for t in chat.history] == [
        "Which boilers does the manual cover?",
        "And how do I reset the second one?",
    ]
    assert chat.sources == second.sources


def test_reset_forgets_the_history_so_the_next_message_is_asked_as_typed(tmp_path, folder, embedder):
    model = ScriptedChat(rewrite="Where is the garden hose kept?")
    index = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=model)
    index.add(folder)
    chat = index.chat(k=2)
    chat.ask("Where is the hose?")
    chat.reset()
    assert chat.history == [] and chat.sources == []
    answer = chat.ask("How often are the tomatoes watered?")
    assert answer.question == "How often are the tomatoes watered?"
    assert all("Standalone question:" not in p[-1]["content"] for p in model.prompts)


def test_an_empty_rewrite_falls_back_to_the_message(tmp_path, folder, embedder):
    model = ScriptedChat(rewrite="")
    index = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=model)
    index.add(folder)
    chat = index.chat(k=2)
    chat.ask("Where is the hose?")
    assert chat.rewrite("  and the tomatoes?  ") == "Where is the hose? and the tomatoes?"


@pytest.mark.parametrize(
    "rewrite",
    [
        "The project lead of Project Orion is Amara Okafor.",  # SmolLM2 answered instead of rewriting
        "Who is the project lead of Project Orion?",  # Qwen2.5 repeated the first question
        "When is Project Orion?",  # dropped the follow-up's "due"
    ],
)
def test_a_rewrite_that_is_no_standalone_follow_up_falls_back_to_both_questions(tmp_path, embedder, rewrite):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(data_path("newcomer", "project-orion.md"), docs)
    (docs / "garden.md").write_text(GARDEN)
    model = ScriptedChat(rewrite=rewrite)
    chat = index_folder(tmp_path, docs, embedder, model).chat(k=2)
    chat.ask("Who is the project lead of Project Orion?")
    answer = chat.ask("and when is it due?")
    assert answer.question == "Who is the project lead of Project Orion? and when is it due?"
    assert "30 June 2026" in answer.sources[0].text


def _orion_turn() -> rag.Turn:
    first = "Who is the project lead of Project Orion?"
    return rag.Turn(first, first, rag.Answer(first, "The project lead of Project Orion is Amara Okafor [1].", []))


def test_a_follow_up_with_the_real_smollm2_retrieves_the_deadline(tmp_path, embedder, smollm2):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("project-orion.md", "car.md", "garden.md"):
        shutil.copy(data_path("newcomer", name), docs)
    chat = index_folder(tmp_path, docs, embedder, smollm2).chat(k=2)
    chat.history.append(_orion_turn())  # the first turn as answered; only the rewrite is under test
    question = chat.rewrite("and when is it due?")
    assert "due" in question.lower() and "orion" in question.lower(), question
    assert "30 June 2026" in chat.index.sources(question, 2)[0].text


@pytest.mark.slow
def test_the_real_qwen_model_rewrites_a_follow_up(tmp_path, folder, embedder):
    from tests.conftest import _model

    model = rag.MLXGenerator(str(_model("Qwen2.5-0.5B-Instruct")))
    index = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=model)
    index.add(folder)
    chat = index.chat(k=2, max_tokens=40)
    chat.ask("Which boilers does the manual cover?")
    question = chat.rewrite("How do I reset the second one?")
    assert question != "How do I reset the second one?" and "boiler" in question.lower(), question


@pytest.mark.slow
def test_the_real_qwen_model_follow_up_retrieves_the_deadline(tmp_path, embedder):
    from tests.conftest import _model

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("project-orion.md", "car.md", "garden.md"):
        shutil.copy(data_path("newcomer", name), docs)
    model = rag.MLXGenerator(str(_model("Qwen2.5-0.5B-Instruct")))
    chat = index_folder(tmp_path, docs, embedder, model).chat(k=2)
    chat.history.append(_orion_turn())  # the first turn as answered; only the rewrite is under test
    question = chat.rewrite("and when is it due?")
    assert "due" in question.lower() and "orion" in question.lower(), question
    assert "30 June 2026" in chat.index.sources(question, 2)[0].text


def test_rag_chat_answers_then_shows_sources_resets_and_quits(tmp_path, folder, minilm_path, smollm2_path):
    runner = CliRunner()
    common = ["--index", str(tmp_path / "idx"), "--embed-model", str(minilm_path)]
    assert runner.invoke(app, ["index", str(folder), *common]).exit_code == 0
    typed = "Where is the hose kept?\n/sources\n/reset\n/quit\n"
    result = runner.invoke(app, ["chat", *common, "--llm", str(smollm2_path), "--max-tokens", "32"], input=typed)
    assert result.exit_code == 0, result.output
    out = result.stdout
    answer, _, after = out.partition("Sources")
    assert "shed" in answer.lower()
    assert "garden.md" in after
    listing = [line.removeprefix("> ") for line in after.splitlines() if line.startswith("> [1] garden.md")]
    assert listing and "hose" in listing[-1]  # /sources: the last answer's sources with a snippet
    assert "Conversation reset." in result.stderr


def test_the_openai_endpoint_rewrites_a_follow_up_from_the_messages(tmp_path, folder, embedder):
    import openai
    from test_server import running

    from rag.serve.http import create_app

    model = ScriptedChat(rewrite="How do I reset the Worcester Greenstar boiler?")
    index = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=model)
    index.add(folder)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Which boilers does the manual cover?"},
        {"role": "assistant", "content": "The Vaillant ecoTEC and the Worcester Greenstar [1]."},
        {"role": "user", "content": "How do I reset the second one?"},
    ]
    with running(create_app(index, max_tokens=32)) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
            reply = client.chat.completions.create(model="rag", messages=messages, extra_body={"k": 2})
    rewrite_prompt = model.prompts[0][-1]["content"]
    assert "User: Which boilers does the manual cover?" in rewrite_prompt
    assert "Assistant: The Vaillant ecoTEC and the Worcester Greenstar [1]." in rewrite_prompt
    assert "Question: How do I reset the Worcester Greenstar boiler?" in model.prompts[1][-1]["content"]
    assert len(model.prompts) == 2  # one rewrite, one answer
    assert reply.choices[0].message.content.endswith("[1].")
