"""Answer.to_dict: the dict `dataclasses.asdict` gives, built without its deep copies (the chat saves each
answer as JSON), and Answer.from_dict its inverse."""

from __future__ import annotations

import dataclasses

from rag.records import Answer, Citation, CitationReport, Passage


def _answer() -> Answer:
    passage = Passage(
        1, ["c1", "c2"], "d", "doc.txt", "Titre", "Texte.", 0, 6, 0.5, ["A", "B"], 3, {"dense": 0.7}, True
    )
    citation = Citation(1, "c1", "d", "doc.txt", "Phrase [1].", "Texte", 0, 5, 0.9, True)
    report = CitationReport([4], [2], ["Sans marque."])
    return Answer(
        "Q ?",
        "Q seule ?",
        "Phrase [1].",
        "fr",
        [citation],
        [passage],
        False,
        report,
        {"retrieve": 0.01},
        "x",
        "hybrid",
    )


def test_to_dict_is_asdict_with_its_own_lists_and_dicts():
    answer = _answer()
    as_dict = answer.to_dict()
    assert as_dict == dataclasses.asdict(answer)
    assert list(as_dict) == list(dataclasses.asdict(answer))  # same key order: same JSON
    assert list(as_dict["passages"][0]) == list(dataclasses.asdict(answer.passages[0]))
    as_dict["passages"][0]["chunk_ids"].append("c3")
    as_dict["passages"][0]["scores"]["lexical"] = 1.0
    as_dict["timings"]["x"] = 1.0
    as_dict["verification"]["unsupported"].append(9)
    assert answer == _answer()  # the answer is not changed through its dict
    assert Answer.from_dict(answer.to_dict()) == answer
