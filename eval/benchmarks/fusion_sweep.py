"""Fusion weights and candidate counts for hybrid retrieval, swept on PIAF dev with one embedding model.

    .venv/bin/python -m eval.benchmarks.fusion_sweep --model /root/.cache/rag-fr/e5-small
        [--piaf-dir ../shared/bench/piaf] [--cache DIR] [--questions 1200] [--split test]

Over all 1,518 titled paragraphs (the hybrid index is built once and cached in `--cache`), for a fixed
sample of French PIAF dev questions (seed 5) plus the 300 translated dev questions of
`data/piaf_dev_xling.jsonl` asked in French, English and German: the lexical ranking of the product's
retriever and the dense ranking (query vectors embedded once, in batches) are computed once, then fused with
each setting by the product's own `HybridRetriever.fuse`; recall@5 and hit@1 of the gold paragraph over the
ranked chunks are printed. With window vectors in the index (`index.windows`), the sentence max-sim
ranking is swept too, and the term coverage (`index.protocols.CoverageReader`) beside it. PIAF test is
never read. How the defaults were chosen from these figures: the comments in `RetrievalSettings`.

`--query-int8`: the questions go through the int8 copy of the ONNX export (`index.embedding_query_int8`),
the passages' vectors stay the indexed float32 ones; the figures to compare with a run without it.

`--chunk-header missing|all`: the dense ranking reads chunk vectors embedded (in memory, the index is left as
it is) from "TITLE HEADINGS\n\nTEXT" (`index.lexical.chunk_header`, what the lexical index adds to each
chunk) instead of the chunk's text alone: for the chunks that do not already open with their header
(`missing`), or for every chunk (`all`). The windows and token vectors stay those of the index (late
interaction still reads the chunk's own tokens); compare with a run without the option.

`--split test` reports, once the settings are chosen, PIAF **test** recall@5 / hit@1 of the default hybrid
setting (`RetrievalSettings`) beside the lexical ranking alone (lexical mode), over every test question
(`--questions` caps them); nothing is swept on test.

Late interaction (`index.tokens`, an index with token vectors): the default setting's row applies the
default rescoring (`RetrievalSettings.late_interaction_*`, the product's `late_rescore`), and a row beside it
shows the same setting without it; on dev, a last block sweeps its weight and candidate count over the
default fusion. The questions' token vectors come from the product's query pass (`encode_queries`).

On dev, a last block sweeps the cosine span floor (`RetrievalSettings.cosine_span_floor`: the smallest span
of the dense, sentence max-sim and MaxSim scores that min-max normalisation stretches to 0..1) over the
default setting, with the questions gained / lost against no floor.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.benchmarks.answer_figures import read_jsonl, write_piaf_corpus
from eval.benchmarks.calibrate_hybrid import DATA, model_benchmark_parser, open_hybrid

SPAN_FLOORS = (0.0, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1)
LATE_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0)
LATE_CANDIDATES = (10, 20, 30, 50)

SETTINGS = [  # updates of RetrievalSettings: fusion, dense weight, candidates, sentence weight, coverage weight
    *[("weighted", w, c, 0.0, 0.0) for w in (0.5, 1.0, 1.5) for c in (20, 50, 100)],
    *[("rrf", w, c, 0.0, 0.0) for w in (1.0, 1.5) for c in (50, 100)],
    *[("weighted", w, 50, s, 0.0) for w in (0.75, 1.0) for s in (1.0, 2.0)],
    *[("weighted", w, 50, s, c) for w in (0.75, 1.0) for s in (1.5, 2.0, 2.5) for c in (0.5, 1.0, 1.5, 2.0)],
    ("dense only", 1.0, 50, 0.0, 0.0),
]


def question_sets(piaf_dir: Path, split: str, count: int | None) -> dict[str, list[tuple[str, str]]]:
    """(question, gold paragraph) by set: `count` French PIAF questions of `split` (seed 5), and on dev the
    300 translated dev questions in English and German."""
    questions = [q for q in read_jsonl(piaf_dir / "questions.jsonl") if q["split"] == split]
    random.Random(5).shuffle(questions)
    sets = {f"fr (PIAF {split})": [(q["question"], q["context_id"]) for q in questions[:count]]}
    if split == "dev":
        xling = read_jsonl(DATA / "piaf_dev_xling.jsonl")
        for lang in ("en", "de"):
            sets[f"{lang} (translated)"] = [(x[f"question_{lang}"], x["context_id"]) for x in xling]
    return sets


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument(
        "--questions", type=int, default=None, help="French PIAF questions sampled (dev: 1200)"
    )
    parser.add_argument(
        "--split", choices=("dev", "test"), default="dev", help="test: report the defaults only"
    )
    parser.add_argument(
        "--query-int8",
        action="store_true",
        help="Questions embedded by the int8 copy of the ONNX export (index.embedding_query_int8), "
        "passages as indexed (float32); without it, by the float32 export: run with and without to compare.",
    )
    parser.add_argument(
        "--chunk-header",
        choices=("missing", "all"),
        default=None,
        help="Dense ranking over chunk vectors embedded with their title and headings (see above).",
    )
    args = parser.parse_args(argv)
    test = args.split == "test"
    count = args.questions or (None if test else 1200)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.chain import question_language
    from rag.retrieval import HybridRetriever, late_rescore

    corpus = args.cache / "piaf-corpus"
    write_piaf_corpus(args.piaf_dir, corpus)
    assistant = open_hybrid(corpus, args.cache / f"piaf-{Path(args.model).name}", args.model)
    store, retriever = assistant.store, assistant.retriever
    embedder = store.embedder
    if args.query_int8:
        from index.embedding import _load_int8_query_onnx

        embedder.query_onnx = _load_int8_query_onnx(
            embedder.model, embedder.onnx, embedder.config.model_copy(update={"embedding_query_int8": True})
        )
        if embedder.query_onnx is None:
            raise SystemExit("No int8 copy of the ONNX export could be made (see the note above).")
    else:  # float32, whatever the default (`index.embedding_query_int8`)
        embedder.query_onnx = None
    sets = question_sets(args.piaf_dir, args.split, count)
    defaults = assistant.settings.retrieval
    default = (
        defaults.fusion,
        defaults.dense_weight,
        defaults.candidates,
        defaults.sentence_weight,
        defaults.coverage_weight,
    )
    settings = [("lexical only", 0.0, defaults.candidates, 0.0, 0.0), default]
    if not test:
        settings += [setting for setting in SETTINGS if setting != default]
    chunk_vectors = store.stored_vectors()
    if args.chunk_header:
        chunk_vectors = with_chunk_headers(store, chunk_vectors, every=args.chunk_header == "all")
    gold_of_row = [Path(c.doc_id).stem for c in store.chunks]

    def sentence_scores(rows: list[int], vector: np.ndarray) -> list[tuple[int, float]]:
        windows = getattr(store, "windows", None)
        found = []
        for row in rows:
            vectors = retriever._chunk_window_vectors(row, windows) if windows else None
            if vectors is None:
                return []
            if len(vectors):
                found.append((row, float(np.max(vectors @ vector))))
        return found

    table = getattr(store, "token_table", None)
    if table is None:
        print("The index keeps no token vectors: late interaction is not measured.")

    def question_tokens(encoding) -> tuple[np.ndarray, np.ndarray] | None:
        if table is None or encoding.tokens is None:
            return None
        words = encoding.tokens.words
        return encoding.tokens.vectors[words], table.idf(encoding.tokens.ids[words])

    memo: dict[tuple[int, int], float] = {}

    def maxsims(number: int, tokens, rows: list[int]) -> list[float]:
        """MaxSim of question `number`'s tokens with `rows` (memoised per question and row)."""
        todo = [r for r in rows if (number, r) not in memo]
        if todo:
            for r, value in zip(todo, table.maxsim(tokens[0], tokens[1], todo), strict=True):
                memo[number, r] = float(value)
        return [memo[number, r] for r in rows]

    prepared = {}
    numbered = 0
    for name, items in sets.items():
        texts = [q for q, _ in items]
        encodings = embedder.encode_queries(texts) if table is not None else [None] * len(texts)
        vectors = (  # one batched call
            embedder.embed_queries(texts)
            if args.query_int8
            else embedder._encode(texts, embedder.query_prompt, False)
        )
        rows = []
        for (question, gold), vector, encoding in zip(items, vectors, encodings, strict=True):
            queries = retriever.lexical_queries(question, question_language(question))
            lexical = retriever.lexical_ranking(question, question_language(question), 200, queries)
            scores = chunk_vectors @ vector
            dense = [(int(r), float(scores[r])) for r in np.argsort(-scores)[:200]]
            union = list(dict.fromkeys(r for r, _ in [*lexical, *dense]))
            # Per row, independent of the setting: computed once over every candidate of any setting.
            coverage = retriever.term_coverage(queries, union)
            sentence = dict(sentence_scores(union, vector))
            tokens = question_tokens(encoding) if encoding is not None else None
            numbered += 1
            rows.append((gold, lexical, dense, sentence, coverage, (numbered, tokens)))
        prepared[name] = rows

    print(
        f"PIAF {args.split}, recall@5 / hit@1 of the gold paragraph, {len(store.chunks)} chunks, "
        f"model {args.model}; the first two rows: lexical mode, then the default hybrid setting"
    )
    late_default = (defaults.late_interaction_weight, defaults.late_interaction_candidates)
    default_fused: list = []
    if table is not None and defaults.late_interaction_weight > 0:
        settings.insert(1, (*default, "no late"))
    for fusion, dense_weight, candidates, sentence_weight, coverage_weight, *late_off in settings:
        setting = (fusion, dense_weight, candidates, sentence_weight, coverage_weight)
        late = late_default if setting == default and table is not None and not late_off else (0.0, 0)
        # The product's own fusion (`HybridRetriever.fuse`) with these settings.
        fuser = HybridRetriever(
            store,
            defaults.model_copy(
                update={
                    "fusion": fusion if fusion in ("rrf", "weighted") else "weighted",
                    "dense_weight": dense_weight,
                    "lexical_weight": 1.0,
                    "sentence_weight": sentence_weight,
                    "coverage_weight": coverage_weight,
                }
            ),
        )
        figures = []
        fused_lists = []
        for rows in prepared.values():
            recall = hit = 0
            for gold, lexical, dense, sentence, coverage, (number, tokens) in rows:
                if fusion == "dense only":
                    rankings = {"dense": dense[:candidates]}
                elif fusion == "lexical only":
                    rankings = {"lexical": lexical[:candidates]}
                else:
                    rankings = {"lexical": lexical[:candidates], "dense": dense[:candidates]}
                    union = list(dict.fromkeys(r for ranking in rankings.values() for r, _ in ranking))
                    if sentence_weight and sentence:
                        rankings["sentence"] = [(r, sentence[r]) for r in union if r in sentence]
                    if coverage_weight and fusion == "weighted":
                        rankings["coverage"] = [(r, coverage[r]) for r in union if r in coverage]
                fused = fuser.fuse(rankings)
                if setting == default:
                    fused_lists.append((gold, fused, number, tokens))
                if late[0] > 0 and tokens is not None:
                    head = [r for r, _ in fused[: late[1]]]
                    fused = late_rescore(fused, maxsims(number, tokens, head), late[0])
                top = [gold_of_row[r] for r, _ in fused[:5]]
                recall += gold in top
                hit += bool(top) and top[0] == gold
            figures.append(f"{recall / len(rows):.3f} / {hit / len(rows):.3f}")
        label = (
            f"{fusion} {dense_weight}:1, {candidates} cand., sentence {sentence_weight}, "
            f"coverage {coverage_weight}"
        )
        if late[0] > 0:
            label += f", late {late[0]} x {late[1]}"
        elif late_off:
            label += ", no late"
        print(
            f"  {label:<60} " + "   ".join(f"{n} {f}" for n, f in zip(prepared, figures, strict=True)),
            flush=True,
        )
        if setting == default and not late_off:
            default_fused = fused_lists
    if table is not None and not test:
        sweep_late(
            default_fused, [len(rows) for rows in prepared.values()], list(prepared), gold_of_row, maxsims
        )
    if not test:
        sweep_span_floor(store, defaults, prepared, gold_of_row, maxsims if table is not None else None)
    return 0


