"""Hybrid retrieval: dense + lexical candidates, fused, merged into passages, optionally reranked.

- Dense: `store.search_dense` (cosine over the embedded chunks; nothing in lexical mode).
- Lexical: `store.search_lexical` (BM25 with the analyzer of the documents' language). When the question is
  in another language than the documents, its words are expanded with `rag.crosslingual.expand_query`
  before the lexical search, so an English "valuation" can match the French "valorisation".
- Hybrid mode also scores each candidate by its best sentence window's cosine (max-sim over the window
  vectors stored at index time) and by its term coverage (the IDF-weighted share of the question's terms it
  holds, read from the lexical index's postings).
- Fusion: a weighted sum of min-max normalised scores plus the weighted coverage (the default, chosen by
  measurement: see `rag.settings.RetrievalSettings`) or reciprocal rank fusion (RRF). A cosine ranking's
  span is taken as at least `cosine_span_floor` (`min_max`): on a corpus of a few chunks, cosines that
  barely differ are not stretched to the full weight of a ranking that tells its candidates apart.
- Late interaction (hybrid mode, a store with token vectors: `index.protocols.TokenReader`): the best fused
  candidates are rescored by MaxSim, the question's token vectors (from its one query pass) against each
  candidate's stored token vectors (`index.tokens`), min-max normalised over them (the same span floor)
  and weighed.
- Merge: overlapping or adjacent chunks of one document become one `Passage` (offsets union, text read
  back from the document), so the same sentences are never shown twice.
- Rerank (optional): a sentence-transformers cross-encoder reorders the fused candidates.

`PassageRetriever` exposes the same retrieval as a LangChain `BaseRetriever`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever

from index.protocols import CoverageReader, IndexReader, Ranking, TokenReader, WindowReader
from index.records import Chunk
from rag.protocols import Reranker
from rag.records import Passage
from rag.settings import RetrievalSettings


def rrf_fuse(
    rankings: dict[str, Ranking], k: int, weights: dict[str, float] | None = None
) -> dict[int, float]:
    """Reciprocal rank fusion: sum over rankings of weight / (k + rank), rank starting at 1."""
    fused: dict[int, float] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, (row, _score) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + weight / (k + rank)
    return fused


def late_rescore(
    fused: Sequence[tuple[int, float]], maxsims: Sequence[float], weight: float, span_floor: float = 0.0
) -> list[tuple[int, float]]:
    """The first len(maxsims) candidates of `fused` (best first) with `weight` x their MaxSim, min-max
    normalised over them (`span_floor`: see `min_max`), added to their score and sorted again (ties keep
    the fused order); the others after them, unchanged (they score no more than the last rescored one did
    before)."""
    head = list(fused[: len(maxsims)])
    if not head:
        return list(fused)
    normalised = min_max(maxsims, span_floor, equal=0.0)  # no spread: nothing to tell them apart
    rescored = [(row, score + weight * value) for (row, score), value in zip(head, normalised, strict=True)]
    rescored.sort(key=lambda item: -item[1])  # stable: ties keep the fused order
    return rescored + list(fused[len(head) :])


def min_max(scores: Sequence[float], span_floor: float = 0.0, *, equal: float = 1.0) -> list[float]:
    """`scores` mapped to 0..1 by min-max, the span taken as at least `span_floor`: scores that differ by
    less than the floor (a ranking that barely tells its candidates apart, e.g. cosines over a corpus of a
    few chunks) stay as close together as that, instead of being stretched to the whole 0..1 range.
    Without a floor, equal scores all get `equal`."""
    if not scores:
        return []
    low = min(scores)
    spread = max(max(scores) - low, span_floor)
    if spread <= 0:
        return [equal] * len(scores)
    return [(score - low) / spread for score in scores]


def weighted_fuse(
    rankings: dict[str, Ranking], weights: dict[str, float], span_floors: dict[str, float] | None = None
) -> dict[int, float]:
    """Weighted sum of min-max normalised scores (a candidate missing from a ranking scores 0 there), each
    ranking's span floored by `span_floors[name]` (`min_max`)."""
    fused: dict[int, float] = {}
    for name, ranking in rankings.items():
        floor = (span_floors or {}).get(name, 0.0)
        normalised = min_max([score for _, score in ranking], floor)
        for (row, _score), value in zip(ranking, normalised, strict=True):
            fused[row] = fused.get(row, 0.0) + weights.get(name, 1.0) * value
    return fused


# About three chunks of the default 256 tokens: what a person reads as one passage. At top-k 20 merging
# without a bound gave one 7,448-character passage holding a whole article.
MAX_PASSAGE_CHARS = 3000
# Chunk rows whose sentence-window vectors the retriever keeps (a few windows x 384 float32 each: ~30 MB);
# past that the memo starts again, so a long-running chat over a big index stays bounded.
WINDOW_CACHE_ROWS = 4096


