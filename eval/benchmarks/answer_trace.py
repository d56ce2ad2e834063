"""Why a golden question's answer cites what it cites: every scored window of its evidence step.

    RAG_INDEX__EMBEDDING_MODEL=DIR .venv/bin/python -m eval.benchmarks.answer_trace extra-007 [ID ...]
        [--top 8] [--tokens]

For each golden question (ids of `eval/golden/*.jsonl`), over the product's index of `seeds/` (the one
`rag eval` caches in runs/.cache), the extractive answer is made as `rag eval` makes it (the chain's stages,
then verification) and printed with
- the retrieved passages, which of them hold each evidence quote, the cited ones and the citation precision
  as `rag eval` scores it (`eval.metrics.citation_precision`: a cited passage must hold a quote);
- the statement windows best first by `ScoredWindow.answer_score` (the `--top` best, then every window
  holding evidence, marked *), each with what its score is made of: the question's words it holds in their
  own spelling (native, of which cognate) and only through a translation, the answer type, its passage's
  retrieval rank, and in hybrid mode how far its cosine and its MaxSim are below the best window's (the
  weights are `rag.evidence.ANSWER_WEIGHTS`);
- with `--tokens` (hybrid mode, an index with token vectors): each token of the question as the MaxSim reads
  it, its best cosine in the quoted windows and in the evidence windows.
The companion of `eval.benchmarks.fusion_trace` (why a chunk is or is not retrieved). No figure is tuned here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from eval.benchmarks.fusion_trace import add_golden_arguments, golden_questions


def _window_line(mark: str, position: int, item, weights: dict) -> str:
    parts = [
        f"native {item.match_native:.2f}"
        + (f" (cognate {item.match_cognate:.2f})" if item.match_cognate else ""),
        f"translated {item.match_translated:.2f}",
        "typed" if item.typed else "untyped",
        f"passage rank {item.rank}",
    ]
    if item.cosine is not None:
        weight = weights["cosine_crosslingual"] if item.crosslingual else weights["cosine"]
        parts.append(f"cosine {item.cosine:.3f} gap {item.cosine_gap:.3f} x {weight:g}")
    if item.maxsim is not None:
        parts.append(f"MaxSim {item.maxsim:.3f} gap {item.maxsim_gap:.3f} x {weights['maxsim']:g}")
    text = " ".join(item.window.text.split())[:90]
    return f"  {mark} {position:>2}. [{item.passage.number}] {item.answer_score:+.3f} | {', '.join(parts)} | {text}"


def _holds(start: int, end: int, quotes) -> bool:
    return any(start < quote.end and quote.start < end for quote in quotes)


def _quoted(item, quoted) -> bool:
    """Whether the window `item` is inside a quote of the answer (a quote may take a sentence along)."""
    return any(
        q.passage.number == item.passage.number
        and q.window.start <= item.window.start
        and item.window.end <= q.window.end
        for q in quoted
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_golden_arguments(parser, "extra-007")
    parser.add_argument("--top", type=int, default=8, help="best windows listed per question")
    parser.add_argument("--tokens", action="store_true", help="the question's tokens' best cosines")
    args = parser.parse_args(argv)
    from eval import metrics
    from eval.runner import DocMapper
    from rag.backends.extractive import ExtractiveGenerator
    from rag.chain import _start
    from rag.evidence import ANSWER_WEIGHTS, with_discriminating_tokens

    dataset, items, assistant = golden_questions(parser, args)
    chain = assistant.chain("extractive")
    mapper = DocMapper(dataset)
    print(f"mode {assistant.retriever.mode}, answer weights {ANSWER_WEIGHTS}")
    for identifier in args.ids:
        item = items[identifier]
        state = chain.prepare.invoke(
            _start({"question": item.question, "history": item.history, "top_k": None})
        )
        answer = chain.finalize.invoke({**state, "text": "".join(chain.pieces(state))})
        evidence, passages = state["evidence"], state["passages"]
        print(f"\n{identifier} ({state['language']}): {item.question}")
        if state["condensed"].standalone != item.question:
            print(f"  searched as: {state['condensed'].standalone}")
        spans = {p.number: mapper.span(p) for p in passages}
        for passage in passages:
            holding = [
                f"« {q.quote[:40]} »"
                for q in item.evidence
                if metrics.holds_evidence(spans[passage.number], q)
            ]
            held = f" holds {', '.join(holding)}" if holding else ""
            print(f"  passage [{passage.number}] {passage.start}-{passage.end}{held}")
        if not any(metrics.holds_evidence(span, q) for span in spans.values() for q in item.evidence):
            print("  (no retrieved passage holds the evidence: see eval.benchmarks.fusion_trace)")
        cited = [spans[p.number] for p in answer.cited_passages]
        precision = metrics.citation_precision(cited, item.evidence)
        outcome = "abstained" if answer.abstained else f"cites {[p.number for p in answer.cited_passages]}"
        print(f"  answer {outcome}, citation precision {'-' if precision is None else f'{precision:.2f}'}")
        print(f"  {' '.join(answer.text.split())[:300]}")
        if evidence is None:
            continue
        quoted = ExtractiveGenerator().select(evidence.question, evidence.language, passages, evidence)
        # As the answer ranks them (across languages, the MaxSim of `with_discriminating_tokens`).
        ranked = sorted(with_discriminating_tokens(evidence).statements, key=lambda w: -w.answer_score)
        for position, window in enumerate(ranked, start=1):
            gold = _holds(window.window.start, window.window.end, item.evidence)
            if position <= args.top or gold:
                mark = ("*" if gold else " ") + (">" if _quoted(window, quoted) else " ")
                print(_window_line(mark, position, window, ANSWER_WEIGHTS))
        tokens = evidence.question_tokens
        if args.tokens and tokens is not None:
            words = [tokens.query[a:b] for a, b in tokens.offsets]
            shown = [
                w
                for w in ranked
                if w.token_cosines is not None
                and (_holds(w.window.start, w.window.end, item.evidence) or _quoted(w, quoted))
            ]
            weighed = zip(words, tokens.weights, strict=True)
            print("  tokens (weight): " + " ".join(f"{t}({g:g})" for t, g in weighed))
            for window in shown:
                cosines = " ".join(f"{c:.2f}" for c in window.token_cosines)
                mark = "*" if _holds(window.window.start, window.window.end, item.evidence) else ">"
                print(
                    f"   {mark} [{window.passage.number}] {window.window.start}-{window.window.end}: {cosines}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