def sweep_span_floor(store, defaults, prepared, gold_of_row, maxsims) -> None:
    """The default setting (late interaction included) with each cosine span floor
    (`RetrievalSettings.cosine_span_floor`, the product's `HybridRetriever.fuse` and `late_interaction`'s
    `late_rescore`), and per set the questions gained / lost at recall@5 and hit@1 against floor 0."""
    from rag.retrieval import HybridRetriever, late_rescore

    print("Cosine span floor (dense, sentence max-sim, MaxSim) over the default setting: gained / lost vs 0")
    first: dict[str, list[tuple[bool, bool]]] = {}
    for floor in SPAN_FLOORS:
        settings = defaults.model_copy(update={"cosine_span_floor": floor})
        fuser, parts = HybridRetriever(store, settings), []
        for name, rows in prepared.items():
            outcomes = []
            for gold, lexical, dense, sentence, coverage, (number, tokens) in rows:
                rankings = {"lexical": lexical[: settings.candidates], "dense": dense[: settings.candidates]}
                union = list(dict.fromkeys(r for ranking in rankings.values() for r, _ in ranking))
                if settings.sentence_weight and sentence:
                    rankings["sentence"] = [(r, sentence[r]) for r in union if r in sentence]
                if settings.coverage_weight:
                    rankings["coverage"] = [(r, coverage[r]) for r in union if r in coverage]
                fused = fuser.fuse(rankings)
                weight, count = settings.late_interaction_weight, settings.late_interaction_candidates
                if maxsims is not None and weight > 0 and tokens is not None:
                    head = [r for r, _ in fused[:count]]
                    fused = late_rescore(fused, maxsims(number, tokens, head), weight, floor)
                top = [gold_of_row[r] for r, _ in fused[:5]]
                outcomes.append((gold in top, bool(top) and top[0] == gold))
            base = first.setdefault(name, outcomes)
            recall, hit = (sum(o[i] for o in outcomes) / len(outcomes) for i in (0, 1))
            moved = [sum(a[i] and not b[i] for a, b in zip(outcomes, base, strict=True)) for i in (0, 1)] + [
                sum(b[i] and not a[i] for a, b in zip(outcomes, base, strict=True)) for i in (0, 1)
            ]
            parts.append(
                f"{name} {recall:.3f} / {hit:.3f} (+{moved[0]} -{moved[2]} / +{moved[1]} -{moved[3]})"
            )
        print(f"  floor {floor:<5} " + "   ".join(parts), flush=True)