@dataclass(slots=True)
class _Group:
    doc_id: str
    chunks: list[Chunk]
    start: int
    end: int
    score: float
    scores: dict[str, float] = field(default_factory=dict)


def _touches(chunk: Chunk, group: _Group, text: str) -> bool:
    """Overlapping, or adjacent with nothing but whitespace between them."""
    if chunk.doc_id != group.doc_id:
        return False
    if chunk.start <= group.end and chunk.end >= group.start:
        return True
    gap = text[group.end : chunk.start] if chunk.start > group.end else text[chunk.end : group.start]
    return not gap.strip()


def _groups_touch(a: _Group, b: _Group, text: str) -> bool:
    low, high = (a, b) if a.start <= b.start else (b, a)
    return high.start <= low.end or not text[low.end : high.start].strip()


def merge_chunks(
    ranked: Sequence[tuple[Chunk, float, dict[str, float]]],
    document_text: Callable[[str], str],
    limit: int,
    *,
    merge: bool = True,
    max_chars: int | None = None,
) -> list[Passage]:
    """Chunks in rank order -> at most `limit` passages; touching chunks of one document are merged.

    The first `limit` chunks are merged (so there may be fewer passages than `limit`). A merged passage keeps
    the best score of its chunks and the heading/page of its first chunk. `merge=False`: one passage per
    chunk, in rank order (what rank metrics need: recall@k then means "in the k best chunks").
    `max_chars` (default `MAX_PASSAGE_CHARS`): a merge that would make a passage longer is not done, so a
    large top-k does not fold a whole article into one passage nobody reads.
    """
    max_chars = MAX_PASSAGE_CHARS if max_chars is None else max_chars

    def fits(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
        return max(a_end, b_end) - min(a_start, b_start) <= max_chars

    groups: list[_Group] = []
    texts: dict[str, str] = {}
    # The best `limit` chunks, merged: taking more to fill `limit` passages would chain overlapping
    # neighbours into whole documents.
    for chunk, score, scores in ranked[:limit]:
        text = texts.setdefault(chunk.doc_id, document_text(chunk.doc_id))
        start, end = chunk.start, chunk.end
        touching = [g for g in groups if _touches(chunk, g, text)] if merge else []
        target = next((g for g in touching if fits(g.start, g.end, start, end)), None)
        if target is None:
            for group in touching:  # too long to merge: keep only the text no passage shows yet
                if start < group.end <= end:
                    start = group.end
                elif start <= group.start < end:
                    end = group.start
            while start < end and text[start].isspace():
                start += 1
            if start < end:
                groups.append(_Group(chunk.doc_id, [chunk], start, end, score, dict(scores)))
            continue
        target.chunks.append(chunk)
        target.start, target.end = min(target.start, chunk.start), max(target.end, chunk.end)
        target.score = max(target.score, score)
        for name, value in scores.items():
            target.scores[name] = max(target.scores.get(name, value), value)
        # The grown group may now touch another one of its document: fold them (the better-ranked survives).
        for other in [g for g in groups if g is not target and g.doc_id == target.doc_id]:
            if not _groups_touch(target, other, texts[target.doc_id]) or not fits(
                target.start, target.end, other.start, other.end
            ):
                continue
            keep, drop = (target, other) if groups.index(target) < groups.index(other) else (other, target)
            keep.chunks.extend(drop.chunks)
            keep.start, keep.end = min(keep.start, drop.start), max(keep.end, drop.end)
            keep.score = max(keep.score, drop.score)
            for name, value in drop.scores.items():
                keep.scores[name] = max(keep.scores.get(name, value), value)
            groups.remove(drop)
            target = keep
    passages = []
    for number, group in enumerate(groups, start=1):
        first = min(group.chunks, key=lambda c: c.start)
        text = texts[group.doc_id]
        passages.append(
            Passage(
                number=number,
                chunk_ids=[c.chunk_id for c in sorted(group.chunks, key=lambda c: c.start)],
                doc_id=group.doc_id,
                source=first.source,
                title=first.title,
                text=text[group.start : group.end],
                start=group.start,
                end=group.end,
                score=group.score,
                heading_path=list(first.heading_path),
                page=first.page,
                scores=group.scores,
                instruction_like=any(getattr(c, "instruction_like", False) for c in group.chunks),
            )
        )
    return passages


class HybridRetriever:
    """Question -> numbered passages, from an opened index (`index.protocols.IndexReader`). The retrieval
    mode is the store's, decided when it was opened."""

    def __init__(
        self,
        store: IndexReader,
        settings: RetrievalSettings,
        *,
        reranker: Reranker | None = None,
        expander: Callable[[str, str, Sequence[str]], str] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.reranker = reranker
        if expander is None:
            from rag.crosslingual import expand_query as expander
        self.expander = expander
        self._chunk_windows: dict[int, object] = {}  # chunk row -> its windows' vectors (sentence max-sim)

    @property
    def mode(self) -> str:
        return self.store.mode

    def lexical_queries(self, question: str, language: str) -> list[tuple[str, str, bool]]:
        """(query, document language, fix_unknown) per language of the documents: the question itself in
        its own language; expanded with its translations (`expander`) for documents in another one, where
        typo/inflection repair is off (a foreign word is unknown because it is foreign, and its near
        neighbours in the index are noise)."""
        queries = []
        for doc_language in sorted(self.store.corpus_languages()) or [language]:
            query = question
            if doc_language != language and self.expander is not None:
                try:
                    extra = self.expander(question, language, [doc_language])
                except Exception:  # noqa: BLE001 - expansion is a bonus; the plain question still searches
                    extra = ""
                if extra:
                    query = f"{question} {extra}"
            queries.append((query, doc_language, doc_language == language))
        return queries

    def lexical_ranking(
        self, question: str, language: str, k: int, queries: list[tuple[str, str, bool]] | None = None
    ) -> Ranking:
        """BM25 over the documents' language(s), with cross-lingual expansion of the question when needed."""
        runs: dict[str, Ranking] = {}
        for query, doc_language, fix_unknown in queries or self.lexical_queries(question, language):
            runs[doc_language] = self.store.search_lexical(
                query, k, language=doc_language, fix_unknown=fix_unknown
            )
        if len(runs) == 1:
            return next(iter(runs.values()))
        fused = rrf_fuse(runs, self.settings.rrf_k)
        return sorted(fused.items(), key=lambda item: -item[1])[:k]

    def rankings(self, question: str, language: str, k: int) -> dict[str, Ranking]:
        """Each retriever's ranking of its `k` best rows; in hybrid mode also the candidates' best sentence
        window ("sentence") and their share of the question's terms ("coverage", not a ranking of its
        own: its raw share is added to the fused score, see `fuse`)."""
        queries = self.lexical_queries(question, language)
        rankings = {"lexical": self.lexical_ranking(question, language, k, queries)}
        if self.mode == "hybrid":
            rankings["dense"] = self.store.search_dense(question, k)
            candidates = list(dict.fromkeys(row for ranking in rankings.values() for row, _ in ranking))
            if self.settings.sentence_weight > 0:
                sentence = self.sentence_ranking(question, candidates)
                if sentence:
                    rankings["sentence"] = sentence
            if self.settings.coverage_weight > 0 and self.settings.fusion == "weighted":
                coverage = self.term_coverage(queries, candidates)
                if coverage:
                    rankings["coverage"] = sorted(coverage.items(), key=lambda item: -item[1])
        return rankings

    def term_coverage(self, queries: list[tuple[str, str, bool]], rows: Sequence[int]) -> dict[int, float]:
        """Per row, its best share of a lexical query's terms (`index.protocols.CoverageReader`); {} when
        the store cannot tell."""
        if not rows or not isinstance(self.store, CoverageReader):
            return {}
        best: dict[int, float] = {}
        for query, doc_language, fix_unknown in queries:
            found = self.store.term_coverage(query, rows, doc_language, fix_unknown=fix_unknown)
            for row, share in found.items():
                best[row] = max(best.get(row, 0.0), share)
        return best

    def sentence_ranking(self, question: str, rows: Sequence[int]) -> Ranking:
        """The candidates again, each scored by its best sentence window's cosine with the question (max-sim
        over the window vectors stored at index time; the query vector is the one dense search computed).
        A chunk says many things; a question asks one: its best sentence is a sharper signal than the
        chunk's single vector. [] when the store keeps no window vectors (`index.protocols.WindowReader`)."""
        import numpy as np

        if not isinstance(self.store, WindowReader):
            return []
        windows = self.store.windows
        query = self.store.query_vector(question)
        if query is None:
            return []
        scored_rows, parts = [], []
        for row in rows:
            vectors = self._chunk_window_vectors(row, windows)
            if vectors is None:
                return []
            if len(vectors):
                scored_rows.append(row)
                parts.append(vectors)
        if not parts:
            return []
        # One matrix product over every candidate's windows, then the best per candidate: a product per
        # candidate (~80 of them) cost more in numpy calls than in arithmetic.
        cosines = np.concatenate(parts) @ query
        starts = np.cumsum([0] + [len(part) for part in parts[:-1]])
        best = np.maximum.reduceat(cosines, starts)
        ranking = list(zip(scored_rows, best.tolist(), strict=True))
        return sorted(ranking, key=lambda item: -item[1])

    def _chunk_window_vectors(self, row: int, windows: Callable[[str], object]) -> object:
        """Vectors of the windows whose sentence lies in chunk `row` (memoised), None without vectors."""
        import numpy as np

        if row not in self._chunk_windows:
            if len(self._chunk_windows) >= WINDOW_CACHE_ROWS:
                self._chunk_windows.clear()
            chunk = self.store.chunks[row]
            stored = windows(chunk.doc_id)
            if stored is None or stored[1] is None:  # type: ignore[index]
                return None
            spans, vectors = stored  # type: ignore[misc]
            inside = [i for i, s in enumerate(spans) if s.sentence >= chunk.start and s.end <= chunk.end]
            self._chunk_windows[row] = np.asarray(vectors[inside], dtype=np.float32)
        return self._chunk_windows[row]

    def fuse(self, rankings: dict[str, Ranking]) -> list[tuple[int, float]]:
        """One score per candidate: the rankings' min-max normalised scores weighed (or RRF), plus the raw
        term coverage weighed by `coverage_weight` (a share already on one scale for every question)."""
        weights = {
            "dense": self.settings.dense_weight,
            "lexical": self.settings.lexical_weight,
            "sentence": self.settings.sentence_weight,
        }
        coverage = rankings.get("coverage", [])
        rankings = {name: ranking for name, ranking in rankings.items() if name != "coverage"}
        if len(rankings) == 1:
            fused = {row: score for row, score in next(iter(rankings.values()))}
        elif self.settings.fusion == "rrf":
            fused = rrf_fuse(rankings, self.settings.rrf_k, weights)
        else:
            floor = self.settings.cosine_span_floor  # the cosine rankings' (not BM25's)
            fused = weighted_fuse(rankings, weights, {"dense": floor, "sentence": floor})
            for row, share in coverage:
                if row in fused:
                    fused[row] += self.settings.coverage_weight * share
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))

    def late_interaction(
        self, question: str, fused: list[tuple[int, float]]
    ) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """`fused` with its `late_interaction_candidates` best rescored by MaxSim (`late_rescore`), and each
        rescored row's MaxSim; unchanged in lexical mode, with weight 0, or without stored token vectors."""
        weight = self.settings.late_interaction_weight
        if self.mode != "hybrid" or weight <= 0 or not fused or not isinstance(self.store, TokenReader):
            return fused, {}
        rows = [row for row, _ in fused[: self.settings.late_interaction_candidates]]
        maxsims = self.store.token_maxsim(question, rows)
        if maxsims is None:
            return fused, {}
        values = [float(value) for value in maxsims]
        rescored = late_rescore(fused, values, weight, self.settings.cosine_span_floor)
        return rescored, dict(zip(rows, values, strict=True))

    def retrieve(
        self, question: str, language: str, k: int | None = None, *, merge: bool = True
    ) -> list[Passage]:
        """The passages of the `k` (default `top_k`) best chunks for `question`, numbered from 1; touching
        chunks are merged into one passage unless `merge` is False."""
        k = k or self.settings.top_k
        candidates = max(self.settings.candidates, k)
        rankings = self.rankings(question, language, candidates)
        per_retriever = {name: dict(ranking) for name, ranking in rankings.items()}
        fused = self.fuse(rankings)
        fused, maxsims = self.late_interaction(question, fused)
        if maxsims:
            per_retriever["late"] = maxsims
        if self.reranker is not None and fused:
            fused = self.reranker.rerank(question, [(row, self.store.chunks[row].text) for row, _ in fused])
            per_retriever["rerank"] = dict(fused)
        ranked = []
        for row, score in fused:
            scores = {name: values[row] for name, values in per_retriever.items() if row in values}
            ranked.append((self.store.chunks[row], float(score), scores))
        return merge_chunks(ranked, self.store.document_text, k, merge=merge)


def passage_to_document(passage: Passage) -> LCDocument:
    """A LangChain Document for a passage: text plus where it comes from and how it scored."""
    return LCDocument(
        page_content=passage.text,
        metadata={
            "number": passage.number,
            "chunk_ids": list(passage.chunk_ids),
            "doc_id": passage.doc_id,
            "source": passage.source,
            "title": passage.title,
            "start": passage.start,
            "end": passage.end,
            "score": passage.score,
            "scores": dict(passage.scores),
            "heading_path": list(passage.heading_path),
            "page": passage.page,
        },
    )


class PassageRetriever(BaseRetriever):
    """LangChain adapter: `PassageRetriever(retrieve=assistant.retrieve).invoke("question")` -> Documents."""

    retrieve: Callable[[str, int | None], list[Passage]]
    k: int | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        return [passage_to_document(p) for p in self.retrieve(query, self.k)]
