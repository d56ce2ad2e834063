"""Citation parsing and verification, driven by LangChain's scripted fake chat models."""

from __future__ import annotations

from collections.abc import Iterator

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.backends.base import GenerationRequest, Generator
from rag.citations import split_claims
from rag.markers import strip_markers

QUESTION = "Quelle est la valorisation d'OpenAI ?"


class ScriptedChatGenerator(Generator):
    """The smallest LLM generator: streams a LangChain chat model's chunks (no dependency on rag.backends)."""

    name = "scripted"
    is_llm = True

    def __init__(self, *replies: str) -> None:
        self.model = GenericFakeChatModel(messages=iter(replies))
        self.requests: list[GenerationRequest] = []

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        self.requests.append(request)
        for chunk in self.model.stream(request.messages):
            yield str(chunk.content)

    def condense(self, question: str, history_text: str, language: str) -> str:
        return str(self.model.invoke(question).content)


def _ask(assistant, reply: str, question: str = QUESTION):
    from rag import Assistant

    generator = ScriptedChatGenerator(reply)
    wired = Assistant(assistant.settings, assistant.store, generators={"scripted": generator})
    return wired.ask(question, backend="scripted"), generator


def _number_with(assistant, needle: str, question: str = QUESTION) -> int:
    return next(p.number for p in assistant.retrieve(question) if needle in p.text)


def _number_without(assistant, needle: str, question: str = QUESTION) -> int:
    return next(p.number for p in assistant.retrieve(question) if needle not in p.text)


def test_claims_keep_quotes_whole_and_attach_leading_markers() -> None:
    claims = split_claims("D’après les documents : « Un. Deux. » [1] Ensuite, trois. [2] Quatre sans source.")
    assert [c.markers for c in claims] == [[1], [2], []]
    assert claims[0].text.startswith("D’après") and "Deux." in claims[0].text
    assert strip_markers("Vrai [1][2] .") == "Vrai."


def test_good_citation_is_verified_with_offsets(fresh_assistant, seed_text) -> None:
    n = _number_with(fresh_assistant, "80 milliards")
    answer, generator = _ask(
        fresh_assistant, f"OpenAI affiche une valorisation de 80 milliards de dollars [{n}]."
    )
    assert generator.requests, "the LLM was called"
    request = generator.requests[0]
    assert request.language == "fr" and f"[{n}]" in request.messages[-1].content
    assert not answer.abstained
    assert answer.verification.unsupported == [] and answer.verification.dropped_markers == []
    (citation,) = answer.citations
    assert citation.marker == n and citation.supported and citation.support >= 0.8
    assert seed_text[citation.start : citation.end] == citation.quote
    assert "80 milliards" in citation.quote
    passage = next(p for p in answer.passages if p.number == n)
    assert citation.chunk_id in passage.chunk_ids


def test_two_markers_forms(fresh_assistant) -> None:
    n = _number_with(fresh_assistant, "80 milliards")
    answer, _ = _ask(
        fresh_assistant, f"La valorisation d’OpenAI atteint 80 milliards de dollars [{n}][{n}, {n}]."
    )
    assert [c.marker for c in answer.citations] == [n]


def test_out_of_range_marker_is_dropped_and_counted(fresh_assistant) -> None:
    n = _number_with(fresh_assistant, "80 milliards")
    answer, _ = _ask(fresh_assistant, f"OpenAI vaut 80 milliards de dollars [{n}][42].")
    assert answer.verification.dropped_markers == [42]
    assert [c.marker for c in answer.citations] == [n]
    assert "[42]" not in answer.text and f"[{n}]" in answer.text


def test_unsupported_citation_is_flagged(fresh_assistant) -> None:
    claims = [
        ("Loopt était une société de géolocalisation revendue très tôt", "Loopt"),
        ("Satya Nadella et Amy Hood guident Microsoft", "Nadella"),
        ("Les autorités de régulation examinent les droits des créateurs", "régulation"),
    ]
    passages = fresh_assistant.retrieve(QUESTION)
    claim, n = next((c, p.number) for c, needle in claims for p in passages if needle not in p.text)
    answer, _ = _ask(fresh_assistant, f"{claim} [{n}].")
    assert answer.verification.unsupported == [n]
    (citation,) = answer.citations
    assert not citation.supported and citation.support < fresh_assistant.settings.answer.support_threshold


def test_uncited_sentence_is_reported(fresh_assistant) -> None:
    n = _number_with(fresh_assistant, "80 milliards")
    invented = "OpenAI a aussi inventé la machine à voyager dans le temps."
    answer, _ = _ask(fresh_assistant, f"OpenAI est valorisée à 80 milliards de dollars [{n}]. {invented}")
    assert answer.verification.uncited_sentences == [invented]
    assert [c.marker for c in answer.citations] == [n]


def test_llm_saying_the_documents_do_not_say_is_an_abstention(fresh_assistant) -> None:
    answer, _ = _ask(fresh_assistant, "Les documents ne le disent pas.")
    assert answer.abstained and answer.citations == []


def test_extractive_answers_cite_verbatim_quotes(seed_assistant) -> None:
    answer = seed_assistant.ask("Quel investisseur est le chef de file des investissements dans OpenAI ?")
    assert answer.citations and all(c.supported for c in answer.citations)
    assert answer.verification.uncited_sentences == [] and answer.verification.unsupported == []
    assert any("Microsoft en chef de file" in c.quote for c in answer.citations)
