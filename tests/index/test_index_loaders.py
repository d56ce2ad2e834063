"""Loaders on real files made by the tests: encodings, Markdown/HTML headings, PDF pages, DOCX headings."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.loaders import LoadError, decode_text, load_document

FRENCH = "L’été à Noël, ça coûte 3,5 € — « déjà » vu. Œuvre naïve."
DEJAVU = Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _sections_are_exact(doc) -> None:  # noqa: ANN001
    for section in doc.sections:
        assert 0 <= section.start <= section.end <= len(doc.text)


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (FRENCH.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + FRENCH.encode("utf-8"), "utf-8"),
        (FRENCH.encode("cp1252"), "cp1252"),
        (
            FRENCH.replace("’", "'")
            .replace("€", "EUR")
            .replace("—", "-")
            .replace("Œ", "Oe")
            .encode("latin-1"),
            None,
        ),
        (FRENCH.encode("utf-16"), "utf-16"),
    ],
)
def test_text_encodings_are_decoded(tmp_path: Path, encoded: bytes, encoding: str | None) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(encoded)
    doc = load_document(path)
    expected = encoded.decode(encoding or "latin-1")
    assert doc.text == expected.lstrip("\ufeff")
    assert "été" in doc.text and "\ufeff" not in doc.text
    assert doc.title == "note"
    assert doc.doc_id == "note.txt"


def test_crlf_and_control_characters_are_normalised() -> None:
    text, _ = decode_text(b"a\r\nb\x07c")
    assert text == "a\r\nb\x07c"
    path_doc_text = load_document(Path("x.txt"), data=b"a\r\nb\x07c\rd").text
    assert path_doc_text == "a\nbc\nd"


def test_binary_file_is_refused_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(LoadError, match="binary"):
        load_document(path)


def test_markdown_heading_paths(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "Intro text.\n\n# Guide **rapide**\n\nPremier paragraphe.\n\n## Installation\n\nFaire ceci.\n\n"
        "```\n# pas un titre\n```\n\n## Usage\nTexte.\n\nAutre\n-----\n\nFin.\n",
        encoding="utf-8",
    )
    doc = load_document(path)
    assert doc.title == "Guide rapide"
    paths = [s.heading_path for s in doc.sections]
    assert paths == [
        (),
        ("Guide rapide",),
        ("Guide rapide", "Installation"),
        ("Guide rapide", "Usage"),
        ("Guide rapide", "Autre"),
    ]
    install = doc.sections[2]
    assert doc.text[install.start : install.end].startswith("## Installation")
    assert "# pas un titre" in doc.text[doc.sections[2].start : doc.sections[3].start]
    _sections_are_exact(doc)


def test_html_is_plain_text_with_headings(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Titre de page</title><style>p{color:red}</style></head><body>"
        "<script>var x = '<p>caché</p>';</script><h1>Histoire</h1><p>Il était <b>une</b> fois.</p>"
        "<h2>Suite</h2><ul><li>un</li><li>deux</li></ul><!-- commentaire --><p>Fin&nbsp;ici &amp; là.</p>"
        "</body></html>",
        encoding="utf-8",
    )
    doc = load_document(path)
    assert doc.title == "Histoire"
    assert (
        "<" not in doc.text
        and "caché" not in doc.text
        and "color" not in doc.text
        and "commentaire" not in doc.text
    )
    assert "Il était une fois." in doc.text and "Fin ici & là." in doc.text
    suite = [s for s in doc.sections if s.heading_path == ("Histoire", "Suite")][0]
    assert doc.text[suite.start : suite.end].startswith("Suite")
    assert "deux" in doc.text[suite.start : suite.end]
    _sections_are_exact(doc)


def test_html_title_tag_when_no_h1(tmp_path: Path) -> None:
    path = tmp_path / "p.htm"
    path.write_bytes("<title>Élections</title><p>Résultat</p>".encode("cp1252"))
    doc = load_document(path)
    assert doc.title == "Élections"
    assert doc.text == "Résultat"


def _make_pdf(path: Path, pages: list[str], title: str | None = None) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    if DEJAVU.exists():
        pdf.add_font("DejaVu", "", str(DEJAVU))
        pdf.set_font("DejaVu", size=12)
    else:  # pragma: no cover - matplotlib always ships DejaVu
        pdf.set_font("Helvetica", size=12)
    if title:
        pdf.set_title(title)
    for page in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, page)
    pdf.output(str(path))


def test_pdf_pages_become_sections(tmp_path: Path) -> None:
    path = tmp_path / "rapport.pdf"
    _make_pdf(path, ["Première page : l’été.", "Deuxième page, déjà."], title="Rapport annuel")
    doc = load_document(path)
    assert doc.title == "Rapport annuel"
    assert [s.page for s in doc.sections] == [1, 2]
    first, second = doc.sections
    assert "Première page" in doc.text[first.start : first.end]
    assert "Deuxième page, déjà." in doc.text[second.start : second.end]
    _sections_are_exact(doc)


def test_pdf_without_title_uses_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "notes-2024.pdf"
    _make_pdf(path, ["Bonjour."])
    assert load_document(path).title == "notes-2024"


def test_corrupt_pdf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n garbage \x00\x01 not a pdf")
    with pytest.raises(LoadError, match="PDF"):
        load_document(path)


def test_docx_headings(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Rapport", level=1)
    document.add_paragraph("Introduction générale.")
    document.add_heading("Méthodes", level=2)
    document.add_paragraph("Nous avons mesuré.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "clé"
    table.rows[0].cells[1].text = "valeur"
    document.add_heading("Annexe", level=1)
    document.add_paragraph("Détails.")
    path = tmp_path / "rapport.docx"
    document.save(str(path))
    doc = load_document(path)
    assert doc.title == "Rapport"
    by_path = {s.heading_path: doc.text[s.start : s.end] for s in doc.sections}
    assert by_path[("Rapport",)].startswith("Rapport")
    assert "Nous avons mesuré." in by_path[("Rapport", "Méthodes")]
    assert "clé | valeur" in by_path[("Rapport", "Méthodes")]
    assert by_path[("Annexe",)] == "Annexe\n\nDétails."
    _sections_are_exact(doc)


def test_corrupt_docx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(LoadError, match="DOCX"):
        load_document(path)
