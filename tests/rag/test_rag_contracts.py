"""One contract per Protocol, run on the real implementation and on the test fake alike: a fake that drifts
from the real thing fails here, not in a test that trusts it.

- `index.protocols.IndexReader`: the folder store (`index.store.IndexStore`) and `rag_fakes.FakeStore`.
- `rag.protocols.Retriever`: `HybridRetriever` over each of those stores.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from rag_fakes import FakeStore

from index.language import LANGUAGES
from index.protocols import IndexReader
from rag.protocols import Retriever

QUERY = "valorisation d'OpenAI"


def _members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


@pytest.fixture(params=["folder", "fake"])
def store(request: pytest.FixtureRequest, seed_index_dir: Path, seeds_dir: Path) -> IndexReader:
    if request.param == "folder":
        from index.store import IndexStore

        return IndexStore.open(seed_index_dir, load_model=False)
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(seeds_dir.iterdir()) if p.suffix == ".txt"}
    return FakeStore(texts, {name: [(0, len(t) // 2), (len(t) // 2, len(t))] for name, t in texts.items()})


def test_store_has_every_member_of_the_protocol(store: IndexReader) -> None:
    missing = {name for name in _members(IndexReader) if not hasattr(store, name)}
    assert not missing, f"{type(store).__name__} lacks {missing}"
    signature = inspect.signature(store.search_lexical)
    assert "language" in signature.parameters and "fix_unknown" in signature.parameters


def test_store_contract(store: IndexReader) -> None:
    assert store.mode == "lexical" and store.embedder is None  # no model loaded here
    assert store.main_language in LANGUAGES
    chunks = list(store.chunks)
    assert chunks
    for chunk in chunks:
        assert store.chunk(chunk.chunk_id) == chunk
        assert store.document_text(chunk.doc_id)[chunk.start : chunk.end] == chunk.text
    with pytest.raises(KeyError):
        store.chunk("no-such-chunk")
    assert store.corpus_languages() == {store.document_language(c.doc_id) for c in chunks}
    assert store.document_language(chunks[0].doc_id) == "fr"
    documents = store.documents()
    assert {d.doc_id for d in documents} == {c.doc_id for c in chunks}
    assert all(d.characters == len(store.document_text(d.doc_id)) for d in documents)
    frequencies = store.term_document_frequencies()
    assert frequencies and all(1 <= n <= len(chunks) for n in frequencies.values())
    assert frequencies.get("valoris", 0) >= 1  # stems, as the evidence scorer counts them


def test_store_search_contract(store: IndexReader) -> None:
    ranking = store.search_lexical(QUERY, 2, "fr")
    assert len(ranking) == 2  # k, when at least k chunks match
    rows = [row for row, _ in ranking]
    scores = [score for _, score in ranking]
    assert all(0 <= row < len(store.chunks) for row in rows) and scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)
    assert "valorisation" in store.chunks[rows[0]].text
    assert store.search_lexical("zorblax quuxification", 3, "fr") == []
    assert store.search_dense(QUERY, 3) == []  # lexical mode: no dense search


def test_retriever_contract(store: IndexReader) -> None:
    from rag.retrieval import HybridRetriever
    from rag.settings import RetrievalSettings

    retriever: Retriever = HybridRetriever(store, RetrievalSettings(top_k=2))
    assert retriever.mode == store.mode
    passages = retriever.retrieve(QUERY, "fr")
    assert [p.number for p in passages] == list(range(1, len(passages) + 1))
    assert sum(len(p.chunk_ids) for p in passages) == 2  # top_k chunks, touching ones merged
    for passage in passages:
        assert store.document_text(passage.doc_id)[passage.start : passage.end] == passage.text
        assert all(store.chunk(c).doc_id == passage.doc_id for c in passage.chunk_ids)
    assert "valorisation" in passages[0].text
