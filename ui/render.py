"""HTML for the chat page: answers with linked `[n]` markers, source cards with highlighted spans, banners.

Everything that comes from a document, an answer or a user goes through `html.escape` here, before any
markup is added: a document holding `<script>` or `<img onerror=...>` must show as text, never run.
Gradio's Chatbot sanitises its HTML too; this module does not rely on it.

Each function returns one line of HTML (newlines become `<br>`): the Chatbot parses messages as Markdown,
and a single-line HTML block is passed through untouched, so Markdown never rewrites document text.

This module only reads attributes of the `rag` records (`Answer`, `Passage`, `Citation`); it imports
neither gradio nor the answering machinery, so it is cheap to test.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from rag import find_markers, language_name

if TYPE_CHECKING:
    from rag import Answer, Citation, Passage


def escape_text(text: str) -> str:
    """Escape document/answer text for HTML and keep its line breaks visible."""
    escaped = html.escape(text, quote=True)
    # A blank line would end the Chatbot's HTML block and let Markdown parse document text: no raw newlines.
    return escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def source_anchor(turn: int, number: int) -> str:
    """Id of the source card of passage `number` under answer `turn` (unique within one page)."""
    return f"src-{turn}-{number}"


def source_label(source: str, doc_id: str = "") -> str:
    """The file name people recognise: the last part of the path."""
    name = PurePath(source).name if source else ""
    return name or doc_id or "document"


def location_label(page: int | None, heading_path: Sequence[str]) -> str:
    """'p. 3', 'Intro › Results', or both; empty when the document has no structure."""
    parts = []
    if page is not None:
        parts.append(f"p. {page}")
    if heading_path:
        parts.append(" › ".join(heading_path))
    return " · ".join(parts)


def shown_numbers(
    text: str, numbers: Iterable[int] | None = None, cited: Iterable[int] = ()
) -> dict[int, int]:
    """The numbers people see for the passages of one answer: the ones it cites 1, 2, … in the order the
    text first cites them, then the others in their order. (The answering stages number passages by
    retrieval rank: an answer citing only the third passage showed a lone "3" next to "1 source cited".)

    `numbers`: the passages that exist (None while streaming: every marker of the text so far, in order;
    the final answer's text cites them in the same order, so the numbers do not change when it ends)."""
    in_text: list[int] = []
    for marker in find_markers(text):
        in_text.extend(n for n in marker.numbers if n not in in_text)
    if numbers is None:
        return {n: i for i, n in enumerate(in_text, start=1)}
    numbers = list(numbers)
    cited_set = set(cited)
    order = [n for n in in_text if n in cited_set and n in numbers]
    order += [n for n in numbers if n in cited_set and n not in order]
    order += [n for n in numbers if n not in order]
    return {n: i for i, n in enumerate(order, start=1)}


def renumber_markers(text: str, shown: Mapping[int, int]) -> str:
    """`text` with each marker's numbers as people see them (see `shown_numbers`); plain text."""
    pieces: list[str] = []
    cursor = 0
    for marker in find_markers(text):
        numbers = ", ".join(str(shown.get(n, n)) for n in marker.numbers)
        pieces.append(f"{text[cursor : marker.start]}[{numbers}]")
        cursor = marker.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def link_markers(
    text: str,
    turn: int,
    *,
    known: Iterable[int] | None = None,
    weak: Iterable[int] = (),
    titles: Mapping[int, str] | None = None,
    shown: Mapping[int, int] | None = None,
) -> str:
    """Escape `text` and turn each `[n]` into a chip linking to source card n of this turn.

    `known`: the passage numbers that exist (None while streaming: link every marker). A marker that names
    no passage stays visible but is struck out, so a wrong citation is never hidden. `weak`: markers whose
    citation failed verification. `shown`: the number a chip shows for passage n (see `shown_numbers`;
    the card's anchor keeps n).
    """
    known_set = None if known is None else set(known)
    weak_set = set(weak)
    titles = titles or {}
    shown = shown or {}
    pieces: list[str] = []
    cursor = 0
    for marker in find_markers(text):  # the marker grammar of rag.markers: [1], [1, 2], [1-3], [1][2]
        pieces.append(escape_text(text[cursor : marker.start]))
        chips = []
        for number in marker.numbers:
            if known_set is not None and number not in known_set:
                chips.append(
                    f'<span class="cite cite-missing" title="No passage {number}: this marker was dropped">'
                    f"{number}</span>"
                )
                continue
            classes = "cite cite-weak" if number in weak_set else "cite"
            label = shown.get(number, number)
            title = titles.get(number, f"Source {label}")
            if number in weak_set:
                title += " (not supported by the passage)"
            chips.append(
                f'<a class="{classes}" href="#{source_anchor(turn, number)}" '
                f'title="{html.escape(title, quote=True)}">{label}</a>'
            )
        pieces.append("".join(chips))
        cursor = marker.end
    pieces.append(escape_text(text[cursor:]))
    return "".join(pieces)


def _merge_spans(spans: Iterable[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    clipped = sorted((max(0, s), min(length, e)) for s, e in spans if min(length, e) > max(0, s))
    merged: list[tuple[int, int]] = []
    for start, end in clipped:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def highlight(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Escape `text` and wrap the character spans (offsets into `text`) in `<mark>`."""
    pieces: list[str] = []
    cursor = 0
    for start, end in _merge_spans(spans, len(text)):
        pieces.append(escape_text(text[cursor:start]))
        pieces.append(f"<mark>{escape_text(text[start:end])}</mark>")
        cursor = end
    pieces.append(escape_text(text[cursor:]))
    return "".join(pieces)


def excerpt_window(length: int, spans: Sequence[tuple[int, int]], context: int) -> tuple[int, int]:
    """The part of a long passage worth showing first: the cited spans with `context` characters around."""
    if not spans:
        return 0, min(length, 2 * context)
    return max(0, min(s for s, _ in spans) - context), min(length, max(e for _, e in spans) + context)


def passage_spans(passage: Passage, citations: Iterable[Citation]) -> list[tuple[int, int]]:
    """Cited spans of `passage`, relative to its text (citation offsets are document offsets)."""
    spans = []
    for citation in citations:
        if citation.marker == passage.number and citation.doc_id == passage.doc_id:
            spans.append((citation.start - passage.start, citation.end - passage.start))
    return spans


def _source_card(
    passage: Passage, turn: int, citations: Sequence[Citation], unsupported: bool, shown: Mapping[int, int]
) -> str:
    label = html.escape(source_label(passage.source, passage.doc_id))
    location = location_label(passage.page, passage.heading_path)
    location_html = f'<span class="src-loc">{html.escape(location)}</span>' if location else ""
    flag = (
        '<span class="badge badge-warn" title="Verification found that this passage does not clearly '
        'support the sentence that cites it">Not supported</span>'
        if unsupported
        else ""
    )
    if passage.instruction_like:
        flag += (
            '<span class="badge badge-warn badge-injection" title="This passage contains instructions '
            "addressed to an AI assistant (possible prompt injection). It is shown as data; the answer does "
            'not follow it.">⚠ Gives instructions</span>'
        )
    spans = _merge_spans(passage_spans(passage, citations), len(passage.text))
    body = _passage_body(passage.text, spans)
    return (
        f'<div class="src-card{" src-unsupported" if unsupported else ""}" id="{source_anchor(turn, passage.number)}">'
        f'<div class="src-head"><span class="src-num">{shown.get(passage.number, passage.number)}</span>'
        f'<span class="src-name">{label}</span>{location_html}{flag}</div>'
        f'<div class="src-text">{body}</div></div>'
    )


EXCERPT_CONTEXT = 280  # characters shown around the cited spans of a long passage


def _passage_body(text: str, spans: list[tuple[int, int]]) -> str:
    """Short passages in full; long ones as an excerpt around the cited spans, the rest on demand."""
    start, end = excerpt_window(len(text), spans, EXCERPT_CONTEXT)
    if start == 0 and end == len(text):
        return highlight(text, spans)
    # Snap the cut to a word boundary so the excerpt does not start or end mid-word.
    if start > 0:
        space = text.find(" ", start, start + 40)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", end - 40, end)
        end = space if space != -1 else end
    inner = [(s - start, e - start) for s, e in spans]
    excerpt = highlight(text[start:end], inner)
    before = "… " if start > 0 else ""
    after = " …" if end < len(text) else ""
    return (
        f'<div class="src-excerpt">{before}{excerpt}{after}</div>'
        # Opened, the whole passage replaces the excerpt (app.css hides it) instead of repeating it.
        f'<details class="src-full"><summary><span class="when-closed">Show the whole passage '
        f'({len(text):,} characters)</span><span class="when-open">Show the excerpt only</span></summary>'
        f"{highlight(text, spans)}</details>"
    )


def _unsupported_markers(answer: Answer) -> set[int]:
    markers = {c.marker for c in answer.citations if not c.supported}
    markers.update(answer.verification.unsupported)
    return markers


def render_status(answer: Answer) -> str:
    """The badge line on top of an answer: abstained, verified, or with unsupported citations."""
    if answer.abstained:
        return (
            '<div class="status"><span class="badge badge-abstain">Not in the documents</span>'
            '<span class="status-note">No passage answers this question, so nothing is made up.</span></div>'
        )
    unsupported = _unsupported_markers(answer)
    cited = len({c.marker for c in answer.citations})
    badges = []
    if cited:
        badges.append(f'<span class="badge badge-ok">{cited} source{"s" if cited > 1 else ""} cited</span>')
    else:
        badges.append('<span class="badge badge-warn">No citation</span>')
    if unsupported:
        badges.append(
            f'<span class="badge badge-warn">{len(unsupported)} citation{"s" if len(unsupported) > 1 else ""} '
            "not supported</span>"
        )
    return f'<div class="status">{"".join(badges)}</div>'


def _meta_line(answer: Answer) -> str:
    parts = []
    if answer.backend:
        parts.append(f"backend {html.escape(answer.backend)}")
    if answer.retrieval_mode:
        parts.append(f"{html.escape(answer.retrieval_mode)} retrieval")
    if answer.language:
        parts.append(f"answered in {html.escape(language_name(answer.language))}")
    timings = answer.timings or {}
    total = timings.get("total") or sum(timings.values())
    if total:
        parts.append(f"{total:.1f} s")
    return f'<div class="meta">{" · ".join(parts)}</div>' if parts else ""


def render_answer(answer: Answer, turn: int) -> str:
    """The finished answer bubble: status, text with linked markers, sources, and what was understood."""
    unsupported = _unsupported_markers(answer)
    numbers = [p.number for p in answer.passages]
    cited_numbers = {c.marker for c in answer.citations}
    shown = shown_numbers(answer.text, numbers, cited_numbers)
    titles = {p.number: source_label(p.source, p.doc_id) for p in answer.passages}
    parts = [render_status(answer)]
    text = link_markers(answer.text, turn, known=numbers, weak=unsupported, titles=titles, shown=shown)
    parts.append(f'<div class="answer-text">{text}</div>')

    in_order = sorted(answer.passages, key=lambda p: shown[p.number])
    cited = [p for p in in_order if p.number in cited_numbers]
    uncited = [p for p in in_order if p.number not in cited_numbers]
    if cited:
        cards = "".join(
            _source_card(p, turn, answer.citations, p.number in unsupported, shown) for p in cited
        )
        parts.append(f'<div class="sources"><div class="sources-title">Sources</div>{cards}</div>')
    if uncited:
        cards = "".join(_source_card(p, turn, (), False, shown) for p in uncited)
        label = "Retrieved passages" if not cited else "Also retrieved, not cited"
        parts.append(f'<details class="uncited"><summary>{label} ({len(uncited)})</summary>{cards}</details>')
    if answer.standalone_question and answer.standalone_question.strip() != answer.question.strip():
        parts.append(
            '<details class="standalone"><summary>Question as understood</summary>'
            f'<div class="standalone-text">{escape_text(answer.standalone_question)}</div></details>'
        )
    parts.append(_meta_line(answer))
    return f'<div class="answer" data-turn="{turn}">{"".join(parts)}</div>'


def render_partial(text: str, turn: int) -> str:
    """An answer still streaming: the text so far, markers already linked, and a typing cursor."""
    body = (
        link_markers(text, turn, shown=shown_numbers(text))
        if text
        else '<span class="thinking">Searching the documents…</span>'
    )
    return f'<div class="answer answer-streaming" data-turn="{turn}"><div class="answer-text">{body}<span class="cursor"></span></div></div>'


FAILED_ADVICE = "Your conversation is kept: try again, or pick another backend in Settings."
# A question refused before any work (too long, too many a minute, a setting out of range): another backend
# would not help, the message above says what would.
REFUSED_ADVICE = "Nothing was asked; your conversation is kept."


def render_error(message: str, partial_text: str = "", *, advice: str = FAILED_ADVICE) -> str:
    """A failed (or refused) answer: what went wrong, and that the page still works."""
    partial = f'<div class="answer-text partial">{escape_text(partial_text)}</div>' if partial_text else ""
    return (
        f'<div class="answer answer-error">{partial}<div class="status"><span class="badge badge-error">Error</span>'
        f'<span class="error-text">{escape_text(message)}</span></div>'
        f'<div class="meta">{escape_text(advice)}</div></div>'
    )


def render_question(text: str) -> str:
    return f'<div class="question">{escape_text(text)}</div>'


# --- page banners -------------------------------------------------------------------------------------

_BACKEND_NOTES = {
    "extractive": (
        "Extractive answers: no language model is used. Answers quote the sentences of the documents that "
        "best match the question, word for word, with their sources. For written answers, set "
        "<code>llm.backend</code> (<code>RAG_LLM__BACKEND</code>) to <code>ollama</code>, <code>openai</code> "
        "or <code>hf</code> and <code>llm.model</code> (<code>RAG_LLM__MODEL</code>)."
    ),
}
_LEXICAL_NOTE = (
    "Keyword search only: no embedding model is loaded, so passages are found by shared words (BM25), "
    "not by meaning; rephrasing with the documents' own words helps. For semantic search, set "
    "<code>index.embedding_model</code> (<code>RAG_INDEX__EMBEDDING_MODEL</code>) to a local "
    "sentence-transformers folder and re-index."
)


def render_banner(status: Mapping[str, Any], backend: str | None = None) -> str:
    """Explain reduced modes up front, so offline mode is not mistaken for a broken model."""
    backend = backend or str(status.get("backend", ""))
    short, notes = [], []
    if status.get("retrieval_mode") == "lexical":
        short.append("keyword search (no embedding model)")
        notes.append(_LEXICAL_NOTE)
    if backend in _BACKEND_NOTES:
        short.append("answers quoted from the documents (no language model)")
        notes.append(_BACKEND_NOTES[backend])
    if not notes:
        return ""
    items = "".join(f"<li>{note}</li>" for note in notes)
    return (
        f'<div class="banner" role="note"><span class="banner-title">Offline mode</span><span class="banner-text">'
        f" — {' · '.join(short)}. This is expected here, not an error.</span>"
        f"<details><summary>What this means and how to enable the full mode</summary><ul>{items}</ul></details></div>"
    )


def render_index_info(status: Mapping[str, Any]) -> str:
    """One line on what is indexed and how it is searched."""
    documents = status.get("documents", 0)
    chunks = status.get("chunks", 0)
    mode = "semantic + keyword" if status.get("retrieval_mode") == "hybrid" else "keyword"
    model = status.get("embedding_model") or ""
    model_html = f" · model <code>{html.escape(str(model))}</code>" if model and mode != "keyword" else ""
    return (
        f'<div class="index-info">{documents} document{"s" if documents != 1 else ""} · {chunks} passages · '
        f"{mode} search{model_html}</div>"
    )
