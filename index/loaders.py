"""Read supported files into `Document`s: plain text with sections (heading path, PDF page) and a title.

Supported: .txt, .md/.markdown, .html/.htm, .pdf (pypdf, one Section per page), .docx (python-docx,
headings -> heading path). The document text is what chunk offsets point into and is stored in the index,
so normalisation is deliberately small: Unicode NFC, newlines as "\\n", control characters dropped.
Markdown keeps its markup (offsets stay those of the file, minus the newline normalisation); HTML becomes
plain text, one block per line group, scripts and styles removed.

Text encodings: UTF-8 (with or without BOM) decoded strictly first; UTF-16 with a BOM, or without one
when the NUL bytes fall in every other byte on one side (Latin-script text); otherwise
bytes that look French (é è à ç ’ « » in their cp1252 code points) are read as cp1252 (a superset of
Latin-1 for text), and anything else goes to charset-normalizer. A file that cannot be read raises
`LoadError` with the reason; the build reports it by name and goes on with the other files.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from index.records import Document, Section

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")


class LoadError(Exception):
    """A file could not be read; the message is the reason, shown next to the file name."""


@dataclass(slots=True)
class _Builder:
    """Accumulates text and its sections so that section offsets are exact by construction."""

    parts: list[str]
    sections: list[Section]
    length: int = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def text(self) -> str:
        return "".join(self.parts)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalise_text(text: str) -> str:
    """NFC, newlines as \\n, control characters (except tab and newline) removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return unicodedata.normalize("NFC", text)


# -- encodings ----------------------------------------------------------------------------------------
# Bytes of French letters and typography in cp1252: é è ê à â ç ô î û ù ë ï œ ’ « » É À and the nbsp.
_FRENCH_CP1252 = frozenset(b"\xe9\xe8\xea\xe0\xe2\xe7\xf4\xee\xfb\xf9\xeb\xef\x9c\x92\xab\xbb\xc9\xc0\xa0")


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """UTF-16 saved without a byte order mark (some Windows tools do): text in Latin scripts then has a NUL
    in nearly every other byte, always on the same side. Accepted only if it decodes strictly and reads as
    text (few control characters); binary data with NULs falls through to "binary"."""
    sample = data[:8192]
    pairs = len(sample) // 2
    if len(data) % 2 or pairs < 2:
        return None
    even_nuls = sample[0::2].count(0) / pairs
    odd_nuls = sample[1::2].count(0) / pairs
    if odd_nuls >= 0.3 and even_nuls <= 0.02:
        codec = "utf-16-le"
    elif even_nuls >= 0.3 and odd_nuls <= 0.02:
        codec = "utf-16-be"
    else:
        return None
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co") and ch not in "\n\r\t")
    return (text, codec) if controls <= len(text) * 0.01 else None


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding name). Raises LoadError for binary data or an unknown encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise LoadError(f"invalid UTF-16 text ({exc.reason} at byte {exc.start})") from exc
    if b"\x00" in data[:8192]:
        utf16 = _utf16_without_bom(data)
        if utf16 is not None:
            return utf16
        raise LoadError("binary file (it contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    high = [byte for byte in data if byte >= 0x80]
    if high and sum(byte in _FRENCH_CP1252 for byte in high) / len(high) >= 0.6:
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            return data.decode("latin-1"), "latin-1"
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise LoadError("unknown text encoding (not UTF-8, not cp1252/Latin-1); save the file as UTF-8")
    text = str(best)
    if sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t") > len(text) * 0.01:
        raise LoadError("binary file (control characters), not text")
    return text, best.encoding


# -- plain text and Markdown --------------------------------------------------------------------------
def _load_txt(data: bytes, path: Path) -> tuple[str, list[Section], str | None, dict[str, str]]:
    text, encoding = decode_text(data)
    text = normalise_text(text)
    return text, [Section(0, len(text))] if text else [], None, {"encoding": encoding}


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_MD_INLINE = re.compile(r"[*_`]+|\[([^\]]*)\]\([^)]*\)")


def _md_heading_text(raw: str) -> str:
    return _MD_INLINE.sub(lambda m: m.group(1) or "", raw).strip()


def _load_markdown(data: bytes, path: Path) -> tuple[str, list[Section], str | None, dict[str, str]]:
    text, encoding = decode_text(data)
    text = normalise_text(text)
    lines = text.splitlines(keepends=True)
    headings: list[tuple[int, int, str]] = []  # (offset, level, heading text)
    offset = 0
    in_fence = False
    for i, line in enumerate(lines):
        stripped = line.rstrip("\n")
        if _FENCE.match(stripped):
            in_fence = not in_fence
        elif not in_fence:
            atx = _ATX.match(stripped)
            if atx and atx.group(2):
                headings.append((offset, len(atx.group(1)), _md_heading_text(atx.group(2))))
            elif (
                _SETEXT.match(stripped)
                and i > 0
                and lines[i - 1].strip()
                and not _ATX.match(lines[i - 1].rstrip("\n"))
            ):
                previous_offset = offset - len(lines[i - 1])
                level = 1 if stripped.strip().startswith("=") else 2
                headings.append((previous_offset, level, _md_heading_text(lines[i - 1])))
        offset += len(line)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    if not headings or headings[0][0] > 0:
        first_end = headings[0][0] if headings else len(text)
        if text[:first_end].strip():
            sections.append(Section(0, first_end))
    for n, (start, level, title) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        end = headings[n + 1][0] if n + 1 < len(headings) else len(text)
        sections.append(Section(start, end, tuple(t for _, t in stack)))
    title = headings[0][2] if headings else None
    return text, sections, title, {"encoding": encoding}


# -- HTML -----------------------------------------------------------------------------------------------
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
        "caption",
    ]
)
_CELL_TAGS = frozenset(("td", "th"))
_SKIP_TAGS = frozenset(
    ("script", "style", "noscript", "template", "head", "title", "svg", "iframe", "object")
)
_HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")


