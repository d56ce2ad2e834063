"""Calibrate hybrid mode's abstention gate (rag.abstention.HYBRID_GATES) and the extractive answer's cosine
weight (rag.evidence.COSINE_WEIGHT) for one embedding model, on dev data only, and print the figures.

    .venv/bin/python -m eval.benchmarks.calibrate_hybrid --model /root/.cache/rag-fr/e5-small
        [--piaf-dir ../shared/bench/piaf] [--cache DIR] [--per-class 400] [--refresh]

Data (PIAF test is never read):
- PIAF dev with honest unanswerable questions: the dev articles are split in two by a hash of their title
  (`eval.benchmarks.calibrate_abstention.held_out`); the paragraphs of the held-out half are removed from
  every ranking and from the lexical statistics (the index holds all 1,518 paragraphs, built once and
  cached; `HeldOut` makes it answer as an index of the kept paragraphs), so questions written on them have
  no answer. French: PIAF's own dev questions; English and German: the translated dev sample
  (`data/piaf_dev_xling.jsonl`), and its French originals.
- Near misses (`data/piaf_dev_near_miss.jsonl`, fr/en/de, written for this project): questions on an
  indexed dev article's topic asking a detail that no paragraph gives ("Combien pesait Edward Dickinson
  Baker ?" when his height is given). They are unanswerable.
- The seed golden sets over seeds/ (26 + 33 questions, fr/en/de), which the gate must get all right.

Two phases, so that gate rules can be tried in seconds:
1. Features (slow, cached): every question is embedded once, in batches (`Embedder.embed_queries`, memoised
   so the chain's own `query_vector` finds it), then the chain runs up to the abstention check (retrieval
   top-5, evidence step) and every statement window of the evidence is written to a gzipped JSON-lines file
   in `--cache` (`calibrate-<model>-<key>.jsonl.gz`; the key hashes the data and the code of the stages that
   make the features, so a change there collects again; `--refresh` forces it).
2. Figures (seconds): the evidence of each question is rebuilt from the file and read by the product's own
   `rag.abstention.evidence_check` and extractive generator: the shipped gate and the candidate gates per
   language (false abstentions on answerable questions, caught unanswerable ones), then PIAF dev answer
   containment (the gold span inside the extractive answer) per language, at the shipped answer weights of
   `rag.evidence` and with each moved alone; beside each, the golden sets' citation precision per language
   of the same answers, as `rag eval` scores it (`golden_citation_precision`; a check, never tuned on).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from eval.benchmarks.answer_figures import DEFAULT_PIAF, GOLDEN, SEEDS, read_jsonl, write_piaf_corpus

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[2]
LANGUAGES = ("fr", "en", "de")
COSINE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
MAXSIM_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
SLOPES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
CROSSLINGUAL_OFFSETS = (0.0, 0.015, 0.03, 0.045, 0.06)
TYPE_MISMATCH_PENALTIES = (0.0, 0.03, 0.06, 0.1, 0.15, 0.25)
LEXICAL_REACHES = (None, 0.03, 0.05, 0.07, 0.1)  # `HybridGate.lexical_reach` (None: every window)
TIE = 0.01
#: The code whose behaviour the cached features depend on (a change there collects them again).
FEATURE_CODE = (
    "rag/evidence.py",
    "rag/retrieval.py",
    "rag/chain.py",
    "rag/crosslingual.py",
    "rag/data/glossary.tsv",  # the term groups' translations (it was missing: a glossary change kept old features)
    "index/lexical.py",
    "index/windows.py",
    "index/words.py",
    "index/tokens.py",
    "index/store.py",
)
#: Bump when what `evidence_record` writes changes (this file is not hashed: its analysis part changes often).
FEATURES_VERSION = 13  # 13: per-retriever passage scores; 12: term groups in full; 11: passage scores; 10: passage spans, golden ids; 9: the query's token cosines
QUERY_BATCH = 64


def hybrid_settings(index_dir: Path, model: str, overrides: dict | None = None):
    """The product's default settings for `index_dir` and `model` (the environment is not read), with
    `overrides` (dotted names: {"retrieval.cosine_span_floor": 0.05})."""
    from rag.settings import load_settings

    return load_settings(
        environ={},
        overrides={
            "index.index_dir": str(index_dir),
            "index.embedding_model": model,
            "index.show_progress": False,
            **(overrides or {}),
        },
    )


def open_hybrid(folder: Path, index_dir: Path, model: str, overrides: dict | None = None):
    """The cached index of `folder` in `index_dir`, opened as it is (built first when there is none; brought
    up to date first when it was written without token vectors, which the product's hybrid retrieval reads:
    figures from such an index would silently leave late interaction out). `overrides`: see
    `hybrid_settings`."""
    from rag import build_assistant, open_assistant
    from rag.errors import IndexUnavailableError

    settings = hybrid_settings(index_dir, model, overrides)
    try:
        assistant = open_assistant(settings)
    except IndexUnavailableError:
        assistant = build_assistant([folder], settings)
    if assistant.retriever.mode == "hybrid" and getattr(assistant.store, "token_table", False) is None:
        print(
            f"The cached index {index_dir} has no token vectors: every chunk is embedded once more.",
            flush=True,
        )
        assistant = build_assistant([folder], settings)
    if assistant.retriever.mode != "hybrid":
        raise SystemExit(f"The model {model!r} could not be loaded: nothing to calibrate.")
    return assistant


class HeldOut:
    """Makes the cached index of every dev paragraph answer as an index without the held-out ones.

    Rankings leave the held-out rows out, and the lexical statistics are those of the kept rows alone: BM25
    (document frequencies, average length, the spelling fix of unknown query words) and the evidence step's
    IDF, so a word found only in held-out articles is unseen, as it is for a user whose documents do not
    cover the question (before, the statistics held every dev paragraph: names of held-out articles looked
    known to the index and `unknown_name` never fired on their questions)."""

    def __init__(self, store, excluded: set[str]) -> None:
        self.store = store
        self.rows = {i for i, c in enumerate(store.chunks) if Path(c.doc_id).stem in excluded}
        self.kept = [i for i in range(len(store.chunks)) if i not in self.rows]

    def _filter(self, search):
        def run(query, k, *args, **options):
            found = search(query, k + 100, *args, **options)
            return [hit for hit in found if hit[0] not in self.rows][:k]

        return run

    def install(self, assistant) -> None:
        """Filter the store's rankings and give `assistant` the kept rows' statistics."""
        from collections import Counter

        import numpy as np

        from rag.evidence import CorpusStats, EvidenceScorer

        self.store.bm25 = _KeptRows(self.store.bm25.take_rows(np.asarray(self.kept)), self.kept)
        self.store.search_lexical = self._filter(self.store.search_lexical)
        self.store.search_dense = self._filter(self.store.search_dense)
        frequencies = Counter(self.store.bm25.document_frequencies())
        assistant._reader._scorer = EvidenceScorer(CorpusStats(frequencies, len(self.kept)))


class _KeptRows:
    """A BM25 index of some rows of the store, answering with the store's row numbers."""

    def __init__(self, index, rows: list[int]) -> None:
        self.index, self.rows = index, rows
        self.position = {row: i for i, row in enumerate(rows)}  # store row -> row of `index`

    def __getattr__(self, name: str):
        return getattr(self.index, name)

    def search(self, query_tokens, k: int) -> list[tuple[int, float]]:
        return [(self.rows[row], score) for row, score in self.index.search(query_tokens, k)]

    def coverage(self, query_tokens, rows, **options) -> dict[int, float]:
        """The term coverage of store rows (hybrid fusion's fourth signal), read at their kept position;
        a held-out row holds nothing. (Passed through as it was, the store's row numbers were read as
        positions of the kept rows: the calibration fused with another row's coverage.)"""
        position = self.position
        found = self.index.coverage(
            query_tokens, [position[row] for row in rows if row in position], **options
        )
        return {row: found.get(position[row], 0.0) if row in position else 0.0 for row in rows}