def with_chunk_headers(store, vectors: np.ndarray, every: bool) -> np.ndarray:
    """`vectors` with the chunks' vectors embedded from their header and text ("TITLE HEADINGS\n\nTEXT"):
    every chunk's, or (`every` False) those whose text does not open with its header already."""
    from index.lexical import chunk_header

    rows, texts = [], []
    for row, chunk in enumerate(store.chunks):
        header = chunk_header(chunk.title, chunk.heading_path)
        if header and (every or not chunk.text.lstrip("#= \n").startswith(header)):
            rows.append(row)
            texts.append(f"{header}\n\n{chunk.text}")
    print(f"{len(rows)} of {len(store.chunks)} chunks embedded with their title and headings", flush=True)
    vectors = np.array(vectors, dtype=np.float32)
    if rows:
        vectors[rows] = store.embedder.embed_passages(texts)
    return vectors


def sweep_late(fused_lists, sizes, names, gold_of_row, maxsims) -> None:
    """Late interaction's weight and candidate count over the default fusion (`late_rescore`)."""
    from rag.retrieval import late_rescore

    print("Late interaction over the default fusion: weight x candidates rescored")
    for count in LATE_CANDIDATES:
        for weight in LATE_WEIGHTS:
            parts, position = [], 0
            for name, size in zip(names, sizes, strict=True):
                recall = hit = 0
                for gold, fused, number, tokens in fused_lists[position : position + size]:
                    if weight > 0 and tokens is not None:
                        head = [r for r, _ in fused[:count]]
                        fused = late_rescore(fused, maxsims(number, tokens, head), weight)
                    top = [gold_of_row[r] for r, _ in fused[:5]]
                    recall += gold in top
                    hit += bool(top) and top[0] == gold
                position += size
                parts.append(f"{name} {recall / size:.3f} / {hit / size:.3f}")
            print(f"  weight {weight:<4} x {count:<3} " + "   ".join(parts), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
