"""A conversation or one answer as Markdown: the text with its [n] markers, then the numbered sources
(file, location, the cited words quoted). What "Copy answer" puts on the clipboard and "Export" saves."""

from __future__ import annotations

from typing import Any

from ui.render import location_label, passage_spans, renumber_markers, shown_numbers, source_label

QUOTE_CHARS = 400


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1].rstrip() + "…"


def answer_markdown(answer: Any) -> str:
    """The answer, then "Sources": one numbered line per passage it cites (or, if none, it was given),
    numbered as the page shows them (`shown_numbers`)."""
    cited = {c.marker for c in answer.citations}
    shown = shown_numbers(answer.text, [p.number for p in answer.passages], cited)
    lines = [renumber_markers(answer.text.strip(), shown)]
    in_order = sorted(answer.passages, key=lambda p: shown[p.number])
    passages = [p for p in in_order if p.number in cited] or ([] if answer.abstained else in_order)
    if passages:
        lines += ["", "Sources:"]
    for passage in passages:
        where = location_label(passage.page, passage.heading_path)
        name = source_label(passage.source, passage.doc_id) + (f" ({where})" if where else "")
        spans = passage_spans(passage, answer.citations)
        quoted = " … ".join(passage.text[s:e] for s, e in sorted(spans)) if spans else passage.text
        lines.append(f"[{shown[passage.number]}] {name}: “{_quote(quoted)}”")
    return "\n".join(lines)


def conversation_markdown(conversation: Any, title: str = "Conversation") -> str:
    parts = [f"# {title}"]
    for number, turn in enumerate(conversation.turns, start=1):
        parts.append(f"## {number}. {turn.question.strip()}")
        if turn.error:
            parts.append(f"*No answer: {turn.error}*")
        elif turn.answer is not None:
            parts.append(answer_markdown(turn.answer))
        else:
            parts.append(turn.text.strip())
    return "\n\n".join(parts) + "\n"
