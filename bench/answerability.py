"""Calibrate the read check (rag/refusal.py ReadCheck) for a chat model on a SQuAD-format file, and measure
what it adds to the relevance gate and how long it takes.

Three kinds of question, planned as `rag eval answers` plans them (rag.eval.answers.plan_questions, same seed
and sizes): answerable (full index), easy unanswerable (the gold paragraph removed from the index) and hard
unanswerable (the gold paragraph kept, its answer sentences deleted). For each, the sources are the k an
answer gets (`Index.sources`); recorded are the gate's probability and verdict, and the chat model's
log P(its reply opens with the "not found" sentence) in the answer's own prompt
(`Generator.opening_logprob`), one forward pass and no generation. Kinds are interleaved and every record
is appended to a file as it is made, so a run can stop (`--minutes`) and a later one resumes.

Questions the gate refuses are not read (the check never runs for them).
The threshold is chosen on the calibration articles ("even", where the gate was fitted too): the lowest
P(not found) threshold at which the check refuses at most `--false-refusal` of the answerable questions the
gate lets through. Printed: refusal rates by kind (gate alone, gate + check) and the AUC of P(not found)
answerable vs hard. `--latency N` times N answers with and without the check (same question, same cache
state before each) and prints the median added share. `--write` stores the threshold in rag/calibration.json.

    python bench/answerability.py ../shared/data/xquad-en/xquad.en.json --workspace /tmp/answ-even \\
        --embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2 \\
        --llm ~/.cache/rag-test-models/Qwen2.5-0.5B-Instruct --minutes 40 --latency 4
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rag  # noqa: E402
from rag.eval import answers as ea  # noqa: E402
from rag.prompt import build_messages, not_found_text  # noqa: E402
from rag.refusal import CALIBRATION_FILE, CHECKS  # noqa: E402

KINDS = ("answerable", "hard", "easy")


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a random positive scores above a random negative), ties counted half."""
    if not pos or not neg:
        return float("nan")
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--embed-model", required=True)
    ap.add_argument("--llm", required=True)
    ap.add_argument("--workspace", type=Path, default=Path("/tmp/answerability"))
    ap.add_argument("--articles", default="even", choices=ea.ARTICLES)
    ap.add_argument("--answerable", type=int, default=150)
    ap.add_argument("--easy", type=int, default=60)
    ap.add_argument("--hard", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=rag.DEFAULT_K)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop measuring after this long (0: measure all)")
    ap.add_argument("--false-refusal", type=float, default=0.05)
    ap.add_argument("--threshold", type=float, help="report this threshold instead of choosing one")
    ap.add_argument("--latency", type=int, default=0, help="time this many answers with and without the check")
    ap.add_argument("--write", action="store_true", help=f"store the threshold in {CALIBRATION_FILE}")
    args = ap.parse_args()
    rag.tune_cpu()  # the optimized BLAS, before MLX loads (as the CLI does)

    data = ea.load_squad(args.file)
    plan = ea.plan_questions(data, args.answerable, args.easy, args.seed, args.articles, args.hard)
    index = rag.Index(args.workspace / "index", embed_model=args.embed_model, llm=args.llm)
    ea.index_collections(index, data, plan, args.workspace)
    path = args.workspace / f"read-check-{args.articles}.jsonl"
    records = measure(index, plan, path, args)
    threshold = report(records, args)
    if args.latency:
        latency(index, plan, args.latency, args.k)
    if args.write:
        table = json.loads(CALIBRATION_FILE.read_text())
        n = {kind: sum(r["kind"] == kind for r in records) for kind in KINDS}
        name = Path(args.llm.rstrip("/")).name
        table.setdefault(CHECKS, {})[name] = {
            "model": name,
            "threshold": threshold,
            "calibrated_on": f"{args.file.name}: {args.articles} articles, {n['answerable']} answerable and "
            f"{n['hard']} hard unanswerable questions, k={args.k}; at most {args.false_refusal:.0%} of the "
            "answerable questions the gate passes refused",
        }
        CALIBRATION_FILE.write_text(json.dumps(table, indent=2) + "\n")
        print(f"wrote {CALIBRATION_FILE} [{CHECKS}][{name}]")