def _load_html(data: bytes, path: Path) -> tuple[str, list[Section], str | None, dict[str, str]]:
    import logging

    from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, Tag

    # Undecodable bytes become U+FFFD; bs4 would also log a warning to stderr for every such file.
    logging.getLogger("bs4.dammit").setLevel(logging.ERROR)
    soup = BeautifulSoup(data, "html.parser")  # detects the encoding from the bytes and <meta charset>
    html_title = soup.title.get_text(" ", strip=True) if soup.title else None
    out = _Builder([], [])
    block: list[str] = []
    stack: list[tuple[int, str]] = []
    headings: list[tuple[int, tuple[str, ...]]] = []
    first_h1: list[str] = []

    def flush() -> None:
        line = normalise_text(_SPACES.sub(" ", "".join(block))).strip()
        block.clear()
        if line:
            if out.length:
                out.add("\n\n")
            out.add(line)

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype)):
                continue
            if isinstance(child, NavigableString):
                block.append(str(child))
                continue
            if not isinstance(child, Tag) or child.name in _SKIP_TAGS:
                continue
            if child.name in _HEADING_TAGS:
                flush()
                heading = _SPACES.sub(" ", child.get_text(" ")).strip()
                if not heading:
                    continue
                level = _HEADING_TAGS[child.name]
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, heading))
                if level == 1 and not first_h1:
                    first_h1.append(heading)
                headings.append((out.length + (2 if out.length else 0), tuple(t for _, t in stack)))
                block.append(heading)
                flush()
            elif child.name == "br":
                flush()
            elif child.name in _CELL_TAGS:
                block.append(" ")
                walk(child)
                block.append(" |")
            elif child.name in _BLOCK_TAGS:
                flush()
                walk(child)
                flush()
            else:
                walk(child)

    walk(soup.body or soup)
    flush()
    text = out.text()  # lines were normalised one by one, so the heading offsets hold
    sections: list[Section] = []
    if not headings or headings[0][0] > 0:
        first_end = headings[0][0] if headings else len(text)
        if text[:first_end].strip():
            sections.append(Section(0, first_end))
    for n, (start, path_) in enumerate(headings):
        end = headings[n + 1][0] if n + 1 < len(headings) else len(text)
        sections.append(Section(start, end, path_))
    title = (first_h1[0] if first_h1 else None) or html_title or (headings[0][1][-1] if headings else None)
    return text, sections, title, {}


