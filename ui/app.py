"""The chat page: a Gradio app over an already-built `rag.Assistant`.

`build_app(assistant)` wires the page; it never loads models or indexes itself (that is `rag`'s job, done
before by `launch` or by the caller). Each browser session owns its `Conversation` in a `gr.State`, so two
people never see each other's history; nothing conversation-related lives in a module global.

Calls into the assistant (answers and uploads) share one Gradio concurrency group of size 1: the assistant
is reloaded in place when documents are added, and answers must never run against a half-swapped index.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from rag import RagError
from ui import render

if TYPE_CHECKING:
    from rag import Answer, Assistant, Settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CSS_PATH = STATIC_DIR / "app.css"
DEFAULT_COLLECTION = "uploads"
CONCURRENCY_GROUP = "assistant"
EXAMPLES = [
    "Quelle est la valorisation d'OpenAI ?",
    "Sam Altman possède-t-il des parts d'OpenAI ?",
    "What financial challenges does OpenAI face?",
    "How does the partnership with Microsoft work?",
]
_COLLECTION_NAME = re.compile(r"^[\w][\w .-]{0,63}$")


@dataclass
class Turn:
    question: str
    text: str = ""  # answer text so far (the streamed pieces, then the final text)
    answer: Answer | None = None
    error: str | None = None


@dataclass
class Conversation:
    """One browser session's chat. Lives in a `gr.State`: Gradio deep-copies it per session."""

    turns: list[Turn] = field(default_factory=list)

    def history(self) -> list[dict[str, str]]:
        """What the assistant sees: finished turns only (a failed answer is not context)."""
        messages: list[dict[str, str]] = []
        for turn in self.turns:
            if turn.answer is None or turn.error:
                continue
            messages.append({"role": "user", "content": turn.question})
            messages.append({"role": "assistant", "content": turn.answer.text})
        return messages

    def messages(self) -> list[dict[str, str]]:
        """What the Chatbot shows: one HTML string per message (escaped in `ui.render`)."""
        shown: list[dict[str, str]] = []
        for number, turn in enumerate(self.turns, start=1):
            shown.append({"role": "user", "content": render.render_question(turn.question)})
            if turn.error:
                content = render.render_error(turn.error, turn.text)
            elif turn.answer is not None:
                content = render.render_answer(turn.answer, number)
            else:
                content = render.render_partial(turn.text, number)
            shown.append({"role": "assistant", "content": content})
        return shown


def describe_error(exc: BaseException) -> str:
    """A message for the chat. Errors of `rag` are written for people; others get their type named."""
    if isinstance(exc, RagError):
        return str(exc) or type(exc).__name__
    return f"Unexpected error ({type(exc).__name__}): {exc}"


def safe_collection(name: str | None) -> str:
    """A collection is one sub-folder of `ui.uploads_dir`: a plain name, never a path."""
    name = (name or "").strip() or DEFAULT_COLLECTION
    if not _COLLECTION_NAME.match(name) or ".." in name:
        raise ValueError(
            f"Collection name {name!r} is not allowed: use letters, digits, spaces, '-', '_' or '.' "
            f"(no slashes), e.g. {DEFAULT_COLLECTION!r}."
        )
    return name


