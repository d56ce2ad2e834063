"""Sentence splitting (French cases) and chunk packing: exact offsets, token budgets, overlap, stable ids."""

from __future__ import annotations

import random

import pytest

from index.chunking import ChunkingSettings, approx_count_batch, chunk_document
from index.records import Document, Section
from index.sentences import split_sentences


def _sentences(text: str) -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("M. Dupont est là. Mme Martin aussi.", ["M. Dupont est là.", "Mme Martin aussi."]),
        ("Le Dr House arrive. Il opère.", ["Le Dr House arrive.", "Il opère."]),
        ("Des fruits, p. ex. des pommes. Ensuite.", ["Des fruits, p. ex. des pommes.", "Ensuite."]),
        ("Il vit à St. Louis depuis 2019. Voilà.", ["Il vit à St. Louis depuis 2019.", "Voilà."]),
        ("J. K. Rowling écrit. Elle publie.", ["J. K. Rowling écrit.", "Elle publie."]),
        ("Il a 3,5 kg et 1.000 euros. Bien.", ["Il a 3,5 kg et 1.000 euros.", "Bien."]),
        ("Il dit : « C’est fini. » Puis il part.", ["Il dit : « C’est fini. »", "Puis il part."]),
        ("Attends... Non. Bon… Oui !", ["Attends...", "Non.", "Bon…", "Oui !"]),
        ("Vraiment ? Oui. « Pourquoi ? » Parce que.", ["Vraiment ?", "Oui.", "« Pourquoi ? »", "Parce que."]),
        ("Liste :\n- un point\n- deux points\nFin.", ["Liste :", "- un point", "- deux points", "Fin."]),
        ("Titre de section\nLe texte commence ici.", ["Titre de section", "Le texte commence ici."]),
        ("Une ligne coupée\nau milieu reste une phrase.", ["Une ligne coupée\nau milieu reste une phrase."]),
        ("1. Premier point important\n2. Second point", ["1. Premier point important", "2. Second point"]),
        ("Le prix est de 12 €. Le stock, etc. est bas.", ["Le prix est de 12 €.", "Le stock, etc. est bas."]),
        (
            "Paragraphe un.\n\nparagraphe deux sans majuscule.",
            ["Paragraphe un.", "paragraphe deux sans majuscule."],
        ),
        ("He said hello. She left at 5 p.m. today.", ["He said hello.", "She left at 5 p.m. today."]),
    ],
)
def test_french_sentence_splitting(text: str, expected: list[str]) -> None:
    assert _sentences(text) == expected


def _doc(text: str, sections: list[Section] | None = None) -> Document:
    return Document("d.txt", "/tmp/d.txt", "d", text, "h", sections or [Section(0, len(text))])


_WORDS = [
    "le",
    "la",
    "économie",
    "«",
    "citation",
    "»",
    "M.",
    "Dupont",
    "3,5",
    "1.000",
    "l’été",
    "?",
    "!",
    "...",
    "-",
    "item\n",
    "\n\n",
    "Très",
    "long-mot-composé",
]


def _random_text(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.randint(0, 400)):
        word = rng.choice(_WORDS + ["Phrase.", "Fin!", "x" * rng.randint(1, 40)])
        pieces.append(word + rng.choice([" ", " ", "\n", ". ", "  "]))
    return "".join(pieces)


def test_offsets_are_exact_on_many_random_documents() -> None:
    rng = random.Random(1234)
    settings = ChunkingSettings(chunk_size_tokens=24, chunk_overlap_tokens=6)
    for _ in range(300):
        text = _random_text(rng)
        cut = rng.randint(0, len(text))
        doc = _doc(text, [Section(0, cut, ("a",)), Section(cut, len(text), ("b",), 2)])
        chunks = chunk_document(doc, settings)
        for chunk in chunks:
            assert doc.text[chunk.start : chunk.end] == chunk.text
            assert chunk.text == chunk.text.strip() and chunk.text
            assert approx_count_batch([chunk.text])[0] <= settings.chunk_size_tokens
        # Every non-space character is covered by some chunk.
        covered = set()
        for chunk in chunks:
            covered.update(range(chunk.start, chunk.end))
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
        assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_chunks_pack_whole_sentences_with_overlap() -> None:
    sentences = [f"Phrase numéro {i} avec quelques mots." for i in range(30)]
    text = " ".join(sentences)
    settings = ChunkingSettings(chunk_size_tokens=40, chunk_overlap_tokens=12)
    chunks = chunk_document(_doc(text), settings)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.startswith("Phrase") and chunk.text.endswith(".")
    for previous, following in zip(chunks, chunks[1:], strict=False):
        assert following.start < previous.end, "neighbouring chunks share the overlap sentences"
        assert following.start > previous.start