# -- PDF ------------------------------------------------------------------------------------------------
def _load_pdf(data: bytes, path: Path) -> tuple[str, list[Section], str | None, dict[str, str]]:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged-but-readable files warn per object
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF (a password is needed)")
        out = _Builder([], [])
        for number, page in enumerate(reader.pages, start=1):
            page_text = normalise_text(page.extract_text() or "").strip()
            if not page_text:
                continue
            if out.length:
                out.add("\n\n")
            out.sections.append(Section(out.length, out.length + len(page_text), (), number))
            out.add(page_text)
        title = None
        try:
            meta_title = reader.metadata.title if reader.metadata else None
            title = str(meta_title).strip() or None if meta_title else None
        except Exception:  # noqa: BLE001 - a broken info dictionary must not lose the text
            title = None
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise LoadError(f"damaged or unreadable PDF ({type(exc).__name__}: {exc})") from exc
    if not out.length:
        raise LoadError("the PDF has no extractable text (scanned images? run OCR first)")
    return out.text(), out.sections, title, {"pages": str(len(reader.pages))}


# -- DOCX -----------------------------------------------------------------------------------------------
_HEADING_STYLE = re.compile(r"^(?:heading|titre|überschrift|título|titolo|kop)\s*(\d)$", re.IGNORECASE)


def _load_docx(data: bytes, path: Path) -> tuple[str, list[Section], str | None, dict[str, str]]:
    import io
    import zipfile

    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"damaged or unreadable DOCX ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # noqa: BLE001 - python-docx raises assorted errors on bad packages
        raise LoadError(f"damaged or unreadable DOCX ({type(exc).__name__}: {exc})") from exc
    out = _Builder([], [])
    stack: list[tuple[int, str]] = []
    first_heading: str | None = None
    section_start = 0

    def close_section() -> None:
        if out.length > section_start:
            out.sections.append(Section(section_start, out.length, tuple(t for _, t in stack)))

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
            paragraph_text = "\n".join(r for r in rows if r.strip(" |"))
            level = None
        else:
            paragraph_text = item.text
            style = item.style.name if item.style is not None else ""
            match = _HEADING_STYLE.match(style.strip())
            level = (
                int(match.group(1)) if match else (1 if style.strip().lower() in ("title", "titre") else None)
            )
        paragraph_text = normalise_text(paragraph_text).strip()
        if not paragraph_text:
            continue
        if level is not None:
            close_section()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, paragraph_text))
            first_heading = first_heading or paragraph_text
            section_start = out.length + (2 if out.length else 0)
        if out.length:
            out.add("\n\n")
        out.add(paragraph_text)
    close_section()
    core_title = (document.core_properties.title or "").strip() or None
    return out.text(), out.sections, core_title or first_heading, {}


_LOADERS: dict[str, Callable[[bytes, Path], tuple[str, list[Section], str | None, dict[str, str]]]] = {
    ".txt": _load_txt,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
    ".docx": _load_docx,
}


def load_document(path: str | Path, doc_id: str | None = None, *, data: bytes | None = None) -> Document:
    """Load one file. `doc_id` defaults to the file name. Raises LoadError (unreadable) with the reason."""
    path = Path(path)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(
            f"unsupported file type {path.suffix!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LoadError(f"cannot read the file ({exc.strerror or exc})") from exc
    text, sections, title, metadata = loader(data, path)
    if not text.strip():
        raise LoadError("the file has no text")
    return Document(
        doc_id=doc_id or path.name,
        source=str(path.resolve()),
        title=(title or path.stem).strip()[:300],
        text=text,
        content_hash=sha256_bytes(data),
        sections=sections,
        metadata=metadata,
    )