def prepared(assistant, question: str, history: list | None = None) -> dict:
    from rag.chain import _start

    chain = assistant.chain("extractive")
    # The windows' token matches are recorded whatever `rag.evidence.MAXSIM_WEIGHT` is (the product skips
    # them at 0).
    chain.window_token_matches = getattr(assistant.store, "window_token_matches", None)
    return chain.prepare.invoke(_start({"question": question, "history": history or [], "top_k": 5}))


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


# -- phase 1: the features ----------------------------------------------------------------------------
def questions_to_ask(piaf_dir: Path, excluded: set[str], per_class: int) -> list[dict]:
    """Every dev question of the calibration, labelled: set (fr/en/de/golden), answerable, kind."""
    rng = random.Random(13)
    dev = [q for q in read_jsonl(piaf_dir / "questions.jsonl") if q["split"] == "dev"]
    fr_ok = [q for q in dev if q["context_id"] not in excluded]
    fr_out = [q for q in dev if q["context_id"] in excluded]
    items = [
        {"set": "fr", "question": q["question"], "answerable": True, "kind": "piaf", "answers": q["answers"]}
        for q in rng.sample(fr_ok, min(per_class, len(fr_ok)))
    ]
    items += [
        {"set": "fr", "question": q["question"], "answerable": False, "kind": "held-out"}
        for q in rng.sample(fr_out, min(per_class, len(fr_out)))
    ]
    for item in read_jsonl(DATA / "piaf_dev_xling.jsonl"):
        answerable = item["context_id"] not in excluded
        for lang in ("en", "de"):
            kind = "piaf" if answerable else "held-out"
            items.append(
                {"set": lang, "question": item[f"question_{lang}"], "answerable": answerable, "kind": kind}
            )
    for item in read_jsonl(DATA / "piaf_dev_near_miss.jsonl"):
        for lang in LANGUAGES:
            items.append(
                {"set": lang, "question": item[f"question_{lang}"], "answerable": False, "kind": "near"}
            )
    for name in (GOLDEN, GOLDEN.parent / "seed_qa_extra.jsonl"):
        for g in read_jsonl(name):
            items.append(
                {
                    "set": "golden",
                    "id": g["id"],
                    "question": g["question"],
                    "history": g.get("history"),
                    "answerable": g["answerable"],
                    "kind": "golden",
                    "lang": g.get("lang"),
                }
            )
    return items