def split_by_type(paths: Sequence[str], extensions: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """(accepted, rejected) by file extension, case-insensitive."""
    allowed = {e.lower() for e in extensions}
    accepted, rejected = [], []
    for raw in paths:
        path = Path(raw)
        (accepted if path.suffix.lower() in allowed else rejected).append(path)
    return accepted, rejected


def existing_collections(uploads_dir: Path) -> list[str]:
    found = sorted(p.name for p in uploads_dir.iterdir() if p.is_dir()) if uploads_dir.is_dir() else []
    return sorted({DEFAULT_COLLECTION, *found})


def _uploaded_paths(files: Any) -> list[str]:
    if not files:
        return []
    items = files if isinstance(files, list) else [files]
    return [str(getattr(item, "name", item)) for item in items]


def _count(value: Any) -> int:
    """BuildReport counts are ints; accept lists too (the contract names the fields, not their types)."""
    if isinstance(value, int):
        return value
    return len(value or [])


def _error_line(message: str) -> str:
    return f'<div class="upload-error">{render.escape_text(message)}</div>'


def _report_html(report: Any, collection: str, uploaded: Sequence[Path]) -> str:
    """What became of this upload. The report also lists files skipped by earlier uploads (the index keeps
    them): only the ones of this upload are named, so an old "Skipped" line is not repeated forever."""
    mine = {path.resolve() for path in uploaded}
    skipped = [(Path(str(path)), reason) for path, reason in getattr(report, "skipped", []) or []]
    skipped = [(path, reason) for path, reason in skipped if path.resolve() in mine]
    new = _count(getattr(report, "new_files", 0))
    changed = _count(getattr(report, "changed_files", 0))
    if new or changed:
        summary = f"{new} new, {changed} updated file{'s' if new + changed != 1 else ''}. Searchable now."
    elif len(skipped) == len(mine):
        summary = "nothing was added."
    else:
        summary = "already indexed, nothing changed."
    lines = [f'<div class="upload-ok">Collection <b>{render.html.escape(collection)}</b>: {summary}</div>']
    for path, reason in skipped:
        lines.append(_error_line(f"Skipped {path.name}: {reason}"))
    return "".join(lines)


@dataclass
class UploadOutcome:
    message_html: str  # what the page shows under the upload button (escaped)
    indexed: bool = False  # True when add_documents ran and the index changed or was checked


def add_uploads(
    assistant: Assistant,
    paths: Sequence[str],
    collection: str | None,
    *,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> UploadOutcome:
    """Copy uploaded files into `ui.uploads_dir/<collection>/` and index them into the open index.

    Files of other types are refused by name, with the accepted types; the others are still indexed.
    """
    if not paths:
        return UploadOutcome(_error_line("Choose one or more files first."))
    try:
        collection = safe_collection(collection)
    except ValueError as exc:
        return UploadOutcome(_error_line(str(exc)))
    extensions = list(assistant.settings.index.extensions)
    accepted, rejected = split_by_type(paths, extensions)
    refusals = [
        f'Rejected {p.name}: unsupported file type "{p.suffix or "(none)"}". '
        f"Accepted types: {', '.join(extensions)}."
        for p in rejected
    ]
    empty = [p for p in accepted if p.stat().st_size == 0]
    refusals += [f"Rejected {p.name}: the file is empty. Choose a file with text in it." for p in empty]
    accepted = [p for p in accepted if p not in empty]
    rejected_html = "".join(_error_line(message) for message in refusals)
    if not accepted:
        return UploadOutcome(rejected_html)
    target = Path(assistant.settings.ui.uploads_dir) / collection
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in accepted:
        destination = target / path.name
        shutil.copyfile(path, destination)
        copied.append(destination)
    if on_progress:
        on_progress(0, len(copied), f"Indexing {len(copied)} file{'s' if len(copied) > 1 else ''}…")
    try:
        report = assistant.add_documents(copied, on_progress=on_progress)
    except Exception as exc:
        log.warning("indexing failed: %s", exc, exc_info=not isinstance(exc, RagError))
        return UploadOutcome(rejected_html + _error_line(f"Indexing failed: {describe_error(exc)}"))
    return UploadOutcome(rejected_html + _report_html(report, collection, copied), indexed=True)


def build_app(assistant: Assistant, *, examples: Sequence[str] = EXAMPLES) -> gr.Blocks:
    """The chat page over `assistant` (see the module docstring). Launch it with `serve`."""
    settings = assistant.settings
    status = assistant.status()
    backends = list(status.get("backends") or [status.get("backend", "extractive")])
    default_backend = str(status.get("backend") or backends[0])
    extensions = list(settings.index.extensions)
    uploads_dir = Path(settings.ui.uploads_dir)

    def page_info(backend: str | None = None) -> tuple[str, str]:
        current = assistant.status()
        return render.render_banner(current, backend), render.render_index_info(current)

    models = dict(status.get("models") or {})

    def model_note(backend: str) -> str:
        # The model the backend will really call (its default when llm.model is unset), the same name its
        # errors give: "(not set)" here while the error names llama3.2 was a contradiction.
        model = models.get(backend) or settings.llm.model
        if backend == "extractive" or not model:
            return "No model: answers are quoted from the documents."
        default = "" if settings.llm.model else f" (the {backend} default)"
        return f"Model: `{model}`{default}. Change it with `llm.model` / `RAG_LLM__MODEL`."

    def respond(
        question: str, conversation: Conversation, top_k: float, backend: str
    ) -> Iterator[tuple[list[dict[str, str]], Conversation, Any]]:
        question = (question or "").strip()
        if not question:
            yield conversation.messages(), conversation, gr.update()
            return
        history = conversation.history()
        turn = Turn(question)
        conversation.turns.append(turn)
        yield conversation.messages(), conversation, ""  # clear the box once; then leave what is typed
        try:
            for item in assistant.stream(question, history, top_k=int(top_k), backend=backend or None):
                if isinstance(item, str):
                    turn.text += item
                    yield conversation.messages(), conversation, gr.update()
                else:
                    turn.answer = item
                    turn.text = item.text
        except Exception as exc:  # any failure becomes a chat message; the page keeps working
            log.warning("answer failed: %s", exc, exc_info=not isinstance(exc, RagError))
            turn.error = describe_error(exc)
        if turn.answer is None and turn.error is None:
            turn.error = "The assistant stopped without a final answer. Please try again."
        yield conversation.messages(), conversation, gr.update()

    def new_conversation() -> tuple[list[dict[str, str]], Conversation, str]:
        return [], Conversation(), ""

    def pick_example(example: gr.SelectData) -> str:
        value = example.value
        return value.get("text", "") if isinstance(value, dict) else str(value)

    def add_documents(files: Any, collection: str, backend: str, progress: gr.Progress = gr.Progress()):  # noqa: B008
        """-> (upload message, collection dropdown, file list, banner, index info)."""
        paths = _uploaded_paths(files)

        def on_progress(done: int, total: int, message: str) -> None:
            progress((done, max(total, 1)), desc=message or "Indexing…")

        outcome = add_uploads(assistant, paths, collection, on_progress=on_progress)
        # The drop zone is emptied whatever happened: a rejected file left there would be sent (and
        # rejected) again with the next one; the result line says what became of each file.
        if not outcome.indexed:
            return outcome.message_html, gr.update(), gr.update(value=None), *page_info(backend)
        choices = existing_collections(uploads_dir)
        return (
            outcome.message_html,
            gr.update(choices=choices, value=safe_collection(collection)),
            gr.update(value=None),
            *page_info(backend),
        )

    with gr.Blocks(title="Ask your documents", analytics_enabled=False) as demo:
        conversation = gr.State(Conversation())
        with gr.Row(elem_classes="header-row"):
            gr.HTML(
                '<div class="app-title">Ask your documents</div>'
                '<div class="app-subtitle">Answers cite the passages they come from. '
                "Posez vos questions en français ou dans une autre langue : la réponse suit la langue de la question.</div>",
                elem_classes="header",
                js_on_load=None,
            )
        banner = gr.HTML(page_info(default_backend)[0], elem_id="mode-banner", js_on_load=None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=7, min_width=420):
                chatbot = gr.Chatbot(
                    elem_id="chat",
                    show_label=False,
                    height="60vh",
                    layout="panel",
                    latex_delimiters=[],
                    buttons=[],
                    feedback_options=None,
                    placeholder=(
                        "**Ask a question about your documents.**<br>"
                        "Each answer links its claims [1] to the passages below it."
                    ),
                    examples=[{"text": text} for text in examples],
                )
                with gr.Row(elem_classes="ask-row"):
                    question = gr.Textbox(
                        elem_id="question",
                        show_label=False,
                        placeholder="Posez votre question… / Ask a question…",
                        lines=1,
                        max_lines=6,
                        scale=8,
                        submit_btn="Ask",
                    )
                with gr.Row(elem_classes="chat-actions"):
                    new_chat = gr.Button(
                        "New conversation",
                        elem_id="new-conversation",
                        size="sm",
                        variant="secondary",
                        scale=0,
                    )
            with gr.Column(scale=3, min_width=260, elem_classes="side"):
                index_info = gr.HTML(page_info(default_backend)[1], elem_id="index-info", js_on_load=None)
                with gr.Accordion("Settings", open=True, elem_id="settings"):
                    top_k = gr.Slider(
                        1,
                        20,
                        value=settings.retrieval.top_k,
                        step=1,
                        label="Passages per answer (top-k)",
                        elem_id="top-k",
                    )
                    backend = gr.Dropdown(
                        choices=backends,
                        value=default_backend,
                        label="Answer backend",
                        elem_id="backend",
                        interactive=len(backends) > 1,
                    )
                    model = gr.Markdown(
                        model_note(default_backend), elem_id="model-note", elem_classes="hint"
                    )
                    gr.Markdown(
                        "The answer is written in the language of the question.",
                        elem_classes="hint",
                    )
                with gr.Accordion("Add documents", open=False, elem_id="upload"):
                    collection = gr.Dropdown(
                        choices=existing_collections(uploads_dir),
                        value=DEFAULT_COLLECTION,
                        allow_custom_value=True,
                        label="Collection (a folder of your uploads)",
                        elem_id="collection",
                    )
                    files = gr.File(
                        file_count="multiple",
                        label=f"Files ({' '.join(extensions)})",
                        elem_id="files",
                    )
                    add = gr.Button("Add to the index", variant="primary", elem_id="add-documents")
                    upload_result = gr.HTML("", elem_id="upload-result", js_on_load=None)

        chat_outputs = [chatbot, conversation, question]
        answer = {  # typing a question and clicking an example answer the same way
            "fn": respond,
            "inputs": [question, conversation, top_k, backend],
            "outputs": chat_outputs,
            "concurrency_id": CONCURRENCY_GROUP,
            "show_progress": "minimal",
            "show_progress_on": chatbot,
        }
        question.submit(**answer)
        chatbot.example_select(pick_example, None, question, queue=False).then(**answer)
        new_chat.click(new_conversation, None, chat_outputs, queue=False)
        # The Chatbot's own trash button clears the display: forget the conversation with it.
        chatbot.clear(new_conversation, None, chat_outputs, queue=False)
        backend.change(
            lambda name: (page_info(name)[0], model_note(name)),
            backend,
            [banner, model],
            queue=False,
            show_progress="hidden",
        )
        add.click(
            add_documents,
            [files, collection, backend],
            [upload_result, collection, files, banner, index_info],
            concurrency_id=CONCURRENCY_GROUP,
            show_progress_on=files,
        )
        # Counts and mode can change after another session's upload: refresh them for each new page.
        demo.load(page_info, backend, [banner, index_info], queue=False, show_progress="hidden")
    return demo


def theme() -> Any:
    """Soft theme with the fonts Gradio ships (no web fonts: this page works without a network)."""
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate").set(
        # Quieter field labels than Soft's tinted pills: the page is about the answers.
        block_title_background_fill="transparent",
        block_title_background_fill_dark="transparent",
        block_title_padding="0",
        block_title_text_color="*neutral_700",
        block_title_text_color_dark="*neutral_200",
        block_title_text_size="*text_sm",
        # WCAG AA (4.5:1) for every text, checked by tests/ui/test_ui_look.py: Soft's subdued text
        # (slate-400: 2.6:1 on white) and its primary buttons and accent (indigo-500: 4.5:1 with white, 3.6:1
        # as text on the pale panels) are one shade too light in the light theme.
        body_text_color_subdued="*neutral_600",
        body_text_color_subdued_dark="*neutral_400",
        color_accent="*primary_600",
        block_label_text_color="*primary_700",
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_dark="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        button_primary_background_fill_hover_dark="*primary_700",
        button_primary_text_color="white",
        button_primary_text_color_dark="white",
    )


def serve(demo: gr.Blocks, host: str, port: int, *, block: bool = True, quiet: bool = False) -> str:
    """Start the page on host:port and return its URL. `block=False` returns at once (tests, scripts)."""
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        theme=theme(),
        css_paths=[CSS_PATH],
        ssr_mode=False,
        show_error=True,
        quiet=quiet,
        footer_links=[],
    )
    return url


def launch(
    settings: Settings,
    paths: Sequence[str | Path] | None = None,
    *,
    assistant: Assistant | None = None,
    block: bool = True,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> str:
    """Open (or build, when `paths` are given) the assistant, then serve the chat page.

    Called by `rag chat [paths]`. Blocks until the server stops unless `block=False`.
    """
    if assistant is None:
        from rag import build_assistant, open_assistant

        if paths:
            assistant = build_assistant(list(paths), settings, on_progress=on_progress)
        else:
            assistant = open_assistant(settings)
    demo = build_app(assistant)
    print(
        f"Chat on http://{settings.ui.host}:{settings.ui.port} (index: {settings.index.index_dir})",
        flush=True,
    )
    return serve(demo, settings.ui.host, settings.ui.port, block=block)
