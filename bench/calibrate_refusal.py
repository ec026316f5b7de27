"""Calibrate the refusal gate (rag/refusal.py) on a SQuAD-format file and write rag/calibration.json.

Every paragraph becomes a file in a workspace index (reused on re-runs). Questions of the articles with
an even index calibrate; the odd articles are held out and only measured. For each question the sources
are what `Index.context` would give the model (search 3k, diversify, merge), once with the full index
(answerable) and once with the question's own paragraph dropped from the ranking (unanswerable). Two
gates are fitted: similarity + coverage for this embedder, and coverage-only (the fallback for
embedders without a calibration). Prints the held-out false-refusal and refusal rates.

    python bench/calibrate_refusal.py ../shared/data/xquad-en/xquad.en.json \
        --embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2 --write
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag import Index  # noqa: E402
from rag.context import assemble  # noqa: E402
from rag.refusal import CALIBRATION_FILE, COVERAGE_ONLY, calibrate, features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--embed-model", required=True)
    ap.add_argument("--workspace", type=Path, default=Path("/tmp/refusal-calibration"))
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--false-refusal", type=float, default=0.05)
    ap.add_argument("--write", action="store_true", help=f"store the gates in {CALIBRATION_FILE}")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    corpus = args.workspace / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    questions = []  # (article, question, gold path)
    for a, article in enumerate(json.loads(args.file.read_text())["data"]):
        for p, para in enumerate(article["paragraphs"]):
            path = corpus / f"{a:03d}-{p:03d}.txt"
            if not path.is_file():
                path.write_text(para["context"])
            questions += [(a, qa["question"], str(path.resolve())) for qa in para["qas"]]
    index = Index(args.workspace / "index", embed_model=args.embed_model)
    index.add(corpus)

    split: dict[str, dict[str, list]] = {"calibration": {"yes": [], "no": []}, "held-out": {"yes": [], "no": []}}
    for article, question, gold in questions:
        ranked = index.search(question, args.k * 3)
        part = split["calibration" if article % 2 == 0 else "held-out"]
        part["yes"].append(features(question, assemble(ranked, args.k)))
        part["no"].append(features(question, assemble([s for s in ranked if s.path != gold], args.k)))

    cal = split["calibration"]
    what = f"{args.file.name}: {len(cal['yes'])} questions of the even articles, k={args.k}, gold paragraph dropped for the negatives"
    name = Path(args.embed_model.rstrip("/")).name
    gates = {
        name: calibrate(
            cal["yes"], cal["no"], name=name, false_refusal=args.false_refusal, calibrated_on=what, k=args.k
        ),
        COVERAGE_ONLY: calibrate(
            cal["yes"],
            cal["no"],
            name=COVERAGE_ONLY,
            use_similarity=False,
            false_refusal=args.false_refusal,
            calibrated_on=what,
            k=args.k,
        ),
    }
    report = {}
    for key, gate in gates.items():
        report[key] = asdict(gate)
        for part_name, part in split.items():
            fr = sum(gate.probability_of(*f) < gate.threshold for f in part["yes"]) / len(part["yes"])
            rr = sum(gate.probability_of(*f) < gate.threshold for f in part["no"]) / len(part["no"])
            report[key][part_name] = {"questions": len(part["yes"]), "false_refusal": fr, "refusal": rr}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'gate':<20} {'split':<12} {'questions':>9} {'false refusals':>15} {'refused (unanswerable)':>23}")
        for key, entry in report.items():
            for part_name in split:
                r = entry[part_name]
                print(
                    f"{key:<20} {part_name:<12} {r['questions']:>9} {r['false_refusal']:>15.3f} {r['refusal']:>23.3f}"
                )
    if args.write:
        table = json.loads(CALIBRATION_FILE.read_text()) if CALIBRATION_FILE.is_file() else {}
        table.update({key: asdict(gate) for key, gate in gates.items()})
        CALIBRATION_FILE.write_text(json.dumps(table, indent=2) + "\n")
        print(f"wrote {CALIBRATION_FILE}")


if __name__ == "__main__":
    main()