def setting_overrides(args: argparse.Namespace) -> dict:
    """The settings the features are collected with, beside the product's defaults (`--span-floor`,
    `--query-float32`, `--query-int8`)."""
    floor = getattr(args, "span_floor", None)
    overrides = {} if floor is None else {"retrieval.cosine_span_floor": floor}
    if getattr(args, "query_float32", False):
        overrides["index.embedding_query_int8"] = False
    elif getattr(args, "query_int8", False):
        overrides["index.embedding_query_int8"] = True
    return overrides


def feature_key(model: str, items: list[dict], settings=None) -> str:
    """The cache key of the features: the model, the questions, the code of FEATURE_CODE and the retrieval
    and answer settings they are collected with (`settings`: a changed default collects them again), and
    the int8 query copy's format when questions go through it."""
    digest = hashlib.sha1(f"{model}:{FEATURES_VERSION}".encode())
    digest.update(json.dumps(items, sort_keys=True, ensure_ascii=False).encode())
    if settings is not None:
        chosen = {"retrieval": settings.retrieval.model_dump(), "answer": settings.answer.model_dump()}
        if settings.index.embedding_query_int8:  # the question's vectors come from the int8 copy
            from index.onnx_encoder import INT8_FORMAT

            chosen["query_int8"] = INT8_FORMAT
        digest.update(json.dumps(chosen, sort_keys=True, default=str).encode())
    for name in FEATURE_CODE:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:12]


def evidence_record(state: dict) -> dict:
    """What the gate and the extractive answer read of one question's evidence (statement windows only)."""
    evidence = state["evidence"]
    tokens = evidence.question_tokens
    return {
        "question_tokens": None
        if tokens is None
        else {"query": tokens.query, "offsets": tokens.offsets, "idf": [round(v, 4) for v in tokens.idf]},
        "language": evidence.language,
        "focus": state["condensed"].focus,
        "answer_type": evidence.answer_type,
        "unknown_name": evidence.unknown_name,
        "term_groups": [
            [g.word, sorted(g.stems), g.weight, sorted(g.native), g.answer_weight, g.translated]
            for g in evidence.term_groups
        ],
        # Where each passage lies in its document (what `rag eval` checks a cited passage by), its fused score
        # and each retriever's.
        "passages": [[p.number, p.start, p.end, p.score, p.scores] for p in state["passages"]],
        "windows": [
            {
                "passage": w.passage.number,
                "doc_id": w.passage.doc_id,
                "instruction_like": w.passage.instruction_like,
                "rank": w.rank,
                "start": w.window.start,
                "end": w.window.end,
                "text": w.window.text,
                "coverage": w.coverage,
                "typed": w.typed,
                "cosine": w.cosine,
                "covered": [sorted(group) for group in w.covered],
                "crosslingual": w.crosslingual,
                "match_native": w.match_native,
                "match_translated": w.match_translated,
                "match_cognate": w.match_cognate,
                "covered_native": [sorted(group) for group in w.covered_native],
                "maxsim": w.maxsim,
                "token_cosines": None if w.token_cosines is None else [round(v, 4) for v in w.token_cosines],
            }
            for w in evidence.statements
        ],
    }