def measure(index: rag.Index, plan: ea.Plan, path: Path, args) -> list[dict]:
    """Records for the plan's questions, kinds interleaved, appended to `path`; ids already there are kept."""
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    seen = {(r["kind"], r["id"]) for r in done}
    kinds = {"answerable": (plan.asked, ea.ALL), "hard": (plan.hard, ea.HARD), "easy": (plan.held, ea.HOLDOUT)}
    queue = [(i, kind, q) for kind, (questions, _) in kinds.items() for i, q in enumerate(questions)]
    started = time.perf_counter()
    with path.open("a") as out:
        for _, kind, q in sorted(queue, key=lambda item: item[0]):
            if (kind, q.id) in seen:
                continue
            if args.minutes and time.perf_counter() - started > args.minutes * 60:
                print(f"stopped after {args.minutes} minutes")
                break
            sources = index.sources(q.question, args.k, collection=kinds[kind][1])
            gate = index.gate
            passed = not gate.refuses(q.question, sources)[0]
            clock = time.perf_counter()
            messages = build_messages(q.question, sources)
            # past a refusing gate the check never runs: not read, to spend the time where it counts
            logp = index.generator.opening_logprob(messages, not_found_text(q.question)) if passed else None
            record = {
                "kind": kind,
                "id": q.id,
                "gate_p": gate.probability(q.question, sources),
                "gate_pass": passed,
                "logp_not_found": logp,
                "ms": round((time.perf_counter() - clock) * 1000) if passed else None,
            }
            out.write(json.dumps(record) + "\n")
            out.flush()
            done.append(record)
            read = f"P(not found) {math.exp(logp):.3f}" if logp is not None else "not read"
            print(f"{kind:10s} gate {record['gate_p']:.2f}  {read}  {q.question[:60]}", flush=True)
    return done


def report(records: list[dict], args) -> float:
    by = {kind: [r for r in records if r["kind"] == kind] for kind in KINDS}
    p = {kind: [math.exp(r["logp_not_found"]) for r in rs if r["gate_pass"]] for kind, rs in by.items()}
    passed = sorted(p["answerable"], reverse=True)
    if args.threshold is not None:
        threshold = args.threshold
    else:  # refuse at most false_refusal of the answerable questions the gate lets through
        allowed = int(args.false_refusal * len(passed))
        threshold = passed[allowed] if allowed < len(passed) else 1.0
    print(f"\nread check: refuse when P(not found) > {threshold:.4f}")
    print(f"{'kind':12s} {'n':>4s} {'gate refuses':>13s} {'gate + check':>13s}")
    for kind, rs in by.items():
        gate = sum(not r["gate_pass"] for r in rs)
        both = sum((not r["gate_pass"]) or math.exp(r["logp_not_found"]) > threshold for r in rs)
        n = max(len(rs), 1)
        print(f"{kind:12s} {len(rs):4d} {gate / n:12.1%} {both / n:12.1%}")
    print(
        f"past the gate, AUC of P(not found), hard vs answerable: {auc(p['hard'], p['answerable']):.3f} "
        f"(n {len(p['hard'])}, {len(p['answerable'])}); easy vs answerable: {auc(p['easy'], p['answerable']):.3f}"
    )
    timed = [r["ms"] for r in records if r.get("ms") is not None]
    print(f"read time p50 {statistics.median(timed):.0f} ms (the prompt read cold)" if timed else "")
    return threshold


def latency(index: rag.Index, plan: ea.Plan, n: int, k: int) -> None:
    """Median total time of an answer with the check (read, then generate from the same cache) and without,
    each after the same other prompt was generated (so only the system prompt is cached before either)."""
    generator, shares = index.generator, []
    other = build_messages("Which sources are these?", [])
    for q in plan.asked[:n]:
        sources = index.sources(q.question, k, collection=ea.ALL)
        messages = build_messages(q.question, sources)
        times = []
        for read in (False, True):
            list(generator.stream(other, max_tokens=1))
            clock = time.perf_counter()
            if read:
                generator.opening_logprob(messages, not_found_text(q.question))
            reply = "".join(piece.text for piece in generator.stream(messages))
            times.append(time.perf_counter() - clock)
        shares.append(times[1] / times[0] - 1)
        print(f"answer {times[0]:.1f} s, with the check {times[1]:.1f} s ({shares[-1]:+.1%})  {reply[:50]!r}")
    print(f"latency added by the read check: median {statistics.median(shares):+.1%} of an answer's ({n} answers)")


if __name__ == "__main__":
    main()