def test_long_sentence_is_cut_on_token_boundaries() -> None:
    text = "Début. " + " ".join(f"mot{i}" for i in range(200)) + " fin. Après."
    chunks = chunk_document(_doc(text), ChunkingSettings(chunk_size_tokens=32, chunk_overlap_tokens=0))
    assert len(chunks) >= 200 // 32
    for chunk in chunks:
        assert approx_count_batch([chunk.text])[0] <= 32
        assert not chunk.text[0].isspace()
    joined = " ".join(c.text for c in chunks)
    assert "mot0" in joined and "mot199" in joined


def test_sections_give_heading_path_and_page() -> None:
    intro = "# Titre\n\n"
    body = "Un texte. " * 30
    text = intro + body + "\n\n## Suite\n\nAutre texte ici."
    second = text.index("## Suite")
    doc = _doc(text, [Section(0, second, ("Titre",), 1), Section(second, len(text), ("Titre", "Suite"), 2)])
    chunks = chunk_document(doc, ChunkingSettings(chunk_size_tokens=60, chunk_overlap_tokens=0))
    assert chunks[0].heading_path == ("Titre",) and chunks[0].page == 1
    assert chunks[-1].heading_path == ("Titre", "Suite") and chunks[-1].page == 2
    assert chunks[-1].text == "## Suite\n\nAutre texte ici."


def test_chunk_ids_are_stable_and_depend_on_content() -> None:
    settings = ChunkingSettings(chunk_size_tokens=20, chunk_overlap_tokens=0)
    text = "Premier. Deuxième phrase ici. Troisième phrase là."
    ids = [c.chunk_id for c in chunk_document(_doc(text), settings)]
    assert ids == [c.chunk_id for c in chunk_document(_doc(text), settings)]
    changed = [c.chunk_id for c in chunk_document(_doc(text.replace("Premier", "Autre")), settings)]
    assert set(ids).isdisjoint(changed)


def test_overlap_must_be_smaller_than_size() -> None:
    with pytest.raises(ValueError, match="chunk_overlap_tokens"):
        ChunkingSettings(chunk_size_tokens=20, chunk_overlap_tokens=20)


def test_model_tokenizer_counts_bound_chunks(tiny_embedder) -> None:  # noqa: ANN001
    text = " ".join(["L’intelligence artificielle transforme l’économie mondiale."] * 40)
    settings = ChunkingSettings(chunk_size_tokens=50, chunk_overlap_tokens=10)
    chunks = chunk_document(
        _doc(text),
        settings,
        count_batch=tiny_embedder.count_tokens_batch,
        token_spans=tiny_embedder.token_spans,
    )
    assert len(chunks) > 1
    for chunk in chunks:
        assert tiny_embedder.count_tokens(chunk.text) <= 50


def test_quotes_are_kept_whole_on_request() -> None:
    """Answers (rag.citations) split with protect_quotes: one quoted claim of several sentences stays one."""
    text = "D’après les documents : « Un. Deux. » [1] Ensuite, trois."
    assert [text[s.start : s.end] for s in split_sentences(text)] == [
        "D’après les documents : « Un.",
        "Deux. »",
        "[1] Ensuite, trois.",
    ]
    assert [text[s.start : s.end] for s in split_sentences(text, protect_quotes=True)] == [
        "D’après les documents : « Un. Deux. »",
        "[1] Ensuite, trois.",
    ]


def test_a_long_text_on_one_line_is_split_in_linear_time() -> None:
    """Each full stop looks back over its own word only: a 300 kB text without a line break (an export, a
    text from a PDF without newlines) took minutes when every full stop searched its whole line (100 kB:
    21 s, quadratic). The bound is a safety margin of about a hundred times, not a speed target."""
    import threading

    sentence = "Le chat de M. Dupont mange 3 pommes. J. K. Rowling écrit, p. ex. des livres. "
    text = sentence * (300_000 // len(sentence))
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(len(split_sentences(text))), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert result == [2 * (300_000 // len(sentence))]
    assert (
        _sentences(sentence * 2)
        == [
            "Le chat de M. Dupont mange 3 pommes.",
            "J. K. Rowling écrit, p. ex. des livres.",
        ]
        * 2
    )
