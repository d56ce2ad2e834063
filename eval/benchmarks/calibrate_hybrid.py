"""Calibrate hybrid mode's abstention gate (rag.abstention.HYBRID_GATES) and the extractive answer's cosine
weight (rag.evidence.COSINE_WEIGHT) for one embedding model, on dev data only, and print the figures.

    .venv/bin/python -m eval.benchmarks.calibrate_hybrid --model /root/.cache/rag-fr/e5-small
        [--piaf-dir ../shared/bench/piaf] [--cache DIR] [--per-class 400]

Data (PIAF test is never read):
- PIAF dev with honest unanswerable questions: the dev articles are split in two by a hash of their title
  (`eval.benchmarks.calibrate_abstention.held_out`); the paragraphs of the held-out half are removed from
  every ranking (the index holds all 1,518 paragraphs, built once and cached; filtering the rankings equals
  an index without them except for BM25's document frequencies), so questions written on them have no
  answer. French: PIAF's own dev questions; English and German: the translated dev sample
  (`data/piaf_dev_xling.jsonl`), and its French originals.
- Near misses (`data/piaf_dev_near_miss.jsonl`, fr/en/de, written for this project): questions on an
  indexed dev article's topic asking a detail that no paragraph gives ("Combien pesait Edward Dickinson
  Baker ?" when his height is given). They are unanswerable.
- The seed golden sets over seeds/ (26 + 33 questions, fr/en/de), which the gate must get all right.

For each question the chain runs up to the abstention check (retrieval top-5, evidence step); it reads the
lexical score L (rag.abstention) and the best window cosine C. The gate answers when slope * L + C >=
intercept. Settings that get every seed question right are ranked by the mean over languages of PIAF
balanced accuracy; the chosen line, and for each language the false-abstention and caught rates, are
printed. Then the extractive answer's cosine weight is swept for PIAF dev answer containment (the gold span
inside the answer), with the gate off.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from eval.benchmarks.answer_figures import DEFAULT_PIAF, GOLDEN, SEEDS, read_jsonl, write_piaf_corpus

DATA = Path(__file__).resolve().parent / "data"
LANGUAGES = ("fr", "en", "de")
SLOPES = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
COSINE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)


def hybrid_settings(index_dir: Path, model: str):
    from rag.settings import load_settings

    return load_settings(
        environ={},
        overrides={
            "index.index_dir": str(index_dir),
            "index.embedding_model": model,
            "index.show_progress": False,
        },
    )


def open_hybrid(folder: Path, index_dir: Path, model: str):
    """The cached index of `folder` in `index_dir`, opened as it is (built first when there is none)."""
    from rag import build_assistant, open_assistant
    from rag.errors import IndexUnavailableError

    settings = hybrid_settings(index_dir, model)
    try:
        assistant = open_assistant(settings)
    except IndexUnavailableError:
        assistant = build_assistant([folder], settings)
    if assistant.retriever.mode != "hybrid":
        raise SystemExit(f"The model {model!r} could not be loaded: nothing to calibrate.")
    return assistant


class HeldOut:
    """Removes the held-out paragraphs from the store's rankings while active."""

    def __init__(self, store, excluded: set[str]) -> None:
        self.store = store
        self.rows = {i for i, c in enumerate(store.chunks) if Path(c.doc_id).stem in excluded}
        self.lexical, self.dense = store.search_lexical, store.search_dense
        self.active = False

    def _filter(self, search):
        def run(query, k, *args, **options):
            if not self.active:
                return search(query, k, *args, **options)
            found = search(query, k + 100, *args, **options)
            return [hit for hit in found if hit[0] not in self.rows][:k]

        return run

    def install(self) -> None:
        self.store.search_lexical = self._filter(self.lexical)
        self.store.search_dense = self._filter(self.dense)


def prepared(assistant, question: str, history: list | None = None) -> dict:
    from rag.chain import _start

    chain = assistant.chain("extractive")
    return chain.prepare.invoke(_start({"question": question, "history": history or [], "top_k": 5}))


def signals(state: dict) -> tuple[float, float]:
    check = state["check"]
    return check.score, state["evidence"].best_cosine


def gate_rates(points: list[tuple[float, float]], slope: float, intercept: float) -> float:
    """Share of points the gate abstains on."""
    return sum(slope * lexical + cosine < intercept for lexical, cosine in points) / max(1, len(points))


