"""The answering chain: its stages in order, exposed as LangChain (LCEL) runnables.

    question, history                                            (stage names = `Answer.timings` keys)
      -> language      detect the question's language (index.language)
      -> condense      follow-up + history -> standalone question (the heuristic of rag.condense; an
                       LLM rewrites with generator.condense and the condense prompt only a follow-up the
                       heuristic cannot resolve, or every follow-up with llm.rewrite_follow_ups="always")
      -> retrieve      hybrid retrieval -> numbered passages (rag.retrieval)
      -> evidence      every sentence window of the passages scored once: lexical coverage, and in hybrid
                       mode the cosine with the question from vectors stored in the index (rag.evidence)
      -> check         abstention decided on that evidence (rag.abstention)
      -> prompt        system + user messages with the numbered passages (rag.prompts); the
                       conversation too for a follow-up the model did not rewrite
      -> generate      generator.stream(...) (skipped when abstaining: nothing is invented)
      -> verify        parse [n] markers, check each against its passage (rag.citations)
      -> Answer        with the time spent in each stage

`AnswerChain.prepare` (everything before generation) and `AnswerChain.finalize` (verification) are LCEL
runnables; `AnswerChain.runnable` runs prepare | generate | finalize for `invoke`/`batch`, and
`AnswerChain.stream` yields the generator's pieces as they come, then the final `Answer`. Inside a runnable
the stages are plain calls in the caller's thread (see `AnswerChain.prepare` for why).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda

from index.language import detect_language, script_language
from rag.abstention import EvidenceCheck, HybridGate, evidence_check, is_abstention
from rag.backends.base import GenerationRequest, Generator
from rag.citations import CitationVerifier
from rag.condense import Condensed, condense_heuristically, is_follow_up
from rag.errors import BackendError
from rag.evidence import Evidence, EvidenceScorer, WindowSource, collect_evidence
from rag.markers import remove_marker_numbers
from rag.prompts import abstention_message, build_messages, format_history
from rag.records import Answer, CitationReport, Passage
from rag.settings import Settings

State = dict[str, Any]


def _timed(stage: str, function: Callable[[State], Any]) -> Callable[[State], Any]:
    def run(state: State) -> Any:
        started = time.perf_counter()
        try:
            return function(state)
        finally:
            timings = state["timings"]
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started

    run.__name__ = stage
    return run


def question_language(question: str) -> str:
    # A question in a non-Latin script (Chinese, Russian, ...) is that language, answered in the fallback
    # language (rag.prompts); otherwise questions are short: French is the product's first language, so a
    # tie goes to it.
    return script_language(question) or detect_language(question, default="fr")


@dataclass(slots=True)
class AnswerChain:
    """The stages bound to one index, one generator and the settings."""

    retrieve_passages: Callable[[str, str, int | None], list[Passage]]
    generator: Generator
    scorer: EvidenceScorer
    verifier: CitationVerifier
    language_of: Callable[[str], str]
    settings: Settings
    retrieval_mode: str = "lexical"
    #: The index's stored sentence windows (and vectors) per document, and the query's vector (memoised by
    #: the store: the one computed for dense retrieval). None: windows split on the fly, no cosines.
    windows_of: WindowSource | None = None
    query_vector: Callable[[str], Any] | None = None
    # (query, document id, spans) -> the query's tokens against each span
    # (`index.protocols.TokenReader.window_token_matches`).
    window_token_matches: Callable[[str, str, Sequence[tuple[int, int]]], Any] | None = None
    gate: HybridGate | None = None  # the embedding model's calibrated abstention gate (rag.abstention)

    # --- stages -------------------------------------------------------------------------------------------
    def _language(self, state: State) -> str:
        return question_language(state["question"])

    def _condense_without_model(self, state: State) -> Condensed | None:
        """The condense stage when it needs no model call; None when an LLM must rewrite the question."""
        question, history = state["question"], state.get("history") or []
        max_turns = self.settings.answer.max_history_turns
        if not history or max_turns == 0:
            return Condensed(question, question, False)
        history = list(history)[-2 * max_turns :]
        if not self.generator.is_llm:
            return condense_heuristically(question, history, state["language"], self.scorer)
        # An LLM rewrite is a whole model round trip before retrieval can start (0.8 s of a 20 tokens/s
        # model's time to first token, and one more model call per follow-up): asked only for a question
        # that leans on the conversation (a pronoun without a name of its own, "Et … ?", no word the corpus
        # knows: `rag.condense.is_follow_up`). A question with its own subject is searched as asked; a
        # rewrite would only risk steering it back to the previous topic.
        if not is_follow_up(question, state["language"], self.scorer, history):
            return Condensed(question, question, False)
        if self.settings.llm.rewrite_follow_ups == "always":
            return None
        # What mature RAG chats do for speed: the rule-based rewrite decides the search query when it found
        # the conversation's subject (words of the previous questions added), and the model reads the
        # conversation in its answer prompt (`_prompt`) to understand the question as asked. Unsure (no
        # subject found): the model rewrites.
        condensed = condense_heuristically(question, history, state["language"], self.scorer)
        return condensed if condensed.standalone != question else None

    def _condense(self, state: State) -> Condensed:
        condensed = self._condense_without_model(state)
        if condensed is not None:
            return condensed
        question, history = state["question"], state.get("history") or []
        max_turns = self.settings.answer.max_history_turns
        history = list(history)[-2 * max_turns :]
        history_text = format_history(history, state["language"], max_turns)
        try:
            standalone = self.generator.condense(question, history_text, state["language"]).strip()
        except NotImplementedError:
            return condense_heuristically(question, history, state["language"], self.scorer)
        standalone = standalone or question
        return Condensed(standalone, standalone, standalone != question)

    def _retrieve(self, state: State) -> list[Passage]:
        return self.retrieve_passages(state["condensed"].standalone, state["language"], state.get("top_k"))

    def _evidence(self, state: State) -> Evidence:
        query = state["condensed"].standalone
        vector = None
        if self.query_vector is not None and state["passages"]:
            # The retrieval query's vector (already computed, memoised): no second model call.
            vector = self.query_vector(query)
        return collect_evidence(
            state["condensed"].focus,
            state["language"],
            state["passages"],
            self.scorer,
            self.language_of,
            windows_of=self.windows_of,
            query_vector=vector,
            token_matches_of=self._token_matches_of(query) if vector is not None else None,
            retrieval_query=query,
        )

    def _token_matches_of(self, query: str) -> Callable[[str, Sequence[tuple[int, int]]], Any] | None:
        """The retrieval query's tokens against windows (memoised with its vector: no model call)."""
        window_token_matches = self.window_token_matches
        if window_token_matches is None:
            return None
        return lambda doc_id, spans: window_token_matches(query, doc_id, spans)

    def _check(self, state: State) -> EvidenceCheck:
        return evidence_check(
            state["evidence"], threshold=self.settings.answer.abstain_threshold, gate=self.gate
        )

    def _prompt(self, state: State) -> list:
        condensed: Condensed = state["condensed"]
        history_text = ""
        if condensed.is_follow_up and condensed.focus == state["question"] and self.generator.is_llm:
            # Asked as it leans on the conversation (not rewritten by the model): the model needs it.
            max_turns = self.settings.answer.max_history_turns
            history_text = format_history(state.get("history") or [], state["language"], max_turns)
        return build_messages(condensed.focus, state["language"], state["passages"], history_text)

    def request(self, state: State) -> GenerationRequest:
        return GenerationRequest(
            question=state["condensed"].focus,
            language=state["language"],
            passages=state["passages"],
            messages=state["messages"],
            evidence=state.get("evidence"),
        )

    def _verify(self, state: State) -> Answer:
        text = state["text"].strip()
        passages: Sequence[Passage] = state["passages"]
        abstained = state["check"].abstain or not passages or is_abstention(text)
        if abstained:
            citations, report = [], CitationReport()
            if state["check"].abstain or not passages:
                text = abstention_message(state["language"])
        else:
            citations, report = self.verifier.verify(text, state["language"], passages, state.get("evidence"))
            text = remove_marker_numbers(text, set(report.dropped_markers))
        timings = state["timings"]
        return Answer(
            question=state["question"],
            standalone_question=state["condensed"].standalone,
            text=text,
            language=state["language"],
            citations=citations,
            passages=list(passages),
            abstained=abstained,
            verification=report,
            timings=timings,
            backend=self.generator.name,
            retrieval_mode=self.retrieval_mode,
        )

    # --- runnables ----------------------------------------------------------------------------------------
    def _stages(self) -> tuple[tuple[str, str, Callable[[State], Any]], ...]:
        """(state key, stage name, function) in order: everything before generation."""
        return (
            ("language", "language", self._language),
            ("condensed", "condense", self._condense),
            ("passages", "retrieve", self._retrieve),
            ("evidence", "evidence", self._evidence),
            ("check", "check", self._check),
            ("messages", "prompt", self._prompt),
        )

    def _prepare(self, state: State) -> State:
        for key, stage, function in self._stages():
            state = {**state, key: _timed(stage, function)(state)}
        return state

    def _answer(self, state: State) -> Answer:
        state = self._prepare(_start(state))
        state = {**state, "text": "".join(self.pieces(state))}
        return _finish(_timed("verify", self._verify)(state))

    # One LCEL runnable per call, not one per stage: each `RunnableLambda.invoke` configures callbacks and
    # inspects its function's signature, and as a sequence of per-stage runnables that bookkeeping was two
    # thirds of a lexical answer (34 ms of 34 against 11 ms, PIAF dev, side by side at load ~15; the stages
    # used to run through `RunnablePassthrough.assign`, one new thread pool per stage, slower still). The
    # stages stay separately timed in `Answer.timings`.
    @property
    def prepare(self) -> Runnable:
        return RunnableLambda(self._prepare, name="rag_prepare")

    @property
    def finalize(self) -> Runnable:
        return RunnableLambda(_timed("verify", self._verify), name="rag_verify")

    @property
    def runnable(self) -> Runnable:
        """prepare | generate | verify: `invoke({"question": …, "history": […], "top_k": 5})` -> Answer."""
        return RunnableLambda(self._answer, name="rag_answer")

    # --- streaming ----------------------------------------------------------------------------------------
    def pieces(self, state: State) -> Iterator[str]:
        """The generator's text pieces (or the abstention message), timing the generate stage."""
        if state["check"].abstain or not state["passages"]:
            yield abstention_message(state["language"])
            return
        request = self.request(state)
        started = time.perf_counter()
        try:
            yield from self.generator.stream(request)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend failure reaches the user as a BackendError
            raise BackendError(f"Backend {self.generator.name!r} failed while answering: {exc}") from exc
        finally:
            state["timings"]["generate"] = (
                state["timings"].get("generate", 0.0) + time.perf_counter() - started
            )

    def stream(self, question: str, history: Sequence[dict] | None = None, top_k: int | None = None):
        """Text pieces as generated, then exactly one `Answer`."""
        state = self._prepare(_start({"question": question, "history": list(history or []), "top_k": top_k}))
        text: list[str] = []
        for piece in self.pieces(state):
            text.append(piece)
            yield piece
        yield _finish(_timed("verify", self._verify)({**state, "text": "".join(text)}))

    def search_query(self, question: str, history: Sequence[dict] | None = None) -> str | None:
        """The text retrieval will search with for `question` (the condensed question), when it is known
        without a model call; None when an LLM rewrites the question first. What `Assistant.embed_ahead`
        embeds before the answer runs."""
        state: State = {"question": question, "history": list(history or [])}
        state["language"] = self._language(state)
        condensed = self._condense_without_model(state)
        return None if condensed is None else condensed.standalone

    def invoke(
        self, question: str, history: Sequence[dict] | None = None, top_k: int | None = None
    ) -> Answer:
        return self.runnable.invoke({"question": question, "history": list(history or []), "top_k": top_k})


def _start(state: State) -> State:
    return {**state, "timings": {"_t0": time.perf_counter()}}


def _finish(answer: Answer) -> Answer:
    started = answer.timings.pop("_t0", None)
    if started is not None:
        answer.timings["total"] = time.perf_counter() - started
    return answer