def collect_features(args: argparse.Namespace, path: Path, items: list[dict], excluded: set[str]) -> None:
    from eval.benchmarks.postgres import _Memo

    corpus = args.cache / "piaf-corpus"
    tag = Path(args.model).name or "model"
    overrides = setting_overrides(args)
    piaf = open_hybrid(corpus, args.cache / f"piaf-{tag}", args.model, overrides)
    seeds = open_hybrid(SEEDS, args.cache / f"seeds-{tag}", args.model, overrides)
    HeldOut(piaf.store, excluded).install(piaf)
    started = time.perf_counter()
    for assistant in (piaf, seeds):
        # One batched model call per QUERY_BATCH questions; the chain's query_vector then reads the memo.
        assistant.store.embedder = memo = _Memo(assistant.store.embedder)
        texts = [i["question"] for i in items if (i["set"] == "golden") == (assistant is seeds)]
        memo.embed_queries(texts, batch=QUERY_BATCH)
    print(f"  {len(items)} questions embedded in {time.perf_counter() - started:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One partial file per process: two runs of the same code (two engineers, one cache) must not interleave
    # their lines in one file; the last complete one wins the rename.
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with gzip.open(partial, "wt", encoding="utf-8") as out:
        for count, item in enumerate(items, start=1):
            golden = item["set"] == "golden"
            state = prepared(seeds if golden else piaf, item["question"], item.get("history"))
            out.write(json.dumps({**item, **evidence_record(state)}, ensure_ascii=False) + "\n")
            if count % 250 == 0:
                print(f"  {count}/{len(items)} ({time.perf_counter() - started:.0f} s)", flush=True)
    partial.replace(path)  # only a complete file is ever read back


def load_features(path: Path) -> list[dict] | None:
    """The cached features, or None when there are none (or the file is damaged: they are collected again)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError) as error:
        print(f"  {path.name} is damaged ({error}): collecting again", flush=True)
        return None


# -- phase 2: the figures -------------------------------------------------------------------------------
def rebuild_evidence(record: dict):
    """The `rag.evidence.Evidence` of a record (passages carry what the gate and the generator read)."""
    from rag.evidence import Evidence, QuestionTokens, ScoredWindow, TermGroup, Window
    from rag.records import Passage

    passages: dict[int, Passage] = {}
    spans = {number: (start, end, *score) for number, start, end, *score in record.get("passages", ())}
    windows = []
    for w in record["windows"]:
        passage = passages.get(w["passage"])
        if passage is None:
            start, end, *score = spans.get(w["passage"], (0, 0))
            passage = Passage(
                w["passage"],
                [],
                w["doc_id"],
                "",
                "",
                "",
                start,
                end,
                score[0] if score else 0.0,
                scores=score[1] if len(score) > 1 else {},
                instruction_like=w["instruction_like"],
            )
            passages[w["passage"]] = passage
        windows.append(
            ScoredWindow(
                passage=passage,
                rank=w["rank"],
                window=Window(w["start"], w["end"], w["text"], frozenset()),
                coverage=w["coverage"],
                typed=w["typed"],
                cosine=w["cosine"],
                covered=frozenset(frozenset(group) for group in w["covered"]),
                crosslingual=w["crosslingual"],
                match_native=w["match_native"],
                match_translated=w["match_translated"],
                match_cognate=w["match_cognate"],
                covered_native=frozenset(frozenset(group) for group in w["covered_native"]),
                maxsim=w.get("maxsim"),
                token_cosines=None if w.get("token_cosines") is None else tuple(w["token_cosines"]),
            )
        )
    top = max((w.cosine for w in windows if w.cosine is not None), default=0.0)
    windows = [w if w.cosine is None else _with_gap(w, top) for w in windows]
    tokens = record.get("question_tokens")
    question_tokens = None
    if tokens is not None:
        offsets = tuple((a, b) for a, b in tokens["offsets"])
        question_tokens = QuestionTokens(tokens["query"], offsets, tuple(tokens["idf"]), ())
    evidence = Evidence(
        record["focus"],
        record["language"],
        record["answer_type"],
        tuple(windows),
        record["unknown_name"],
        True,
        tuple(
            TermGroup(word, frozenset(stems), weight, frozenset(native), answer_weight, translated)
            for word, stems, weight, native, answer_weight, translated in record["term_groups"]
        ),
        question_tokens,
    )
    return with_token_weights(evidence) if question_tokens is not None else _with_maxsim_gaps(evidence)


def with_token_weights(evidence, tokens: str | None = None, idf_weighted: bool | None = None):
    """`evidence` with its windows' MaxSim read again from their token cosines, the query's tokens weighed by
    `rag.evidence.question_token_weights` (its defaults: the product's `MAXSIM_TOKENS`, `MAXSIM_IDF`)."""
    from dataclasses import replace

    from rag.evidence import question_token_weights

    question = evidence.question_tokens
    weights = question_token_weights(
        question.offsets,
        question.idf,
        evidence.question,
        question.query,
        evidence.language,
        tokens=tokens,
        idf_weighted=idf_weighted,
    )
    question = replace(question, weights=weights)
    windows = tuple(
        w if w.token_cosines is None else replace(w, maxsim=question.maxsim(w.token_cosines))
        for w in evidence.windows
    )
    return _with_maxsim_gaps(replace(evidence, windows=windows, question_tokens=question))


def _with_maxsim_gaps(evidence):
    from dataclasses import replace

    best = max((w.maxsim for w in evidence.windows if w.maxsim is not None), default=0.0)
    windows = tuple(
        w if w.maxsim is None else replace(w, maxsim_gap=max(0.0, best - w.maxsim)) for w in evidence.windows
    )
    return replace(evidence, windows=windows)


def _with_gap(window, top: float):
    from dataclasses import replace

    return replace(window, cosine_gap=max(0.0, top - window.cosine))


def abstention_rates(records: Iterable[dict], abstains) -> tuple[float, float, int, int]:
    """(false abstentions on answerable, caught unanswerable, counts) under the decision `abstains`."""
    answerable = [abstains(r) for r in records if r["answerable"]]
    unanswerable = [abstains(r) for r in records if not r["answerable"]]
    false = sum(answerable) / max(1, len(answerable))
    caught = sum(unanswerable) / max(1, len(unanswerable))
    return false, caught, len(answerable), len(unanswerable)


def report_gate(name: str, records: list[dict], abstains) -> None:
    """False abstentions (all answerable questions; those whose gold span is in a retrieved window) and caught
    unanswerable questions (all; held-out articles; near misses), per language, then the golden sets."""
    print(f"{name}:")
    for lang in LANGUAGES:
        subset = [r for r in records if r["set"] == lang]
        false, caught, n_ok, n_un = abstention_rates(subset, abstains)
        retrieved = [abstains(r) for r in subset if r["answerable"] and r.get("retrieved")]
        kinds = {kind: [abstains(r) for r in subset if r["kind"] == kind] for kind in ("held-out", "near")}
        print(
            f"  {lang}: false abstentions {false:.3f} ({n_ok}; gold span retrieved "
            f"{_share(retrieved)}), caught {caught:.3f} ({n_un}; held-out articles {_share(kinds['held-out'])}, "
            f"near misses {_share(kinds['near'])})"
        )
    golden = [r for r in records if r["set"] == "golden"]
    wrong = [r["question"] for r in golden if abstains(r) == r["answerable"]]
    print(
        f"  golden: {len(golden) - len(wrong)}/{len(golden)} right" + (f"; wrong: {wrong}" if wrong else "")
    )


def _share(flags: list[bool]) -> str:
    return f"{statistics.mean(flags) if flags else 0:.3f} of {len(flags)}"


def mark_retrieved(piaf_dir: Path, records: list[dict]) -> None:
    """Give each answerable dev record its gold answers and whether one is inside a retrieved window (when
    none is, abstaining is the right answer for the product, though the figures count it as false)."""
    from eval.metrics import answer_contained

    table = gold_answers(piaf_dir)
    for r in records:
        if r["set"] in LANGUAGES and r["answerable"]:
            r.setdefault("answers", table.get((r["set"], r["question"])))
            r["retrieved"] = any(answer_contained(w.window.text, r["answers"]) for w in r["evidence"].windows)


def report_gate_cost(records: list[dict], gate) -> None:
    """CPU time of the abstention check per question, the lexical gate and `gate` side by side (the same
    evidence, interleaved, the answer-anchor analysis warm as in a running process after its first questions).
    """
    from rag.abstention import evidence_check

    costs: dict[str, list[float]] = {"lexical": [], "hybrid": []}
    for warm in (False, True):
        for record in records:
            for name, decide in (("lexical", None), ("hybrid", gate)):
                started = time.thread_time()
                evidence_check(record["evidence"], gate=decide)
                if warm:
                    costs[name].append((time.thread_time() - started) * 1000)
    for name, values in costs.items():
        values.sort()
        print(
            f"  abstention check, {name} (CPU ms per question, {len(values)}): median "
            f"{statistics.median(values):.3f}, p95 {values[int(0.95 * (len(values) - 1))]:.3f}, "
            f"max {values[-1]:.2f}"
        )


def sweep_gates(
    records: list[dict],
    model: str,
    lexical_false: dict[str, float],
    *,
    same_window: bool = False,
    reaches: Sequence[float | None] = (None,),
):
    """Every gate of the grid on PIAF dev. Returns (chosen gate, its per-language (false, caught), mean
    balanced accuracy), or None.

    `same_window`: the gate reads the best window's slope * lexical score + cosine (both of one window,
    `HybridGate.same_window`), not the best lexical score and the best cosine of any two windows.
    `reaches`: the `HybridGate.lexical_reach` values swept (the best lexical score of the windows whose
    cosine is within that of the best; None: of every window), for the form of two windows.

    Kept: gates that abstain wrongly no more often than the lexical gate in any language (a hybrid gate
    must not cost answers). Caught is the mean of the two kinds of unanswerable questions the issue names,
    held-out articles and near misses (the detail asked is not given), so that the 30 near misses weigh as
    much as the 150-430 held-out questions. Gates within `TIE` of the best mean balanced accuracy count as
    equal (its standard error on these counts is about 0.015); of those, the ones that get every golden
    question right are preferred (the golden sets are a check, as in `calibrate_abstention`: they choose
    between gates PIAF dev cannot tell apart, never move the grid), then the lowest worst-language
    false-abstention rate (the target that matters most to a user: <= 3 %)."""
    import numpy as np

    from rag.abstention import HybridGate, answer_anchor, lexical_score

    dev = [r for r in records if r["set"] in LANGUAGES]
    golden = [r for r in records if r["set"] == "golden"]
    labels = np.array([r["answerable"] for r in dev + golden])
    kinds = {kind: np.array([r["kind"] == kind for r in dev]) for kind in ("held-out", "near")}
    masks = {lang: np.array([r["set"] == lang for r in dev]) for lang in LANGUAGES}
    anchors = [answer_anchor(r["evidence"]) for r in dev + golden]
    # Every statement window of every question, flattened (question i owns windows owner == i); a question
    # without a window (or without cosines) reads 0.0, as the shipped form always did.
    windows = [
        (i, item, lexical_score(item, r["evidence"]))
        for i, r in enumerate(dev + golden)
        for item in r["evidence"].statements
    ]
    owner = np.array([i for i, _, _ in windows], dtype=np.int64)
    window_lexical = np.array([score for _, _, score in windows])
    count = len(dev) + len(golden)
    lexical = np.zeros(count)
    np.maximum.at(lexical, owner, window_lexical)
    kept = []
    for offset in CROSSLINGUAL_OFFSETS:
        for penalty in TYPE_MISMATCH_PENALTIES:
            probe = HybridGate(model, 0.0, 0.0, offset, penalty)
            window_cosine = np.array(
                [
                    np.nan if (c := probe.window_cosine(item, anchors[i])) is None else c
                    for i, item, _ in windows
                ]
            )
            has_cosine = ~np.isnan(window_cosine)
            cosine = np.full(count, -np.inf)
            np.maximum.at(cosine, owner[has_cosine], window_cosine[has_cosine])
            cosine[np.isinf(cosine)] = 0.0
            # The lexical score each reach reads (a question without cosines reads every window's, as the
            # product's `evidence_check` does).
            near_lexical = {}
            for reach in (None,) if same_window else reaches:
                if reach is None:
                    near_lexical[reach] = lexical
                    continue
                read = np.nan_to_num(window_cosine, nan=-np.inf)
                near = has_cosine & (read >= cosine[owner] - reach)
                reached = np.zeros(count)
                np.maximum.at(reached, owner[near], window_lexical[near])
                near_lexical[reach] = np.where(np.isin(np.arange(count), owner[has_cosine]), reached, lexical)
            for slope, reach in [(slope, reach) for slope in SLOPES for reach in near_lexical]:
                if same_window:
                    values = np.full(count, -np.inf)
                    combined = slope * window_lexical[has_cosine] + window_cosine[has_cosine]
                    np.maximum.at(values, owner[has_cosine], combined)
                    values = np.where(np.isinf(values), slope * lexical, values)
                else:
                    values = slope * near_lexical[reach] + cosine
                golden_values, golden_labels = values[len(dev) :], labels[len(dev) :]
                values, dev_labels = values[: len(dev)], labels[: len(dev)]
                for intercept in np.unique(np.round(values[dev_labels], 3)):
                    golden_right = bool(np.all((golden_values >= intercept) == golden_labels))
                    abstain = values < intercept
                    rates = {
                        lang: (
                            float(abstain[mask & dev_labels].mean()),
                            float(np.mean([abstain[mask & kind].mean() for kind in kinds.values()])),
                        )
                        for lang, mask in masks.items()
                    }
                    if any(rates[lang][0] > lexical_false[lang] for lang in LANGUAGES):
                        continue
                    balanced = statistics.mean((1 - f + c) / 2 for f, c in rates.values())
                    gate = HybridGate(model, slope, float(intercept), offset, penalty, same_window, reach)
                    kept.append((gate, rates, balanced, golden_right))
    if not kept:
        return None
    top = max(k[2] for k in kept)
    equal = [k for k in kept if k[2] >= top - TIE]
    gate, rates, balanced, _ = min(equal, key=lambda k: (not k[3], max(f for f, _ in k[1].values()), -k[2]))
    return gate, rates, balanced


def gold_answers(piaf_dir: Path) -> dict[tuple[str, str], list[str]]:
    """(language, question) -> PIAF's gold answers, for the translated dev questions (same answers)."""
    answers = {q["id"]: q["answers"] for q in read_jsonl(piaf_dir / "questions.jsonl") if q["split"] == "dev"}
    table = {}
    for item in read_jsonl(DATA / "piaf_dev_xling.jsonl"):
        for lang in ("en", "de"):
            table[(lang, item[f"question_{lang}"])] = answers[item["piaf_id"]]
    return table


def golden_evidence() -> dict[str, tuple[str, list]]:
    """Golden question id -> (its language, its evidence spans in seeds/), answerable questions only."""
    from eval.datasets import load_golden

    dataset = load_golden([GOLDEN, GOLDEN.parent / "seed_qa_extra.jsonl"], SEEDS)
    return {item.id: (item.lang, item.evidence) for item in dataset.items if item.answerable}


def golden_citation_precision(
    records: list[dict], evidence_of, gold: dict[str, tuple[str, list]], gate=None
) -> tuple[dict[str, float], list[str]]:
    """The golden sets' citation precision per language as `rag eval` scores it (`eval.metrics`: the share of
    cited passages holding evidence, averaged over the answered questions), of the extractive answers made
    from `evidence_of(record)`, and the ids of the questions below 1. Questions the gate (`gate`, else the
    lexical gate) abstains on cite nothing and count as in `rag eval`: not at all."""
    from dataclasses import replace

    from eval.metrics import Span, citation_precision
    from rag.abstention import evidence_check
    from rag.backends.extractive import ExtractiveGenerator

    generator = ExtractiveGenerator()
    by_language: dict[str, list[float]] = {}
    imprecise = []
    for record in records:
        if record["set"] != "golden" or record.get("id") not in gold:
            continue
        evidence = evidence_of(record)
        if evidence_check(evidence, gate=gate).abstain:
            continue
        chosen = generator.select(record["focus"], record["language"], [], evidence)
        cited = {w.passage.number: w.passage for w in chosen}
        spans = [Span(Path(p.doc_id).name, p.start, p.end) for p in cited.values()]
        language, quotes = gold[record["id"]]
        quotes = [replace(q, doc=Path(q.doc).name) for q in quotes]
        precision = citation_precision(spans, quotes)
        if precision is None:
            continue
        by_language.setdefault(language, []).append(precision)
        if precision < 1.0:
            imprecise.append(record["id"])
    return {lang: statistics.mean(values) for lang, values in by_language.items()}, imprecise


def report_answers(records: list[dict], model: str) -> None:
    """PIAF dev gold span in the extractive answer, per language (answerable questions), at the shipped
    answer weights (rag.evidence.ANSWER_WEIGHTS) and with each weight moved alone; mean quotes and words;
    and the golden sets' citation precision per language of the same answers (`golden_citation_precision`,
    as `rag eval` scores it, with the ids below 1: a check, the golden sets are never tuned on)."""
    import rag.evidence as evidence
    from eval.metrics import answer_contained
    from rag.abstention import gate_for
    from rag.backends.extractive import ExtractiveGenerator
    from rag.markers import find_markers

    generator = ExtractiveGenerator()
    answerable = [r for r in records if r["set"] in LANGUAGES and r["answerable"]]
    gold = golden_evidence()
    gate = gate_for(model)

    def figures(read=lambda evidence: evidence) -> str:
        precision, imprecise = golden_citation_precision(records, lambda r: read(r["evidence"]), gold, gate)
        golden = " ".join(f"{lang} {precision[lang]:.3f}" for lang in LANGUAGES if lang in precision)
        parts = []
        for lang in LANGUAGES:
            rows = [r for r in answerable if r["set"] == lang]
            texts = [generator.compose(r["focus"], r["language"], [], read(r["evidence"])) for r in rows]
            contained = statistics.mean(
                answer_contained(t, r["answers"]) for t, r in zip(texts, rows, strict=True)
            )
            quotes = statistics.mean(sum(1 for _ in find_markers(t)) for t in texts)
            words = statistics.mean(len(t.split()) for t in texts)
            parts.append(f"{lang} {contained:.3f} ({len(rows)} q, {quotes:.2f} quotes, {words:.0f} words)")
        return ", ".join(parts) + f"; golden citation precision {golden} {imprecise or ''}".rstrip()

    print("PIAF dev gold span in the extractive answer:")
    print(f"  shipped {evidence.ANSWER_WEIGHTS}: {figures()}")
    report_gold_window_ranks(answerable)
    sweeps = {
        "COSINE_WEIGHT": COSINE_WEIGHTS,
        "COSINE_WEIGHT_CROSSLINGUAL": COSINE_WEIGHTS,
        "TRANSLATION_CREDIT": (0.3, 0.5, 0.7, 1.0),
        "COGNATE_CREDIT": (0.5, 0.7, 1.0),
        "RANK_PRIOR": (0.01, 0.03, 0.08),
        "TYPE_BONUS": (0.0, 0.1, 0.25, 0.4),
    }
    for name, values in sweeps.items():
        saved = getattr(evidence, name)
        try:
            for value in values:
                if value != saved:
                    setattr(evidence, name, value)
                    print(f"  {name} {value}: {figures()}", flush=True)
        finally:
            setattr(evidence, name, saved)
    report_maxsim(records, figures)
    import rag.backends.extractive as extractive

    saved = extractive.ADD_RATIO_MAXSIM
    try:
        for value in (0.7, 0.8, 0.85):
            extractive.ADD_RATIO_MAXSIM = value
            print(f"  ADD_RATIO_MAXSIM {value}: {figures()}", flush=True)
    finally:
        extractive.ADD_RATIO_MAXSIM = saved
    # Lexical mode's choice (no cosines, no MaxSim) among the same windows: a stand-in for lexical mode's
    # cross-lingual answers, whose passages would differ (BM25 alone retrieves them).
    print(f"  no cosines (lexical choice), shipped: {figures(_without_cosines)}", flush=True)
    saved = evidence.COGNATE_CREDIT_LEXICAL
    try:
        for value in (0.5, 1.0):
            if value != saved:
                evidence.COGNATE_CREDIT_LEXICAL = value
                print(
                    f"  no cosines, COGNATE_CREDIT_LEXICAL {value}: {figures(_without_cosines)}", flush=True
                )
    finally:
        evidence.COGNATE_CREDIT_LEXICAL = saved


def report_gold_window_ranks(answerable: list[dict]) -> None:
    """Where the gold span is when the shipped answer misses it, per language: the answer-score rank of the
    best window holding it (2nd, 3rd-5th, 6th or lower) or in no window of the retrieved passages (what a
    better window choice could still win, and what only retrieval can)."""
    from eval.metrics import answer_contained
    from rag.backends.extractive import ExtractiveGenerator
    from rag.evidence import with_discriminating_tokens

    generator = ExtractiveGenerator()
    print("  where the gold span is when the answer misses it (best window holding it, by answer score):")
    for lang in LANGUAGES:
        rows = [r for r in answerable if r["set"] == lang]
        places = {"2nd": 0, "3rd-5th": 0, "6th or lower": 0, "no retrieved window": 0}
        for r in rows:
            evidence = r["evidence"]
            if answer_contained(generator.compose(r["focus"], r["language"], [], evidence), r["answers"]):
                continue
            ranked = sorted(with_discriminating_tokens(evidence).statements, key=lambda w: -w.answer_score)
            rank = next(
                (i for i, w in enumerate(ranked) if answer_contained(w.window.text, r["answers"])), None
            )
            if rank is None:
                places["no retrieved window"] += 1
            else:
                places["2nd" if rank <= 1 else "3rd-5th" if rank <= 4 else "6th or lower"] += 1
        shares = ", ".join(f"{name} {count / max(1, len(rows)):.3f}" for name, count in places.items())
        print(f"    {lang} ({len(rows)} q): {shares}")


def report_maxsim(records: list[dict], figures) -> None:
    """Gold span with the windows' MaxSim in the answer score: each choice of the query's tokens
    (`rag.evidence.question_token_weights`) by each weight, and the golden answers each changes (a check:
    the golden sets are never tuned on)."""
    import rag.evidence as evidence
    from rag.backends.extractive import ExtractiveGenerator

    if not any(r["evidence"].question_tokens is not None for r in records):
        print("  (no token vectors in the index: no MaxSim)")
        return
    generator = ExtractiveGenerator()
    golden = [r for r in records if r["set"] == "golden" and r["answerable"]]
    saved = evidence.MAXSIM_WEIGHT

    def answers() -> list[str]:
        return [generator.compose(r["focus"], r["language"], [], r["evidence"]) for r in golden]

    try:
        evidence.MAXSIM_WEIGHT = 0.0
        before = answers()
        for tokens in ("query", "question", "content"):
            for idf_weighted in (False, True):
                variant = {
                    id(r["evidence"]): with_token_weights(r["evidence"], tokens, idf_weighted)
                    for r in records
                    if r["evidence"].question_tokens is not None
                }

                def read(item, variant=variant):
                    return variant.get(id(item), item)

                for weight in MAXSIM_WEIGHTS[1:]:
                    evidence.MAXSIM_WEIGHT = weight
                    label = f"MaxSim {tokens}{' IDF' if idf_weighted else ''} {weight}"
                    print(f"  {label}: {figures(read)}", flush=True)
                    if weight in (2.0, 5.0):
                        after = [
                            generator.compose(r["focus"], r["language"], [], read(r["evidence"]))
                            for r in golden
                        ]
                        changed = [
                            r["question"]
                            for r, old, new in zip(golden, before, after, strict=True)
                            if old != new
                        ]
                        print(f"    golden answers changed: {len(changed)}/{len(golden)} {changed}")
    finally:
        evidence.MAXSIM_WEIGHT = saved


def _without_cosines(evidence):
    from dataclasses import replace

    windows = tuple(
        replace(w, cosine=None, cosine_gap=0.0, token_cosines=None, maxsim=None, maxsim_gap=0.0)
        for w in evidence.windows
    )
    return replace(evidence, windows=windows, hybrid=False, question_tokens=None)


def calibration_records(args: argparse.Namespace, *, refresh: bool = False) -> list[dict]:
    """The records of every calibration question (`args`: --model, --piaf-dir, --cache, --per-class), from
    the feature cache (collected first when absent or `refresh`), each with its rebuilt `evidence`."""
    from eval.benchmarks.calibrate_abstention import held_out

    contexts = write_piaf_corpus(args.piaf_dir, args.cache / "piaf-corpus")
    excluded = {c["id"] for c in contexts if c["split"] == "dev" and held_out(c["title"])}
    items = questions_to_ask(args.piaf_dir, excluded, args.per_class)
    tag = Path(args.model).name or "model"
    settings = hybrid_settings(args.cache / f"piaf-{tag}", args.model, setting_overrides(args))
    path = args.cache / f"calibrate-{tag}-{feature_key(tag, items, settings)}.jsonl.gz"
    records = None if refresh else load_features(path)
    if records is None:
        print(f"Collecting the features of {len(items)} questions into {path}", flush=True)
        collect_features(args, path, items, excluded)
        records = load_features(path)
    for record in records:
        record["evidence"] = rebuild_evidence(record)
    mark_retrieved(args.piaf_dir, records)
    print(
        f"PIAF dev: {len(contexts) - len(excluded)} paragraphs searchable, {len(excluded)} held out; "
        f"{len(records)} questions from {path.name}",
        end=" ",
    )
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--per-class", type=int, default=400, help="French PIAF dev questions per class.")
    parser.add_argument("--refresh", action="store_true", help="Collect the features again.")
    parser.add_argument(
        "--span-floor",
        type=float,
        default=None,
        help="Collect the features with this retrieval.cosine_span_floor (default: the product's).",
    )
    parser.add_argument(
        "--query-float32",
        action="store_true",
        help="Collect the features with questions embedded in float32 (index.embedding_query_int8 off).",
    )
    parser.add_argument(
        "--query-int8",
        action="store_true",
        help="Collect the features with questions through the int8 copy (index.embedding_query_int8 on).",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.abstention import evidence_check, gate_for

    started = time.perf_counter()
    records = calibration_records(args, refresh=args.refresh)
    print(f"({time.perf_counter() - started:.0f} s)")

    def lexical(r: dict) -> bool:
        return evidence_check(r["evidence"]).abstain

    report_gate("Lexical gate (no hybrid gate)", records, lexical)
    lexical_false = {
        lang: abstention_rates([r for r in records if r["set"] == lang], lexical)[0] for lang in LANGUAGES
    }
    shipped = gate_for(args.model)
    if shipped is not None:
        report_gate(
            f"Shipped hybrid gate {shipped}",
            records,
            lambda r: evidence_check(r["evidence"], gate=shipped).abstain,
        )
        report_gate_cost(records, shipped)
    forms = {
        "best lexical score, best cosine": {},
        "one window's lexical score and cosine": {"same_window": True},
        "best cosine, best lexical score within a reach of it": {"reaches": LEXICAL_REACHES},
    }
    for form, options in forms.items():
        chosen = sweep_gates(records, Path(args.model).name, lexical_false, **options)
        if chosen is None:
            print(f"No gate of the grid ({form}) abstains wrongly less often than the lexical gate.")
            continue
        gate, _, balanced = chosen
        report_gate(
            f"Chosen gate on PIAF dev, {form} (mean balanced accuracy {balanced:.3f}, held-out and near "
            f"misses weighing equally, see sweep_gates): {gate}",
            records,
            lambda r, gate=gate: evidence_check(r["evidence"], gate=gate).abstain,
        )

    report_answers(records, args.model)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