def model_benchmark_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every benchmark of the default model shares: the model folder, PIAF, the index cache."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="Local sentence-transformers folder of the model.")
    parser.add_argument("--piaf-dir", type=Path, default=DEFAULT_PIAF)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag-fr" / "bench"
    parser.add_argument("--cache", type=Path, default=cache, help="Where the built indexes are kept.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--per-class", type=int, default=400, help="French PIAF dev questions per class.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from eval.benchmarks.calibrate_abstention import held_out
    from eval.metrics import answer_contained

    started = time.perf_counter()
    tag = Path(args.model).name or "model"
    corpus = args.cache / "piaf-corpus"
    contexts = write_piaf_corpus(args.piaf_dir, corpus)
    piaf = open_hybrid(corpus, args.cache / f"piaf-{tag}", args.model)
    seeds = open_hybrid(SEEDS, args.cache / f"seeds-{tag}", args.model)
    excluded = {c["id"] for c in contexts if c["split"] == "dev" and held_out(c["title"])}
    held = HeldOut(piaf.store, excluded)
    held.install()

    rng = random.Random(13)
    dev = [q for q in read_jsonl(args.piaf_dir / "questions.jsonl") if q["split"] == "dev"]
    xling = read_jsonl(DATA / "piaf_dev_xling.jsonl")
    near = read_jsonl(DATA / "piaf_dev_near_miss.jsonl")
    answerable = {lang: [] for lang in LANGUAGES}  # (lexical, cosine)
    unanswerable = {lang: [] for lang in LANGUAGES}
    contained_states = []
    held.active = True
    fr_ok = [q for q in dev if q["context_id"] not in excluded]
    fr_out = [q for q in dev if q["context_id"] in excluded]
    for q in rng.sample(fr_ok, min(args.per_class, len(fr_ok))):
        state = prepared(piaf, q["question"])
        answerable["fr"].append(signals(state))
        contained_states.append((state, q["answers"]))
    for q in rng.sample(fr_out, min(args.per_class, len(fr_out))):
        unanswerable["fr"].append(signals(prepared(piaf, q["question"])))
    for lang in ("en", "de"):
        for item in xling:
            point = signals(prepared(piaf, item[f"question_{lang}"]))
            (unanswerable if item["context_id"] in excluded else answerable)[lang].append(point)
    near_points = {
        lang: [signals(prepared(piaf, item[f"question_{lang}"])) for item in near] for lang in LANGUAGES
    }
    held.active = False

    golden = [*read_jsonl(GOLDEN), *read_jsonl(GOLDEN.parent / "seed_qa_extra.jsonl")]
    seed_points = [
        (signals(prepared(seeds, g["question"], g.get("history"))), g["answerable"]) for g in golden
    ]

    # The gate: every seed question right, then the best mean balanced accuracy over the languages.
    candidates = []
    for slope in SLOPES:
        values = sorted({round(slope * lex + cos, 4) for lang in LANGUAGES for lex, cos in answerable[lang]})
        for intercept in values[:: max(1, len(values) // 400)]:
            seed_ok = all((slope * lex + cos < intercept) != label for (lex, cos), label in seed_points)
            per_language = []
            for lang in LANGUAGES:
                false = gate_rates(answerable[lang], slope, intercept)
                caught = gate_rates(unanswerable[lang] + near_points[lang], slope, intercept)
                per_language.append((false, caught))
            balanced = statistics.mean((1 - f + c) / 2 for f, c in per_language)
            candidates.append((seed_ok, balanced, slope, intercept, per_language))
    seed_right = [c for c in candidates if c[0]]
    pool = seed_right or candidates
    _, balanced, slope, intercept, per_language = max(pool, key=lambda c: c[1])
    print(
        f"PIAF dev: {len(contexts) - len(excluded)} paragraphs searchable, {len(excluded)} held out; "
        f"answerable/unanswerable questions: "
        + ", ".join(
            f"{lang} {len(answerable[lang])}/{len(unanswerable[lang])}+{len(near)} near misses"
            for lang in LANGUAGES
        )
    )
    print(
        f"Seed golden sets: {len(seed_points)} questions; gate settings getting all right: {len(seed_right)}"
    )
    print(
        f"Chosen gate: answer when {slope} * lexical + cosine >= {intercept:.4f} (mean balanced accuracy {balanced:.3f})"
    )
    for lang, (false, caught) in zip(LANGUAGES, per_language, strict=True):
        held_caught = gate_rates(unanswerable[lang], slope, intercept)
        near_caught = gate_rates(near_points[lang], slope, intercept)
        print(
            f"  {lang}: false abstentions {false:.3f}, caught {caught:.3f} "
            f"(held-out articles {held_caught:.3f}, near misses {near_caught:.3f})"
        )
    lexical_only = [c for c in candidates if c[2] == max(SLOPES)]
    if lexical_only:
        print(f"(best with the largest slope {max(SLOPES)}: {max(c[1] for c in lexical_only):.3f})")
    for slope_shown in SLOPES:
        best = max((c for c in pool if c[2] == slope_shown), key=lambda c: c[1], default=None)
        if best:
            print(
                f"  slope {slope_shown}: best intercept {best[3]:.4f}, mean balanced accuracy {best[1]:.3f}"
            )

    # The extractive answer's cosine weight: PIAF dev answer containment (answerable French questions).
    import rag.evidence as evidence

    generator = piaf.generator("extractive")
    saved = evidence.COSINE_WEIGHT
    try:
        for weight in COSINE_WEIGHTS:
            evidence.COSINE_WEIGHT = weight
            contained = [
                answer_contained(
                    generator.compose(s["condensed"].focus, s["language"], s["passages"], s["evidence"]),
                    answers,
                )
                for s, answers in contained_states
            ]
            print(f"  cosine weight {weight}: gold span in the answer {statistics.mean(contained):.3f}")
    finally:
        evidence.COSINE_WEIGHT = saved
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
