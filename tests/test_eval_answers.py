"""`rag eval answers`: SQuAD metrics against hand-computed cases, question planning, and the whole
harness on a tiny SQuAD file with the real MiniLM embedder and LanceDB (a scripted generator in the fast
test; the real SmolLM2 in the CLI test, marked slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.cli import app
from rag.eval.answers import (
    ALL,
    HARD,
    HOLDOUT,
    evaluate_answers,
    index_collections,
    load_squad,
    pick_hard,
    pick_unanswerable,
    plan_questions,
    without_answer,
    write_paragraphs,
)
from rag.eval.metrics import contains_answer, exact_match, squad_normalize, token_f1
from rag.generate import Generator, Piece

# -- metrics -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Broncos", "broncos"),
        ("  A  tale of an apple, the end. ", "tale of apple end"),
        ("Theater", "theater"),  # "the" only as a whole word
        ("Denver's 24–10 win!", "denvers 24–10 win"),  # ASCII punctuation only, as in SQuAD
        ("1,000", "1000"),
        ("", ""),
    ],
)
def test_squad_normalize(text, expected):
    assert squad_normalize(text) == expected


def test_exact_match_takes_the_best_gold():
    assert exact_match("the Denver Broncos.", ["Broncos", "Denver Broncos"]) == 1.0
    assert exact_match("Denver", ["Broncos", "Denver Broncos"]) == 0.0
    assert exact_match("", ["Broncos"]) == 0.0


def test_token_f1_by_hand():
    # pred {denver, broncos, won}, gold {denver, broncos}: P = 2/3, R = 1 -> F1 = 0.8
    assert token_f1("The Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    # best of two golds: "Broncos" gives P = 1/3, R = 1 -> 0.5; "Denver Broncos won" gives 1.0
    assert token_f1("Denver Broncos won", ["Broncos", "the Denver Broncos won."]) == 1.0
    # repeated tokens count once per occurrence: pred {a: paris x2}, gold {paris}: P = 1/2, R = 1 -> 2/3
    assert token_f1("Paris Paris", ["Paris"]) == pytest.approx(2 / 3)
    assert token_f1("", ["Paris"]) == 0.0
    assert token_f1("London", ["Paris"]) == 0.0
    assert token_f1("the", ["a"]) == 0.0  # both normalise to nothing


def test_contains_answer_matches_whole_words_after_normalising():
    assert contains_answer("They gave up just 308 points [1].", ["308"])
    assert not contains_answer("They gave up 3080 points.", ["308"])
    assert contains_answer("It was built by THE Northwind-Heating company", ["Northwind Heating", "x"]) is False
    assert contains_answer("Built by Northwind Heating, in 1998.", ["x", "northwind heating"])
    assert not contains_answer("anything", ["the"])  # a gold that normalises to nothing never matches
    assert not contains_answer("", ["308"])


# -- a tiny SQuAD file -------------------------------------------------------------------------

SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Cottage",
            "paragraphs": [
                {
                    "context": "The spare key of the cottage is hidden under the blue flowerpot on the back porch. "
                    "The gardener, Mr. Alvarez, keeps a second key in his shed.",
                    "qas": [
                        {
                            "id": "q-key",
                            "question": "Where is the spare key of the cottage hidden?",
                            "answers": [{"text": "under the blue flowerpot", "answer_start": 32}],
                        },
                        {
                            "id": "q-gardener",
                            "question": "Who keeps a second key of the cottage?",
                            "answers": [{"text": "Mr. Alvarez", "answer_start": 100}],
                        },
                    ],
                }
            ],
        },
        {
            "title": "Heating",
            "paragraphs": [
                {
                    "context": "The boiler in the basement was installed in 1998 by Northwind Heating. "
                    "Its reset button is red and sits behind a small hatch.",
                    "qas": [
                        {
                            "id": "q-boiler",
                            "question": "Which company installed the boiler in the basement?",
                            "answers": [{"text": "Northwind Heating", "answer_start": 50}],
                        }
                    ],
                },
                {
                    "context": "Bleed the radiators every October, before the heating season starts. "
                    "The radiator bleed key is kept in the kitchen drawer.",
                    "qas": [
                        {
                            "id": "q-radiators",
                            "question": "When should the radiators be bled?",
                            "answers": [{"text": "every October", "answer_start": 18}, {"text": "October"}],
                        }
                    ],
                },
            ],
        },
    ],
}
GOLD = {"q-key": "0-0", "q-gardener": "0-0", "q-boiler": "1-0", "q-radiators": "1-1"}


@pytest.fixture
def squad_file(tmp_path) -> Path:
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD))
    return path


def test_load_squad_names_paragraphs_by_article_and_position(squad_file):
    data = load_squad(squad_file)
    assert data.name == "tiny-squad"
    assert sorted(data.paragraphs) == ["0-0", "1-0", "1-1"]
    assert {q.id: q.paragraph for q in data.questions} == GOLD
    radiators = next(q for q in data.questions if q.id == "q-radiators")
    assert radiators.answers == ("every October", "October")


def test_load_squad_rejects_other_json(tmp_path):
    from rag import RagError

    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(RagError, match="not a SQuAD"):
        load_squad(bad)


def test_write_paragraphs_mirrors_exactly(tmp_path, squad_file):
    data = load_squad(squad_file)
    out = tmp_path / "folder"
    write_paragraphs(data.paragraphs, out)
    write_paragraphs({k: v for k, v in data.paragraphs.items() if k != "1-0"}, out)
    assert sorted(p.name for p in out.iterdir()) == ["0-0.txt", "1-1.txt"]
    assert (out / "1-1.txt").read_text().startswith("Bleed the radiators")


def test_plans_are_seeded_disjoint_and_truly_unanswerable(squad_file):
    data = load_squad(squad_file)
    plan = plan_questions(data, limit=2, unanswerable=2, seed=7)
    assert plan == plan_questions(data, limit=2, unanswerable=2, seed=7)
    assert len(plan.asked) == 2 and len(plan.held) == 2
    assert not {q.id for q in plan.asked} & {q.id for q in plan.held}
    assert plan.removed == {q.paragraph for q in plan.held}


def test_a_question_whose_answer_is_in_another_paragraph_is_not_held_out(squad_file):
    data = load_squad(squad_file)
    data.paragraphs["1-1"] += " Northwind Heating also services the radiators."
    held, removed = pick_unanswerable(data, 4, seed=0)
    assert "q-boiler" not in {q.id for q in held}  # "Northwind Heating" would still be in 1-1
    assert {q.id for q in held} == {"q-key", "q-gardener", "q-radiators"}
    assert removed == {"0-0", "1-1"}


def test_without_answer_deletes_only_the_sentences_holding_an_answer():
    text = "The boiler was installed in 1998 by Northwind Heating. Its reset button is red. It sits behind a hatch."
    assert without_answer(text, ["Northwind Heating"]) == "Its reset button is red. It sits behind a hatch."
    assert without_answer(text, ["northwind heating", "1998"]) == "Its reset button is red. It sits behind a hatch."
    assert without_answer(text, ["a purple hatch"]) is None  # no sentence holds it: nothing to make hard
    assert without_answer("Northwind Heating did it. Its button is red.", ["Northwind Heating"]) is None  # 1 left


def _longer(data):
    """Each paragraph with two more sentences that hold no answer, so its answer sentence can go."""
    for stem in data.paragraphs:
        data.paragraphs[stem] += f" This note was filed as item {stem}. It was checked last spring."
    return data


def test_hard_questions_keep_their_paragraph_without_the_answer(squad_file):
    data = _longer(load_squad(squad_file))
    hard, edited = pick_hard(data, 4, seed=0)
    assert len(hard) == len(edited) == 3  # one question per paragraph: q-key and q-gardener share 0-0
    assert len({q.paragraph for q in hard}) == 3 and set(edited) == {q.paragraph for q in hard}
    for q in hard:
        kept = edited[q.paragraph]
        assert kept and kept != data.paragraphs[q.paragraph]
        assert not contains_answer(kept, q.answers)
        assert f"item {q.paragraph}" in kept  # the rest of the paragraph stays
    assert plan_questions(data, 1, 0, 0, hard=2) == plan_questions(data, 1, 0, 0, hard=2)
    plan = plan_questions(data, 1, 1, 0, hard=4)
    assert not {q.id for q in plan.hard} & {q.id for q in plan.asked + plan.held}


# -- the harness end to end --------------------------------------------------------------------

REPLIES = {
    "Where is the spare key": "It is hidden under the blue flowerpot [1].",
    "Who keeps a second key": "Mr. Alvarez keeps it [1][2].",
    "Which company installed": "I couldn't find that in your documents.",
    "When should the radiators": "Every October [1].",
}


class ScriptedGenerator(Generator):
    """Replies by question, so the scores are known; the model is not what these tests are about."""

    def stream(self, messages, *, max_tokens=512, thinking=False):
        user = messages[-1]["content"]
        reply = next(text for start, text in REPLIES.items() if start in user)
        for word in reply.split(" "):
            yield Piece(text=word + " ", prompt_tokens=10, generated_tokens=1, generation_tps=100.0)


def test_harness_scores_and_records_every_question(tmp_path, squad_file, embedder):
    data = load_squad(squad_file)
    index = Index(tmp_path / "space" / "index", embed_model=embedder, llm=ScriptedGenerator(), reranker=False)
    done = []
    result = evaluate_answers(
        index, data, tmp_path / "space", limit=3, unanswerable=1, seed=0, k=2, progress=lambda i, n: done.append(i)
    )
    assert done == [1, 2, 3, 4]
    assert result.questions == 3 and result.unanswerable == 1
    records = [json.loads(line) for line in Path(result.records_path).read_text().splitlines()]
    assert records == result.records
    asked = [r for r in records if r["kind"] == "answerable"]
    held = [r for r in records if r["kind"] == "unanswerable"]

    # the held-out question's gold paragraph is in "all" but not in "holdout"
    gold = held[0]["gold_paragraph"]
    assert GOLD[held[0]["id"]] == gold
    assert not (tmp_path / "space" / HOLDOUT / f"{gold}.txt").exists()
    assert (tmp_path / "space" / "corpus" / f"{gold}.txt").exists()
    assert index.collections()[ALL][0] == 3 and index.collections()[HOLDOUT][0] == 2
    assert gold not in held[0]["sources"]

    for r in asked:
        golds = r["answers"]
        scored = not r["refused"]
        said = re.sub(r"\[\d+\]", "", r["prediction"])  # scored without its citation markers
        assert r["contains"] == (scored and contains_answer(said, golds))
        assert r["exact_match"] == (exact_match(said, golds) if scored else 0.0)
        assert r["retrieval_hit"] == (r["gold_paragraph"] in r["sources"])
        for c in r["cited"]:
            text = index.get_chunk(c["chunk_id"]).text
            assert c["contains_answer"] == contains_answer(text, golds)
        if r["id"] == "q-key":  # "it is hidden under blue flowerpot" vs "under blue flowerpot": P 3/6, R 1
            assert r["contains"] is True and r["f1"] == pytest.approx(2 / 3)
        if r["id"] == "q-radiators":  # "Every October [1]." is exactly the first gold answer
            assert r["exact_match"] == 1.0 and r["contains"] is True

    n = len(asked)
    assert result.containment == pytest.approx(sum(r["contains"] for r in asked) / n)
    assert result.retrieval_hit_rate == pytest.approx(sum(r["retrieval_hit"] for r in asked) / n)
    cited = [c["contains_answer"] for r in asked if not r["refused"] for c in r["cited"]]
    assert result.citations == len(cited) > 0
    assert result.citation_precision == pytest.approx(sum(cited) / len(cited))
    on_correct = [c["contains_answer"] for r in asked if r["contains"] for c in r["cited"]]
    assert result.correct_citations == len(on_correct) > 0
    assert result.correct_citation_precision == pytest.approx(sum(on_correct) / len(on_correct))
    for rate in (result.exact_match, result.f1, result.containment, result.citation_coverage, result.refusal_rate):
        assert 0.0 <= rate <= 1.0
    assert result.total_p50_ms > 0 and result.first_token_p95_ms >= result.first_token_p50_ms > 0


def test_hard_questions_are_asked_against_their_paragraph_without_its_answer(tmp_path, squad_file, embedder):
    data = _longer(load_squad(squad_file))
    llm = RecordingGenerator()
    index = Index(tmp_path / "space" / "index", embed_model=embedder, llm=llm, reranker=False)
    result = evaluate_answers(index, data, tmp_path / "space", limit=1, hard=2, seed=0, k=3)
    hard = [r for r in result.records if r["kind"] == "hard"]
    assert result.hard == len(hard) == 2 and index.collections()[HARD][0] == len(data.paragraphs)
    assert result.hard_refusal_rate == pytest.approx(sum(r["refused"] for r in hard) / 2)
    for r in hard:
        kept = (tmp_path / "space" / HARD / f"{r['gold_paragraph']}.txt").read_text()
        assert not contains_answer(kept, r["answers"]) and f"item {r['gold_paragraph']}" in kept
        assert r["gold_paragraph"] in r["sources"]  # k=3 shows every paragraph: the on-topic one is there
        asked = [p for p in llm.prompts if p.rstrip().endswith(r["question"])]
        assert not asked or not contains_answer(asked[-1], r["answers"])  # the model never sees the answer


class RecordingGenerator(ScriptedGenerator):
    def __init__(self) -> None:
        self.prompts: list[str] = []

    def stream(self, messages, *, max_tokens=512, thinking=False):
        self.prompts.append(messages[-1]["content"])
        yield from super().stream(messages, max_tokens=max_tokens, thinking=thinking)


def test_the_oracle_answers_each_question_from_its_gold_paragraph_alone(tmp_path, squad_file, embedder):
    data = load_squad(squad_file)
    llm = RecordingGenerator()
    index = Index(tmp_path / "space" / "index", embed_model=embedder, llm=llm, reranker=False)
    result = evaluate_answers(index, data, tmp_path / "space", limit=4, seed=0, k=2, oracle=True)
    asked = result.records
    assert len(asked) == 4 and all("oracle" in r for r in asked)
    for r in asked:  # the oracle's prompt (the question's last) shows one source: the gold paragraph
        prompt = [p for p in llm.prompts if p.rstrip().endswith(r["question"])][-1]
        shown = prompt.split("Question:")[0]
        gold = data.paragraphs[r["gold_paragraph"]]
        others = [text for stem, text in data.paragraphs.items() if stem != r["gold_paragraph"]]
        assert gold.split(". ")[0] in shown, shown
        assert not any(o.split(". ")[0] in shown for o in others), shown
        assert "[1]" in shown and "[2]" not in shown
    assert result.oracle_containment == pytest.approx(sum(r["oracle"]["contains"] for r in asked) / 4)
    assert result.oracle_f1 == pytest.approx(sum(r["oracle"]["f1"] for r in asked) / 4)
    assert result.oracle_false_refusal_rate == pytest.approx(sum(r["oracle"]["refused"] for r in asked) / 4)
    plain = evaluate_answers(index, data, tmp_path / "space", limit=4, seed=0, k=2)
    assert plain.oracle_containment is None and all("oracle" not in r for r in plain.records)


def test_a_copied_workspace_does_not_leave_each_paragraph_indexed_twice(tmp_path, squad_file, embedder):
    data = load_squad(squad_file)
    index = Index(tmp_path / "index", embed_model=embedder, llm=ScriptedGenerator(), reranker=False)
    plan = plan_questions(data, 3, 1, 0)
    index_collections(index, data, plan, tmp_path / "first")
    # the same index, now with the paragraphs written under another workspace folder
    index_collections(index, data, plan, tmp_path / "second")
    assert index.collections()[ALL][0] == len(data.paragraphs) == 3
    assert index.collections()[HOLDOUT][0] == 2
    paths = {s.path for s in index.search("key", 10, collection=ALL)}
    assert paths and all("/second/" in p for p in paths)


@pytest.mark.slow
def test_cli_eval_answers_with_smollm2(tmp_path, squad_file, minilm_path, smollm2_path):
    runner = CliRunner()
    args = ["eval", "answers", str(squad_file), "--workspace", str(tmp_path / "space")]
    args += ["--embed-model", str(minilm_path), "--llm", str(smollm2_path), "--limit", "3", "--unanswerable", "1"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["questions"] == 3 and report["unanswerable"] == 1
    for key in ("exact_match", "f1", "containment", "false_refusal_rate", "retrieval_hit_rate", "refusal_rate"):
        assert 0.0 <= report[key] <= 1.0
    assert report["retrieval_hit_rate"] == 1.0  # three paragraphs, two sources each: the gold one is found
    records = [json.loads(line) for line in Path(report["records_path"]).read_text().splitlines()]
    assert len(records) == 4 and {r["kind"] for r in records} == {"answerable", "unanswerable"}

    table = runner.invoke(app, args)  # the index is reused; the table names every measure
    assert table.exit_code == 0, table.output
    for label in ("exact match", "token F1", "answer containment", "citation precision", "refusal rate"):
        assert label in table.stdout
