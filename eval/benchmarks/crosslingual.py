"""Cross-lingual retrieval offline: English and German questions over the French PIAF paragraphs.

    .venv/bin/python -m eval.benchmarks.crosslingual [--piaf-dir ../shared/bench/piaf]

Data: `eval/benchmarks/data/piaf_dev_xling.jsonl`, 300 PIAF v1.1 *dev* questions (a fixed random sample,
seed 2026) with English and German translations written for this project (the French original kept beside
them; PIAF: Etalab / DINUM, Keraron et al., LREC 2020, MIT License; paragraphs from French Wikipedia,
CC BY-SA). The translations say what the French question says and nothing more (no title or answer words
added). It is a development set: the cross-lingual bridge (`rag/crosslingual.py`) may be tuned on it; the
golden set's English and German questions (`eval/golden/seed_qa*.jsonl`) are the held-out check.

Measured, per question language, with the offline default (lexical retrieval + extractive answers) over all
1,518 titled paragraphs: recall@5 of the gold paragraph with the glossary bridge and without it (the plain
question only), and the share of questions the product abstains on (all are answerable, so every abstention
is a false one). Then, over an index without the held-out half of the dev articles (the split of
`eval.benchmarks.calibrate_abstention`), abstentions on the questions still answerable (false) and on those
whose article is gone (true).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from eval.benchmarks.answer_figures import (
    DEFAULT_PIAF,
    build,
    lexical_settings,
    product_search,
    read_jsonl,
    recall_at_k,
    write_piaf_corpus,
)

DATA = Path(__file__).resolve().parent / "data" / "piaf_dev_xling.jsonl"
LANGUAGES = ("fr", "en", "de")


def questions_in(items: list[dict], language: str) -> list[dict]:
    return [{"question": item[f"question_{language}"], "context_id": item["context_id"]} for item in items]


def abstention_rates(assistant, items: list[dict], language: str, excluded: set[str]) -> tuple[float, float]:
    """(false abstentions on answerable questions, true abstentions on questions whose paragraph is out)."""
    answerable = [q for q in questions_in(items, language) if q["context_id"] not in excluded]
    unanswerable = [q for q in questions_in(items, language) if q["context_id"] in excluded]
    false = sum(assistant.ask(q["question"]).abstained for q in answerable) / max(1, len(answerable))
    true = sum(assistant.ask(q["question"]).abstained for q in unanswerable) / max(1, len(unanswerable))
    return false, true


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--piaf-dir", type=Path, default=DEFAULT_PIAF)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from eval.benchmarks.calibrate_abstention import held_out
    from rag.assistant import open_assistant

    items = read_jsonl(args.data)
    contexts = read_jsonl(args.piaf_dir / "contexts.jsonl")
    excluded = {c["id"] for c in contexts if c["split"] == "dev" and held_out(c["title"])}
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-xling-") as tmp:
        work = Path(tmp)
        write_piaf_corpus(args.piaf_dir, work / "corpus")
        settings = lexical_settings(work / "index")
        build([work / "corpus"], settings)
        assistant = open_assistant(settings)
        # The same index minus the held-out half of the dev articles (as eval.benchmarks.calibrate_abstention
        # does): questions about them are honestly unanswerable.
        write_piaf_corpus(args.piaf_dir, work / "corpus-held-out", exclude=excluded)
        held_settings = lexical_settings(work / "index-held-out")
        build([work / "corpus-held-out"], held_settings)
        held = open_assistant(held_settings)
        for language in LANGUAGES:
            questions = questions_in(items, language)
            with_glossary = recall_at_k(product_search(assistant), questions)
            expander, assistant.retriever.expander = assistant.retriever.expander, None
            without = recall_at_k(product_search(assistant), questions)
            assistant.retriever.expander = expander
            abstained = sum(assistant.ask(q["question"]).abstained for q in questions) / len(questions)
            rows.append(
                (
                    language,
                    with_glossary,
                    without,
                    abstained,
                    *abstention_rates(held, items, language, excluded),
                )
            )
    answerable = sum(item["context_id"] not in excluded for item in items)
    print(f"PIAF dev, {len(items)} questions asked in each language over 1,518 French paragraphs (lexical)")
    print(
        f"  held-out index: {answerable} questions still answerable, {len(items) - answerable} whose article "
        "is gone"
    )
    print(
        f"  {'language':<9} {'recall@5':>9} {'no glossary':>12} {'abstained':>10} {'held-out: false':>16} {'true':>6}"
    )
    for language, with_glossary, without, abstained, false, true in rows:
        print(
            f"  {language:<9} {with_glossary:>9.3f} {without:>12.3f} {abstained:>10.3f} {false:>16.3f} {true:>6.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
