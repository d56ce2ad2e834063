"""The chat page: a Gradio app over an already-built `rag.Assistant`.

`build_app(assistant)` wires the page; it never loads models or indexes itself (that is `rag`'s job, done
before by `launch` or by the caller). Each browser session owns its `Conversation` in a `gr.State`, so two
people never see each other's history; nothing conversation-related lives in a module global.

Answers run in parallel (up to `ui.max_concurrent_answers`): the assistant gives each one the index
generation current when it started, and an upload is indexed by a background job (`ui.jobs`) in a child
process, switched in when complete; the page polls its progress and can cancel it. The event handlers are
the methods of `ChatHandlers`, testable without a browser. Limits (`ui.limits`) refuse oversized questions
and uploads, and too many questions a minute, with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from rag import Answer, IndexingCancelledError, RagError
from ui import limits, render
from ui.accounts import Accounts, Database, User, auth_required
from ui.conversations import ConversationStore, SavedTurn, title_of
from ui.cpu_gate import FairGate
from ui.export import answer_markdown, conversation_markdown
from ui.jobs import STAGES, IndexingJobs

if TYPE_CHECKING:
    from rag import Assistant, Settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CSS_PATH = STATIC_DIR / "app.css"
DEFAULT_COLLECTION = "uploads"
TOP_K_RANGE = (1, 20)  # the settings' slider of passages per answer
EXAMPLES = [
    "Quelle est la valorisation d'OpenAI ?",
    "Sam Altman possède-t-il des parts d'OpenAI ?",
    "What financial challenges does OpenAI face?",
    "How does the partnership with Microsoft work?",
]
_COLLECTION_NAME = re.compile(r"^[\w][\w .-]{0,63}$")
BROWSER_COOKIE = "rag_browser"
_BROWSER_ID = re.compile(r"^[0-9a-f]{32}$")
# Without a login, each browser keeps its own conversations: a random id, kept in its local storage and
# sent with every request as a cookie (so every event, queued or not, knows whose it is). In the <head>:
# set before the page's first request.
BROWSER_ID_SCRIPT = """<script>
(() => {
  const name = "COOKIE";
  let id = null;
  try { id = localStorage.getItem(name); } catch (e) {}
  const kept = document.cookie.match(/(?:^|; )COOKIE=([0-9a-f]{32})/);
  if (!/^[0-9a-f]{32}$/.test(id || "")) id = kept ? kept[1] : null;
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  try { localStorage.setItem(name, id); } catch (e) {}
  document.cookie = `${name}=${id}; path=/; max-age=31536000; SameSite=Strict`;
})();
</script>""".replace("COOKIE", BROWSER_COOKIE)

# Each new question is scrolled to the top of the chat once, and the answer is written below it: a person
# reads it from its first line. (Gradio's autoscroll, off, kept the chat at its bottom: an answer taller
# than the chat showed its last source card, the question and the answer's start scrolled out of view.)
CHAT_SCROLL_SCRIPT = """<script>
(() => {
  // The newest question is brought to the top of the chat, again as its answer grows (a short answer
  // first leaves no room to scroll), until it is there or the person scrolls the chat themselves.
  let shown = 0, pinned = -1;
  const scrollable = (el) => {
    for (let node = el.parentElement; node; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowY;
      if ((overflow === 'auto' || overflow === 'scroll') && node.scrollHeight > node.clientHeight) return node;
      if (node.id === 'chat') return null;
    }
    return null;
  };
  // And the chat itself is brought into the page's view when its questions change (asked, or a conversation
  // opened) while the page is scrolled away from it: on a phone, a question sent from the fixed bar with the
  // settings in view was answered out of sight, above them.
  const inView = () => {
    const chat = document.querySelector('#chat');
    const bar = document.querySelector('.ask-bar');
    if (!chat) return;
    const box = chat.getBoundingClientRect();
    const end = bar && getComputedStyle(bar).position === 'fixed' ? bar.getBoundingClientRect().top : innerHeight;
    // Its end just above the bar (on a phone: the page as it first showed), or its top in view if it is taller.
    if (box.bottom < 80 || box.top > end - 80) window.scrollBy(0, Math.min(box.top - 8, box.bottom - end + 8));
  };
  const check = () => {
    const questions = document.querySelectorAll('#chat .question');
    if (questions.length > shown) pinned = questions.length - 1;
    if (questions.length && questions.length !== shown) inView();
    shown = questions.length;
    const question = questions[pinned];
    if (!question) { pinned = -1; return; }
    const box = scrollable(question);
    if (!box) return;
    const message = question.closest('.message-row') || question;
    box.scrollTop += message.getBoundingClientRect().top - box.getBoundingClientRect().top;
    if (Math.abs(message.getBoundingClientRect().top - box.getBoundingClientRect().top) < 2) pinned = -1;
  };
  const release = (event) => { if (event.target.closest && event.target.closest('#chat')) pinned = -1; };
  for (const type of ['wheel', 'touchmove', 'keydown']) document.addEventListener(type, release, true);
  let pending = false;
  new MutationObserver(() => {
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; check(); }); }
  }).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>"""


# Ask (or Enter) with nothing typed sends nothing: the page says what to do under the box (#question-hint,
# shown by app.css while `question-empty` is set and the box is still empty). Any other click, or typing,
# takes the hint away. Client-side: an empty question never reaches the server's answer queue as work.
QUESTION_HINT_SCRIPT = """<script>
(() => {
  const box = () => document.querySelector('#question textarea');
  const empty = () => !!box() && !box().value.trim();
  const hint = (on) => document.body.classList.toggle('question-empty', on);
  document.addEventListener('click', (event) => {
    const ask = event.target.closest && event.target.closest('#question .submit-button');
    hint(!!ask && empty());
  }, true);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.target === box()) hint(empty());
  }, true);
  document.addEventListener('input', (event) => { if (event.target === box()) hint(false); }, true);
})();
</script>"""

# "Show the whole passage" opens the passage (a box of 18 lines under its link) scrolled to its quoted span,
# and brings the span into the chat's view: it opened at the passage's start, the span below the box's end,
# or the whole passage under the chat's bottom edge where a person reading down clicked its link.
PASSAGE_SCRIPT = """<script>
document.addEventListener('toggle', (event) => {
  const passage = event.target;
  if (!passage.open || !passage.matches || !passage.matches('details.src-full')) return;
  const mark = passage.querySelector('mark');
  if (!mark) return;
  requestAnimationFrame(() => {
    const box = passage.getBoundingClientRect(), span = mark.getBoundingClientRect();
    passage.scrollTop += span.top - box.top - Math.max(0, (passage.clientHeight - span.height) / 3);
    mark.scrollIntoView({block: 'nearest'});
  });
}, true);
</script>"""

# Rename and Delete act on the conversation selected in the list: inactive while none is (none at all, a new
# conversation, after a delete); Regenerate, Edit last question, Copy answer and Export act on the chat:
# inactive while it is empty. Both follow the page's changes, not a timer (it read the page four times a
# second for as long as it was open): the list's selection is told by its change event
# (`CONVERSATION_SELECTED_JS`, in the page: Gradio sets the list's value with no DOM change to observe), the
# chat's questions are seen by a MutationObserver, at most once a frame. The list's change also fills the
# Title box.
CONVERSATION_ACTIONS_SCRIPT = """<script>
(() => {
  let selected = false;
  const inactive = (ids, off, why) => {
    for (const id of ids) {
      const button = document.getElementById(id);
      if (button && button.disabled !== off) { button.disabled = off; button.title = off ? why : ''; }
    }
  };
  const update = () => {
    inactive(['rename-conversation', 'delete-conversation'], !selected, 'Open a conversation from the list first');
    inactive(['regenerate', 'edit-last', 'copy-answer', 'export'], !document.querySelector('#chat .question'),
             'Ask a question first');
  };
  // And the Title box shows the selected conversation's title (its label in the list), or nothing: it
  // stayed empty after a first answer put the conversation in the list, selected. In the page: the answer
  // event sends nothing more for it, and no request is made.
  const showTitle = (value) => {
    const list = document.querySelector('#conversations input');
    const box = document.querySelector('#conversation-title textarea');
    const title = value && list ? list.value : '';
    if (box && box.value !== title) { box.value = title; box.dispatchEvent(new Event('input', {bubbles: true})); }
  };
  window.ragConversationSelected = (value) => {
    selected = !!value;
    update();
    requestAnimationFrame(() => showTitle(value));  // (the list shows the selected title by then)
  };
  let pending = false;
  new MutationObserver(() => {
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; update(); }); }
  }).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>"""
CONVERSATION_SELECTED_JS = "(value) => { window.ragConversationSelected?.(value); return []; }"

# The height of the bar under the chat (question box, actions, export, feedback), as --ask-bar-height: on a
# phone that bar is fixed to the bottom of the view and the page keeps that much room at its end (a fixed
# guess left the end of the page under the bar once the box grew to several lines). And where the chat
# starts in the page, as --chat-top: on a phone the chat takes the room between the header and the bar (a
# fixed 48vh left its end 46 px under the bar when the account line made the header taller).
ASK_BAR_SCRIPT = """<script>
(() => {
  const watch = () => {
    const bar = document.querySelector('.ask-bar'), chat = document.querySelector('#chat');
    if (!bar || !chat) return false;
    const root = document.documentElement.style;
    const measure = () => {
      root.setProperty('--ask-bar-height', `${Math.ceil(bar.getBoundingClientRect().height)}px`);
      root.setProperty('--chat-top', `${Math.ceil(chat.getBoundingClientRect().top + window.scrollY)}px`);
    };
    const observer = new ResizeObserver(measure);
    observer.observe(bar);
    for (const part of document.querySelectorAll('.header-row, #mode-banner')) observer.observe(part);
    return true;
  };
  if (!watch()) {
    const wait = new MutationObserver(() => { if (watch()) wait.disconnect(); });
    wait.observe(document.documentElement, {childList: true, subtree: true});
  }
})();
</script>"""


# Under the conversation list's label while it is empty.
NO_CONVERSATIONS = "No conversations yet: each one is kept here from its first answer."

# What a wrong name or password gets on the login page, in place of Gradio's "Incorrect Credentials" (its
# words and title case, no way out). Gradio 6 has no setting for it: its translations (`i18n=`) are not sent
# to the login page; the line (`p.creds`) is hidden, its text out of the accessibility tree, and this
# sentence shown in its place.
LOGIN_FAILED = (
    "This user name and password do not match an account. Type them again; if you forgot your password, "
    "an administrator can set a new one (rag users passwd NAME)."
)

# The login page's message (HTML: Gradio showed the Markdown backticks as they are). The login page gets
# neither the page's CSS nor its <head>, only this message: its <style> gives Gradio's field labels
# ("username", "password", in lowercase in every language Gradio ships) the sentence case of the rest of
# the page, and says LOGIN_FAILED.
LOGIN_MESSAGE = (
    "<style>label > span[data-testid=block-info] { display: inline-block; }"
    " label > span[data-testid=block-info]::first-letter { text-transform: uppercase; }"
    " p.creds { visibility: hidden; font-size: 0; line-height: 0; }"
    f' p.creds::before {{ content: "{LOGIN_FAILED}"; visibility: visible; font-size: var(--text-md);'
    " display: block; max-width: 56em; line-height: 1.5; }</style>"
    "Ask your documents: sign in with the account an administrator created for you "
    "(administrators: <code>rag users add NAME</code>)."
)


@dataclass
class Turn:
    question: str
    text: str = ""  # answer text so far (the streamed pieces, then the final text)
    answer: Answer | None = None
    error: str | None = None
    saved_html: str | None = None  # a turn reopened from the conversation store: shown as it was
    stop_requested: bool = False  # Stop was pressed: the answer being written ends at its next piece
    refused: bool = False  # refused before any work (a limit, a setting): `error` says what to change
    # (what it was rendered from, its HTML): a final turn is rendered once, see `html`
    _rendered: tuple[tuple[Any, ...], str] | None = field(default=None, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """An answer the history may use: a final one, live or reopened, that is not an error."""
        return not self.error and (self.answer is not None or self.saved_html is not None)

    def html(self, number: int) -> str:
        """The answer as the chat shows it. A final or failed answer is rendered once and kept: while one
        answer streams the whole chat is sent again at every update, and rendering every earlier answer each
        time cost more than answering under 50 sessions (py-spy, `eval.benchmarks.concurrency`)."""
        if self.saved_html is not None:
            return self.saved_html
        if self.error is None and self.answer is None:
            return render.render_partial(self.text, number)  # changes at every piece: nothing to keep
        key = (number, self.error, self.text, id(self.answer))
        if self._rendered is None or self._rendered[0] != key:
            if self.error:
                advice = render.REFUSED_ADVICE if self.refused else render.FAILED_ADVICE
                content = render.render_error(self.error, self.text, advice=advice)
            else:
                content = render.render_answer(self.answer, number)
            self._rendered = (key, content)
        return self._rendered[1]


@dataclass
class Conversation:
    """One browser session's chat. Lives in a `gr.State`: Gradio deep-copies it per session."""

    turns: list[Turn] = field(default_factory=list)
    conversation_id: str | None = None  # its key in the conversation store, once its first answer is saved
    # The page's list shows it first, selected (sent with an answer of this page): later answers leave the
    # list as it is. False again for a conversation reopened from the list (a new object).
    first_in_list: bool = False

    def history(self) -> list[dict[str, str]]:
        """What the assistant sees: finished turns only (a failed answer is not context)."""
        messages: list[dict[str, str]] = []
        for turn in self.turns:
            if not turn.finished:
                continue
            messages.append({"role": "user", "content": turn.question})
            messages.append({"role": "assistant", "content": turn.answer.text if turn.answer else turn.text})
        return messages

    def messages(self) -> list[dict[str, str]]:
        """What the Chatbot shows: one HTML string per message (escaped in `ui.render`)."""
        shown: list[dict[str, str]] = []
        for number, turn in enumerate(self.turns, start=1):
            shown.append({"role": "user", "content": render.render_question(turn.question)})
            shown.append({"role": "assistant", "content": turn.html(number)})
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
        counts = [
            f"{n} {kind} file{'s' if n != 1 else ''}" for n, kind in ((new, "new"), (changed, "updated")) if n
        ]
        summary = f"{', '.join(counts)}. Searchable now."  # (it said "1 new, 0 updated file")
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


@dataclass
class CheckedUpload:
    """An upload after the checks that need no indexing: what will be indexed, and what was refused."""

    accepted: list[Path]
    collection: str
    refusals_html: str


def check_uploads(settings: Settings, paths: Sequence[str], collection: str | None) -> CheckedUpload:
    """Refuse, by name and with the fix, what cannot be indexed: wrong type, empty, too big, too many."""
    if not paths:
        return CheckedUpload([], "", _error_line("Choose one or more files first."))
    try:
        collection = safe_collection(collection)
    except ValueError as exc:
        return CheckedUpload([], "", _error_line(str(exc)))
    too_many = limits.too_many_files(len(paths), settings.ui.max_upload_files)
    if too_many:
        return CheckedUpload([], collection, _error_line(too_many))
    extensions = list(settings.index.extensions)
    by_type, rejected = split_by_type(paths, extensions)
    refusals = [
        f'Rejected {p.name}: unsupported file type "{p.suffix or "(none)"}". '
        f"Accepted types: {', '.join(extensions)}."
        for p in rejected
    ]
    accepted = []
    for path in by_type:
        problem = limits.file_problem(path, settings.ui.max_upload_mb)
        if problem:
            refusals.append(problem)
        else:
            accepted.append(path)
    return CheckedUpload(accepted, collection, "".join(_error_line(message) for message in refusals))


def index_uploads(
    assistant: Assistant,
    upload: CheckedUpload,
    *,
    on_progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
    in_subprocess: bool = False,
    uploads_root: Path | None = None,
) -> UploadOutcome:
    """Copy the accepted files into `<uploads_root>/<collection>/` (default root: `ui.uploads_dir`) and
    index them into `assistant`'s index.

    Cancelled, the copies of files that were not there before are removed again: the folder and the index
    stay as they were.
    """
    if not upload.accepted:
        return UploadOutcome(upload.refusals_html)
    target = Path(uploads_root or assistant.settings.ui.uploads_dir) / upload.collection
    target.mkdir(parents=True, exist_ok=True)
    copied, new_copies = [], []
    for path in upload.accepted:
        destination = target / path.name
        if not destination.exists():
            new_copies.append(destination)
        shutil.copyfile(path, destination)
        copied.append(destination)
    if on_progress:
        on_progress(0, len(copied), "starting")
    options: dict[str, Any] = {"on_progress": on_progress}
    if cancel is not None or in_subprocess:
        options.update(cancel=cancel, in_subprocess=in_subprocess)
    try:
        report = assistant.add_documents(copied, **options)
    except IndexingCancelledError as exc:
        for path in new_copies:
            path.unlink(missing_ok=True)
        # (A note, not an error: the person asked for it.)
        return UploadOutcome(
            upload.refusals_html + f'<div class="upload-note">{render.escape_text(str(exc))}</div>'
        )
    except Exception as exc:
        log.warning("indexing failed: %s", exc, exc_info=not isinstance(exc, RagError))
        return UploadOutcome(upload.refusals_html + _error_line(f"Indexing failed: {describe_error(exc)}"))
    return UploadOutcome(upload.refusals_html + _report_html(report, upload.collection, copied), indexed=True)


def add_uploads(
    assistant: Assistant,
    paths: Sequence[str],
    collection: str | None,
    *,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> UploadOutcome:
    """`check_uploads` then `index_uploads`, in this thread (the page runs the second as a background job)."""
    return index_uploads(
        assistant, check_uploads(assistant.settings, paths, collection), on_progress=on_progress
    )


# The conversation's `gr.State` while an answer streams: not sent again. Gradio hands the handler the
# session's own `Conversation` object, which `respond` changes in place (as `stopped` does), so there is
# nothing to store; sending it made Gradio store it again and rebuild the State's config at every update, in
# the event loop every session's updates go through (py-spy, 50 streaming sessions). The answer's last
# update sends it, as every other handler does.
STATE_KEPT = gr.skip()
LIST_KEPT = gr.skip()  # the conversation list as the page shows it


class StreamBudget:
    """How often a streamed answer may update the page. Each update sends the whole chat again (Gradio
    postprocesses every output, and an unchanged question box is rebuilt as a component): about 10 ms of the
    server's CPU, so 50 answers streamed at 10 updates a second took all of it and the first tokens of new
    answers queued behind (py-spy, `eval.benchmarks.concurrency`). Each answer gets `per_answer` updates a
    second, fewer when many stream at once: together at most `total` a second."""

    def __init__(self, per_answer: float, total: float) -> None:
        self.per_answer, self.total = per_answer, total
        self.active = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def streaming(self, counted: bool = True) -> Iterator[None]:
        """While an answer streams (`counted`: an LLM's; extractive answers are sent whole)."""
        if not counted:
            yield
            return
        with self._lock:
            self.active += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1

    def interval_s(self) -> float:
        """Seconds between two updates of one answer, now."""
        return max(1.0 / self.per_answer, max(1, self.active) / self.total)


class ChatHandlers:
    """What the page's events do, as plain methods (testable without a browser); `build_app` wires them.

    Per-person state arrives as arguments (the `Conversation` in a `gr.State`); what is shared by every
    session is here: the assistant, the upload jobs and the question rate limiter.
    """

    def __init__(
        self,
        assistant: Assistant,
        accounts: Accounts | None = None,
        conversations: ConversationStore | None = None,
    ) -> None:
        self.assistant = assistant
        self.settings = assistant.settings
        self.accounts = accounts
        self.conversations = conversations
        self._views: dict[str, Assistant] = {}
        self._views_lock = threading.Lock()
        self.jobs = IndexingJobs()
        self.rate = limits.RateLimiter(self.settings.ui.questions_per_minute)
        # Answers without an LLM are CPU work under one interpreter lock: more at once than cores only
        # makes them thrash (50 sessions: p95 29 s). LLM answers wait on their server and are not gated.
        self.cpu_gate = FairGate(self.settings.ui.cpu_answers or _cores())  # first come, first served
        self.streams = StreamBudget(
            self.settings.ui.stream_updates_per_s, self.settings.ui.stream_updates_per_s_total
        )
        status = assistant.status()
        self.backends = list(status.get("backends") or [status.get("backend", "extractive")])
        self.default_backend = str(status.get("backend") or self.backends[0])
        self.models = dict(status.get("models") or {})

    # --- who asks: accounts and their collections ---------------------------------------------------------
    def user(self, request: gr.Request | None) -> User | None:
        name = getattr(request, "username", None) if request is not None else None
        return self.accounts.get(name) if self.accounts is not None and name else None

    def assistant_for(self, request: gr.Request | None) -> Assistant:
        """Admins and anonymous local sessions: the shared index. A user: the shared index together with
        their private collection (their uploads), which nobody else searches."""
        user = self.user(request)
        if user is None or user.is_admin:
            return self.assistant
        with self._views_lock:
            view = self._views.get(user.name)
            if view is None:
                view = self.assistant.with_private_index(self._private_root(user) / "index")
                self._views[user.name] = view
        return view

    def _private_root(self, user: User) -> Path:
        return Path(self.settings.ui.private_dir) / user.name

    def uploads_root(self, request: gr.Request | None) -> Path:
        user = self.user(request)
        if user is None or user.is_admin:
            return Path(self.settings.ui.uploads_dir)
        return self._private_root(user) / "uploads"

    def account_line(self, request: gr.Request | None = None) -> str:
        user = self.user(request)
        if user is None:
            return ""
        where = (
            "Your uploads go into the shared corpus."
            if user.is_admin
            else "Your uploads are private: only you search them."
        )
        return (
            f'<div class="account"><div>Signed in as <b>{render.html.escape(user.name)}</b> ({user.role}) · '
            f'<a href="/logout">Log out</a></div><div class="account-note">{where}</div></div>'
        )

    # --- page information --------------------------------------------------------------------------------
    def page_info(self, backend: str | None = None, request: gr.Request | None = None) -> tuple[str, str]:
        current = self.assistant_for(request).status()
        return render.render_banner(current, backend), render.render_index_info(current)

    def on_backend_change(self, backend: str, request: gr.Request | None = None) -> tuple[str, str]:
        return self.page_info(backend, request)[0], self.model_note(backend)

    def model_note(self, backend: str) -> str:
        # The model the backend will really call (its default when llm.model is unset), the same name its
        # errors give: "(not set)" here while the error named llama3.2 was a contradiction.
        model = self.models.get(backend) or self.settings.llm.model
        if backend == "extractive" or not model:
            return "No model: answers are quoted from the documents."
        default = "" if self.settings.llm.model else f" (the {backend} default)"
        return f"Model: `{model}`{default}. Change it with `llm.model` / `RAG_LLM__MODEL`."

    # --- answers -----------------------------------------------------------------------------------------
    def respond(
        self,
        question: str,
        conversation: Conversation,
        top_k: float,
        backend: str,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[list[dict[str, str]], Conversation, Any, Any]]:
        """-> (chat, conversation, question box, conversation list) updates; the list is sent with the
        last update only (the answered conversation new in it, or moved to the top). It was an event of its
        own after each answer: one more request, session lookup and Gradio event per question."""
        question = str(question or "").strip()  # as sent (`preprocess=False`): text, from a page
        if not question:
            yield conversation.messages(), conversation, gr.update(), LIST_KEPT
            return
        problem = limits.question_problem(question, self.settings.ui.max_question_chars)
        problem = problem or self.choice_problem(top_k, backend) or self.rate.check(person(request))
        if problem:  # refused before any work: shown in the chat, the typed text is kept to shorten it
            conversation.turns.append(Turn(_shorten(question), error=problem, refused=True))
            yield conversation.messages(), conversation, gr.update(), LIST_KEPT
            return
        history = conversation.history()
        turn = Turn(question)
        conversation.turns.append(turn)
        live = False
        try:
            assistant = self.assistant_for(request)
            stream: Iterable[str | Answer]
            stream = assistant.stream(question, history, top_k=round(top_k), backend=backend or None)
            live = assistant.generator(backend or None).is_llm
            if live:  # the question is shown and the box cleared at once; the answer streams below it
                yield conversation.messages(), conversation, "", LIST_KEPT  # then what is typed is left
            else:
                # Pure CPU work, written at once: computed whole, one per core (see `cpu_gate`), sent in
                # one page update (which also clears the box: each update costs the server ~10 ms). Its
                # query is embedded before it waits, together with the other questions waiting.
                assistant.embed_ahead(question, history, backend=backend or None)
                with self.cpu_gate:
                    stream = list(stream)
            shown = 0.0
            with self.streams.streaming(live):
                for item in stream:
                    if turn.stop_requested:  # `stopped` has marked and kept the turn: end the stream here
                        getattr(stream, "close", lambda: None)()  # an LLM's request is closed with it
                        # as it is now, stopped (`stopped` saved it: the list may show it now)
                        yield (
                            conversation.messages(),
                            conversation,
                            gr.update(),
                            self.listed(conversation, request),
                        )
                        return
                    if isinstance(item, str):
                        turn.text += item
                        # The first piece at once, then as often as the shared budget allows.
                        if live and time.monotonic() - shown >= self.streams.interval_s():
                            shown = time.monotonic()
                            yield conversation.messages(), STATE_KEPT, gr.update(), LIST_KEPT
                    else:
                        turn.answer = item
                        turn.text = item.text
        except Exception as exc:  # any failure becomes a chat message; the page keeps working
            log.warning("answer failed: %s", exc, exc_info=not isinstance(exc, RagError))
            turn.error = describe_error(exc)
        if turn.stop_requested:  # stopped after the last piece: `stopped` has kept the turn
            yield conversation.messages(), conversation, gr.update(), self.listed(conversation, request)
            return
        if turn.answer is None and turn.error is None:
            turn.error = "The assistant stopped without a final answer. Please try again."
        self._save(conversation, turn, request)
        yield (
            conversation.messages(),
            conversation,
            gr.update() if live else "",
            self.listed(conversation, request),
        )

    def choice_problem(self, top_k: Any, backend: Any) -> str | None:
        """What is wrong with the settings a question came with, or None. The answer event takes the page's
        values as they are sent (`preprocess=False`, see `_wire_chat`), so the checks Gradio's slider and
        dropdown would make are made here: a page sends valid ones, another client may not."""
        low, high = TOP_K_RANGE
        if isinstance(top_k, bool) or not isinstance(top_k, (int, float)) or not low <= top_k <= high:
            return f"Passages per answer (top-k) must be a number from {low} to {high}, got {top_k!r:.40}."
        if backend not in (None, "", *self.backends):
            return (
                f"Unknown answer backend {backend!r:.40}: choose one of {', '.join(self.backends)} "
                "(the settings' backend list)."
            )
        return None

    # --- kept conversations and settings ---------------------------------------------------------------------
    def _save(self, conversation: Conversation, turn: Turn, request: gr.Request | None) -> None:
        if self.conversations is None:
            return
        if conversation.conversation_id is None:
            conversation.conversation_id = self.conversations.new_id()
        position = conversation.turns.index(turn)
        try:
            self.conversations.save_turn(
                person(request),
                conversation.conversation_id,
                position,
                turn.question,
                answer_html=turn.html(position + 1),  # as the chat shows it (rendered once, kept)
                answer=turn.answer,
                error=turn.error,
            )
        except Exception as exc:  # the answer is shown anyway; say in the log why it was not kept
            log.warning("conversation not saved: %s", exc)

    def conversation_list(self, request: gr.Request | None = None, selected: str | None = None) -> Any:
        """The list, and under its label what to do when it is empty (an empty box said nothing, after
        the last conversation was deleted as on a first visit)."""
        if self.conversations is None:
            return gr.update()
        choices = self.conversations.list(person(request))
        return gr.update(choices=choices, value=selected, info="" if choices else NO_CONVERSATIONS)

    def listed(self, conversation: Conversation, request: gr.Request | None = None) -> Any:
        """The list with `conversation` selected: new in it, or moved to the top. Unchanged when the page
        already shows it so (its later answers: no list query, no list sent), without a store, or when the
        conversation was never saved."""
        if self.conversations is None or conversation.conversation_id is None or conversation.first_in_list:
            return LIST_KEPT
        conversation.first_in_list = True
        return self.conversation_list(request, conversation.conversation_id)

    def open_conversation(self, conversation_id: str | None, request: gr.Request | None = None):
        """-> (chat, conversation, title box)."""
        if self.conversations is None or not conversation_id:
            return gr.update(), gr.update(), gr.update()
        conversation = Conversation(
            [_reopened(t) for t in self.conversations.turns(person(request), conversation_id)],
            conversation_id=conversation_id,
        )
        titles = dict((cid, title) for title, cid in self.conversations.list(person(request)))
        return conversation.messages(), conversation, titles.get(conversation_id, "")

    def rename_conversation(self, conversation_id: str | None, title: str, request: gr.Request | None = None):
        if self.conversations is not None and conversation_id:
            self.conversations.rename(person(request), conversation_id, title or "")
        return self.conversation_list(request, conversation_id)

    def delete_conversation(
        self, conversation_id: str | None, conversation: Conversation, request: gr.Request | None = None
    ):
        """-> (list, chat, conversation, title box): deleting the open conversation starts a new one."""
        if self.conversations is not None and conversation_id:
            self.conversations.delete(person(request), conversation_id)
        if conversation.conversation_id == conversation_id:
            return self.conversation_list(request), [], Conversation(), ""
        return self.conversation_list(request), gr.update(), gr.update(), ""

    def load_person(self, request: gr.Request | None = None):
        """On page load: this person's conversation list and their saved settings (top-k, backend)."""
        if self.conversations is None:
            return gr.update(), gr.update(), gr.update()
        saved = self.conversations.settings(person(request))
        backend = saved.get("backend")
        return (
            self.conversation_list(request),
            gr.update(value=saved["top_k"]) if "top_k" in saved else gr.update(),
            gr.update(value=backend) if backend in self.backends else gr.update(),
        )

    def save_settings(self, top_k: float, backend: str, request: gr.Request | None = None) -> None:
        if self.conversations is not None:
            self.conversations.save_settings(person(request), top_k=int(top_k), backend=backend)

    # --- the controls: stop, regenerate, edit, copy, export, feedback -----------------------------------------
    def stopped(
        self, conversation: Conversation, request: gr.Request | None = None
    ) -> tuple[list[dict[str, str]], Conversation]:
        """The Stop button: the answer being written is marked as stopped (its text so far is kept, and
        saved) and its `respond` ends at its next piece.

        Not Gradio's `cancels=`: its cancel is a /cancel request for every run of the answering event in
        the session, sent by the page while it still counts the stopped answer as running. A question sent
        in that instant was skipped by the page, or cancelled by the /cancel arriving after it started
        (seen under load). Here nothing is cancelled: the next question waits for the stopped run to end
        (`trigger_mode="always_last"`), at most one streamed piece later."""
        turn = conversation.turns[-1] if conversation.turns else None
        if turn is not None and not turn.finished and not turn.error:
            turn.stop_requested = True
            turn.error = "Stopped. Ask again, regenerate, or edit the question."
            self._save(conversation, turn, request)
        return conversation.messages(), conversation

    def take_back_last(self, conversation: Conversation, request: gr.Request | None = None):
        """Regenerate / Edit: the last question leaves the conversation and goes back into the question
        box (Regenerate then sends it again at once). -> (chat, conversation, question box)."""
        if not conversation.turns:
            return conversation.messages(), conversation, gr.update()
        last = conversation.turns.pop()
        if self.conversations is not None and conversation.conversation_id:
            self.conversations.truncate(
                person(request), conversation.conversation_id, len(conversation.turns)
            )
        return conversation.messages(), conversation, last.question

    @staticmethod
    def last_answer_markdown(conversation: Conversation) -> str:
        answered = [turn for turn in conversation.turns if turn.answer is not None]
        return answer_markdown(answered[-1].answer) if answered else ""

    def export(self, conversation: Conversation, request: gr.Request | None = None) -> Any:
        """A Markdown file of the conversation (answers with numbered sources), offered for download."""
        if not conversation.turns:
            return gr.update(value=None, visible=False)
        folder = Path(tempfile.mkdtemp(prefix="rag-export-"))
        title = title_of(conversation.turns[0].question)
        path = folder / f"{_file_name(title)}.md"
        path.write_text(conversation_markdown(conversation, title), encoding="utf-8")
        return gr.update(value=str(path), visible=True)

    def feedback(self, conversation: Conversation, liked: gr.LikeData, request: gr.Request | None = None):
        """A thumb on an answer: kept with its question, answer and passages. -> (id, note, comment row)."""
        index = liked.index[0] if isinstance(liked.index, (list, tuple)) else liked.index
        position = int(index) // 2
        turn = conversation.turns[position] if 0 <= position < len(conversation.turns) else None
        if turn is None or turn.answer is None or self.conversations is None:
            return None, "", gr.update(visible=False)
        rating = "up" if liked.liked is True or liked.liked == "Like" else "down"
        feedback_id = self.conversations.save_feedback(
            person(request), conversation.conversation_id, position, rating, turn.answer
        )
        thanks = "Thanks: kept with the answer." if rating == "up" else "Thanks: kept for review."
        note = f'<div class="upload-note feedback-thanks">{thanks} Add a comment?</div>'
        return feedback_id, note, gr.update(visible=True)

    def comment(self, feedback_id: int | None, text: str, request: gr.Request | None = None):
        """-> (note, comment box, comment row)."""
        if self.conversations is None or feedback_id is None or not (text or "").strip():
            return gr.update(), gr.update(), gr.update()
        self.conversations.comment_feedback(person(request), feedback_id, text)
        note = '<div class="upload-note feedback-kept">Comment kept. Thank you.</div>'
        return note, "", gr.update(visible=False)

    @staticmethod
    def new_conversation() -> tuple[list[dict[str, str]], Conversation, str]:
        return [], Conversation(), ""

    @staticmethod
    def forget_conversation() -> tuple[list[dict[str, str]], Conversation]:
        return [], Conversation()

    @staticmethod
    def hide_extras() -> tuple[Any, str, Any]:
        """(export file, feedback note, comment row), hidden: they belong to the conversation shown, and
        stayed when another took its place (new, opened, cleared, deleted), offering the download of a
        deleted conversation and a comment on an answer no longer there."""
        return gr.update(value=None, visible=False), "", gr.update(visible=False)

    @staticmethod
    def extras_after_delete(conversation: Conversation) -> tuple[Any, Any, Any]:
        """After a delete: hidden when the open conversation was the one deleted (the chat is empty)."""
        return (
            ChatHandlers.hide_extras() if not conversation.turns else (gr.update(), gr.update(), gr.update())
        )

    @staticmethod
    def pick_example(example: gr.SelectData) -> str:
        value = example.value
        return value.get("text", "") if isinstance(value, dict) else str(value)

    # --- uploads (background jobs) -------------------------------------------------------------------------
    def start_upload(self, files: Any, collection: str, request: gr.Request | None = None):
        """-> (job id, upload message, file box, timer, add button, cancel button)."""
        owner = person(request)
        running = self.jobs.running(owner)
        if running is not None:
            message = _error_line("Your previous upload is still being indexed: wait for it or cancel it.")
            return running.job_id, message, gr.update(), gr.Timer(active=True), *_job_buttons(True)
        upload = check_uploads(self.settings, _uploaded_paths(files), collection)
        if not upload.accepted:  # nothing to index: answer at once, and empty the drop zone
            return (
                None,
                upload.refusals_html,
                gr.update(value=None),
                gr.Timer(active=False),
                *_job_buttons(False),
            )

        assistant, root = self.assistant_for(request), self.uploads_root(request)

        def work(job: Any) -> str:
            outcome = index_uploads(
                assistant,
                upload,
                on_progress=job.progress,
                cancel=job.cancel,
                in_subprocess=True,
                uploads_root=root,
            )
            return outcome.message_html

        user = self.user(request)
        lane = "shared" if user is None or user.is_admin else f"private:{user.name}"  # the index written
        job = self.jobs.start(owner, [p.name for p in upload.accepted], work, lane=lane)
        job.note_html = upload.refusals_html  # kept above the progress (it went at the first update)
        # The drop zone is emptied at once: a rejected file left there would be sent again with the next one.
        return (
            job.job_id,
            job.note_html + render_job(job),
            gr.update(value=None),
            gr.Timer(active=True),
            *_job_buttons(True),
        )

    def poll_upload(self, job_id: str | None, backend: str, request: gr.Request | None = None):
        """-> (job id, upload message, timer, add button, cancel button, collection, banner, index info)."""
        job = self.jobs.get(job_id, person(request))
        if job is None:
            return (
                None,
                gr.update(),
                gr.Timer(active=False),
                *_job_buttons(False),
                gr.update(),
                gr.update(),
                gr.update(),
            )
        if not job.finished:
            return (
                job_id,
                job.note_html + render_job(job),
                gr.update(),
                *_job_buttons(True),
                gr.update(),
                gr.update(),
                gr.update(),
            )
        choices = existing_collections(self.uploads_root(request))
        return (
            None,
            job.result_html,
            gr.Timer(active=False),
            *_job_buttons(False),
            gr.update(choices=choices),
            *self.page_info(backend, request),
        )

    def cancel_upload(self, job_id: str | None, request: gr.Request | None = None) -> str:
        if self.jobs.cancel(job_id, person(request)):
            return '<div class="upload-note">Cancelling… the index stays as it was.</div>'
        return gr.update()


def _resolve_annotations(handlers: type) -> None:
    """Gradio reads an event function's type hints at every call (`typing.get_type_hints`, to find its
    `gr.Request` parameter); this module's annotations are strings (`from __future__ import annotations`),
    so every call evaluated them all again: 0.39 ms against 0.08 ms once resolved, and 40 of ~1,500 samples
    of the server under 50 streaming sessions (py-spy, `eval.benchmarks.concurrency`). Resolved once here;
    a function whose hints name something imported for type checking only is left as it is."""
    for member in vars(handlers).values():
        function = member.__func__ if isinstance(member, staticmethod) else member
        if callable(function) and hasattr(function, "__annotations__"):
            with contextlib.suppress(NameError, TypeError):
                function.__annotations__ = typing.get_type_hints(function)


def _reopened(saved: SavedTurn) -> Turn:
    """A kept turn as a live one: its `Answer` rebuilt (export, feedback, history work on it as before). A
    turn without one (stopped, failed) shows the HTML it was shown with: rendered again from the store, a
    stopped answer lost the text written before Stop (the store keeps no text without an answer)."""
    answer = Answer.from_dict(json.loads(saved.answer_json)) if saved.answer_json else None
    return Turn(
        saved.question,
        saved.answer_text or "",
        answer=answer,
        error=saved.error,
        saved_html=None if answer is not None else saved.answer_html,
    )


def _cores() -> int:
    """CPU cores this process may use (its affinity, e.g. a container's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _file_name(title: str) -> str:
    return re.sub(r"[^\w-]+", "-", title).strip("-")[:50] or "conversation"


def person(request: gr.Request | None) -> str:
    """Whose question, upload or conversation this is: the logged-in user; without a login, the browser
    (`browser:<id>`, the id it keeps, see `BROWSER_ID_SCRIPT`: its conversations are found again after a
    reload or a restart, and another browser has its own); a client without that id (gradio_client, a
    script): its session."""
    if request is None:
        return "local"
    username = getattr(request, "username", None)
    if username:
        return username
    browser = browser_id(request)
    if browser:
        return f"browser:{browser}"  # never a user name: those have no ':'
    return getattr(request, "session_hash", None) or "local"


def browser_id(request: gr.Request) -> str | None:
    """The id the page's script keeps in the browser and sends as the `rag_browser` cookie; None when
    absent or not one (a forged value is only ever a key to its own, new, empty list)."""
    headers = getattr(request, "headers", None)
    raw = headers.get("cookie") if headers is not None else None
    if not raw:
        return None
    cookies = SimpleCookie()
    try:
        cookies.load(raw)
    except CookieError:
        return None
    morsel = cookies.get(BROWSER_COOKIE)
    return morsel.value if morsel is not None and _BROWSER_ID.match(morsel.value) else None


def _shorten(question: str, limit: int = 80) -> str:
    """A refused question as the chat shows it: its start and its length. (At 300 characters it took twelve
    lines of a phone's chat and pushed the message saying why under the question box.)"""
    return question if len(question) <= limit else question[:limit] + f"… ({len(question):,} characters)"


def _job_buttons(running: bool) -> tuple[Any, Any]:
    """(Add button, Cancel button): one indexing job per person at a time."""
    return gr.update(interactive=not running), gr.update(visible=running)


def render_job(job: Any) -> str:
    """The progress of an indexing job: stage, counts and a progress bar (escaped file names)."""
    label, unit = STAGES.get(job.stage, ("Indexing", "files"))
    if job.state == "queued":
        uploads = f"{job.ahead} upload{'s' if job.ahead != 1 else ''}"
        label, counts, value = f"Waiting: {uploads} into this index ahead of yours", "", ""
    elif job.state == "waiting" or not job.total:
        label, counts, value = (label if job.state != "waiting" else "Starting"), "", ""
    else:
        counts = f" {job.done:,}/{job.total:,} {unit}"
        value = f' value="{job.done}" max="{job.total}"'
    names = render.escape_text(", ".join(job.files[:5]) + (" …" if len(job.files) > 5 else ""))
    elapsed = time.monotonic() - job.started
    return (
        f'<div class="upload-job" data-state="{job.state}"><div class="upload-note">{label}{counts} · '
        f"{elapsed:.0f} s · {names}</div>"
        f'<progress class="upload-progress"{value} aria-label="{label}{counts}"></progress>'
        '<div class="upload-note">Questions are answered meanwhile, from the documents already indexed.</div></div>'
    )


# --- the page: layout builders, then the wiring -------------------------------------------------------------


@dataclass
class _ChatColumn:
    """The conversation, the question box and the actions under it."""

    chatbot: gr.Chatbot
    question: gr.Textbox
    new_chat: gr.Button
    regenerate: gr.Button
    edit_last: gr.Button
    copy: gr.Button
    export: gr.Button
    copy_text: gr.Textbox
    export_file: gr.File
    feedback_id: gr.State
    feedback_note: gr.HTML
    comment_row: gr.Row
    comment_box: gr.Textbox
    send_comment: gr.Button


@dataclass
class _ConversationList:
    """A person's saved conversations: open, rename, delete."""

    saved: gr.Dropdown
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button


@dataclass
class _SettingsPanel:
    top_k: gr.Slider
    backend: gr.Dropdown
    model: gr.Markdown


@dataclass
class _UploadPanel:
    collection: gr.Dropdown
    files: gr.File
    add: gr.Button
    cancel: gr.Button
    result: gr.HTML
    poll: gr.Timer


@dataclass
class _Page:
    """Every component an event reads or writes; made by `_layout`, wired by `_wire`."""

    conversation: gr.State
    upload_job: gr.State
    account: gr.HTML
    banner: gr.HTML
    index_info: gr.HTML
    chat: _ChatColumn
    conversations: _ConversationList
    settings: _SettingsPanel
    uploads: _UploadPanel


def build_app(
    assistant: Assistant,
    *,
    examples: Sequence[str] = EXAMPLES,
    accounts: Accounts | None = None,
    conversations: ConversationStore | None = None,
) -> gr.Blocks:
    """The chat page over `assistant` (see the module docstring). Launch it with `serve` (with
    `auth=accounts.authenticate` when `accounts` are given: then each user has a private collection).
    With `conversations`, each person's conversations and settings are kept and listed."""
    handlers = ChatHandlers(assistant, accounts, conversations)
    with gr.Blocks(title="Ask your documents", analytics_enabled=False) as demo:
        page = _layout(handlers, examples, keeps_conversations=conversations is not None)
        _wire(demo, page, handlers, keeps_conversations=conversations is not None)
    demo.ui_settings = handlers.settings.ui  # read by `serve`: thread and upload size limits
    skip_monitoring_summary(demo)
    poll_queue_less_often(demo)
    return demo


def skip_monitoring_summary(demo: gr.Blocks) -> None:
    """Gradio's queue recomputes the summary of its monitoring dashboard after every event: a pandas
    DataFrame of the last events (up to 10,000), grouped, with percentiles; 2.4 ms of the server's CPU per
    question with 150 events kept, 10 ms with 10,000, so a chat running for a day paid it on every answer,
    under the interpreter lock every session's work shares. The dashboard is never shown here (`launch`
    without `enable_monitoring`): the summary is not recomputed and one event's record is kept (the
    queue's own hooks, also settable as GRADIO_ANALYTICS_CACHE_FREQUENCY / GRADIO_ANALYTICS_MAX_EVENTS)."""
    queue = getattr(demo, "_queue", None)
    if queue is None or not hasattr(queue, "ANAYLTICS_CACHE_FREQUENCY"):  # (Gradio's spelling)
        log.debug("Gradio's queue has no monitoring summary to skip")
        return
    queue.ANAYLTICS_CACHE_FREQUENCY = sys.maxsize
    queue.ANALYTICS_MAX_EVENTS = 1


# How often Gradio's queue looks for new events while it has none (Gradio: every 1 ms) and for progress to
# send (every 10 ms), in seconds. Both loops run on the event loop every session's requests and messages go
# through, all the time: an idle server used 5.2 % of a core (this machine), 2.4 % with these, for at most
# 5 ms more before a question that finds the queue empty starts (a burst is taken without waiting). No
# event here reports progress (`gr.Progress`): uploads are polled by the page.
QUEUE_POLL_S, PROGRESS_POLL_S = 0.005, 0.05


def poll_queue_less_often(demo: gr.Blocks) -> None:
    queue = getattr(demo, "_queue", None)
    if queue is None or not hasattr(queue, "sleep_when_free"):
        log.debug("Gradio's queue has no polling interval to set")
        return
    queue.sleep_when_free = QUEUE_POLL_S
    queue.progress_update_sleep_when_free = PROGRESS_POLL_S


def _layout(handlers: ChatHandlers, examples: Sequence[str], *, keeps_conversations: bool) -> _Page:
    """The page's components, in place, inside the open `gr.Blocks`: header, chat column, side column."""
    conversation = gr.State(Conversation())
    upload_job = gr.State(None)
    with gr.Row(elem_classes="header-row"):
        gr.HTML(
            '<div class="app-title">Ask your documents</div>'
            '<div class="app-subtitle">Answers cite the passages they come from. '
            "Posez vos questions en français ou dans une autre langue&nbsp;: la réponse suit la langue de la question.</div>",
            elem_classes="header",
            js_on_load=None,
        )
        # Who is signed in, at the right of the title (filled on load; empty without a login, when the
        # stylesheet collapses it: an empty block kept its padding and gaps, a 62 px band above the banner).
        # With logins its room is kept from the first paint ("account-slot"): the subtitle re-wrapped and
        # the page moved down when the line arrived.
        account = gr.HTML(
            "",
            elem_id="account",
            elem_classes="account-slot" if handlers.accounts is not None else None,
            js_on_load=None,
            scale=0,
        )
    banner, info = handlers.page_info(handlers.default_backend)
    banner_html = gr.HTML(banner, elem_id="mode-banner", js_on_load=None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=7, min_width=420):
            chat = _chat_column(examples, with_feedback=keeps_conversations)
        with gr.Column(scale=3, min_width=260, elem_classes="side"):
            listed = _conversation_list(visible=keeps_conversations)
            index_info = gr.HTML(info, elem_id="index-info", js_on_load=None)
            settings = _settings_panel(handlers)
            uploads = _upload_panel(handlers.settings)
    return _Page(conversation, upload_job, account, banner_html, index_info, chat, listed, settings, uploads)


def _chat_column(examples: Sequence[str], *, with_feedback: bool) -> _ChatColumn:
    chatbot = gr.Chatbot(
        elem_id="chat",
        show_label=False,
        height="60vh",
        layout="panel",
        autoscroll=False,  # CHAT_SCROLL_SCRIPT shows each new question at the top instead
        latex_delimiters=[],
        buttons=[],
        # Thumbs on answers, kept with the question, the answer and its passages (needs the store).
        feedback_options=("Like", "Dislike") if with_feedback else None,
        placeholder=(
            "**Ask a question about your documents.**<br>"
            "Each answer links its claims [1] to the passages below it."
        ),
        examples=[{"text": text} for text in examples],
    )
    # Everything under the chat is one bar: on a phone it is fixed to the bottom of the view (app.css), so
    # the actions, the export and the feedback box stay in reach instead of behind the question box.
    with gr.Column(elem_classes="ask-bar"):
        with gr.Row(elem_classes="ask-row"):
            question = gr.Textbox(
                elem_id="question",
                show_label=False,
                placeholder="Votre question… / Your question…",  # one line on a phone (390 px)
                lines=1,
                max_lines=6,
                scale=8,
                submit_btn="Ask",
                stop_btn="Stop",
                # Typing asks at once (keyboard users tabbed through the banner and four examples first).
                autofocus=True,
            )
        # Shown by QUESTION_HINT_SCRIPT when Ask or Enter is pressed with nothing typed (nothing was sent and
        # nothing said): what to do, under the box, without a dialog.
        gr.HTML(
            '<div class="question-hint" role="status">Type your question in the box first, then press Enter '
            "or Ask. / Écrivez d'abord votre question.</div>",
            elem_id="question-hint",
            js_on_load=None,
        )
        with gr.Row(elem_classes="chat-actions"):
            new_chat = gr.Button(
                "New conversation",
                elem_id="new-conversation",
                size="sm",
                variant="secondary",
                scale=0,
            )
            regenerate = gr.Button("Regenerate", elem_id="regenerate", size="sm", scale=0)
            edit_last = gr.Button("Edit last question", elem_id="edit-last", size="sm", scale=0)
            copy = gr.Button("Copy answer", elem_id="copy-answer", size="sm", scale=0)
            export = gr.Button("Export (Markdown)", elem_id="export", size="sm", scale=0)
        copy_text = gr.Textbox(visible=False)
        export_file = gr.File(label="Conversation (Markdown)", elem_id="export-file", visible=False)
        feedback_id = gr.State(None)
        feedback_note = gr.HTML("", elem_id="feedback-note", js_on_load=None)
        with gr.Row(visible=False, elem_id="feedback-comment-row") as comment_row:
            comment_box = gr.Textbox(
                elem_id="feedback-comment",
                show_label=False,
                placeholder="What was right or wrong? (optional)",
                scale=6,
            )
            send_comment = gr.Button("Send comment", elem_id="send-comment", size="sm", scale=1)
    return _ChatColumn(
        chatbot, question, new_chat, regenerate, edit_last, copy, export, copy_text, export_file,
        feedback_id, feedback_note, comment_row, comment_box, send_comment,
    )  # fmt: skip


def _conversation_list(*, visible: bool) -> _ConversationList:
    with gr.Accordion("Your conversations", open=True, elem_id="history", visible=visible):
        saved = gr.Dropdown(
            choices=[],
            value=None,
            label="Open a past conversation",
            elem_id="conversations",
            interactive=True,
        )
        title = gr.Textbox(
            label="Title",
            elem_id="conversation-title",
            placeholder="Rename the open conversation",
        )
        with gr.Row():  # side by side (each took a full line of the narrow column)
            rename = gr.Button("Rename", size="sm", elem_id="rename-conversation", min_width=80)
            delete = gr.Button(
                "Delete", size="sm", variant="stop", elem_id="delete-conversation", min_width=80
            )
    return _ConversationList(saved, title, rename, delete)


def _settings_panel(handlers: ChatHandlers) -> _SettingsPanel:
    backends, default_backend = handlers.backends, handlers.default_backend
    with gr.Accordion("Settings", open=True, elem_id="settings"):
        top_k = gr.Slider(
            *TOP_K_RANGE,
            value=handlers.settings.retrieval.top_k,
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
        model = gr.Markdown(handlers.model_note(default_backend), elem_id="model-note", elem_classes="hint")
        gr.Markdown(
            "The answer is written in the language of the question.",
            elem_classes="hint",
        )
    return _SettingsPanel(top_k, backend, model)


def _upload_panel(settings: Settings) -> _UploadPanel:
    extensions = list(settings.index.extensions)
    with gr.Accordion("Add documents", open=False, elem_id="upload"):
        collection = gr.Dropdown(
            choices=existing_collections(Path(settings.ui.uploads_dir)),
            value=DEFAULT_COLLECTION,
            allow_custom_value=True,
            label="Collection (a folder of your uploads)",
            elem_id="collection",
        )
        files = gr.File(
            file_count="multiple",
            label=f"Files ({' '.join(extensions)}; up to {settings.ui.max_upload_files} "
            f"files of {settings.ui.max_upload_mb:g} MB)",
            elem_id="files",
        )
        with gr.Row():
            add = gr.Button("Add to the index", variant="primary", elem_id="add-documents")
            cancel = gr.Button("Cancel indexing", variant="stop", elem_id="cancel-indexing", visible=False)
        result = gr.HTML("", elem_id="upload-result", js_on_load=None)
        poll = gr.Timer(1.0, active=False)
    return _UploadPanel(collection, files, add, cancel, result, poll)


def _wire(demo: gr.Blocks, page: _Page, handlers: ChatHandlers, *, keeps_conversations: bool) -> None:
    """Every event of the page -> a `ChatHandlers` method (instant ones skip the queue)."""
    _wire_chat(page, handlers, with_feedback=keeps_conversations)
    _wire_side(page, handlers)
    _wire_uploads(page, handlers)
    # Counts and mode can change after another session's upload: refresh them for each new page.
    backend, listed = page.settings.backend, page.conversations
    demo.load(
        handlers.page_info, backend, [page.banner, page.index_info], queue=False, show_progress="hidden"
    )
    demo.load(handlers.account_line, None, page.account, queue=False, show_progress="hidden")
    demo.load(
        handlers.load_person,
        None,
        [listed.saved, page.settings.top_k, backend],
        queue=False,
        show_progress="hidden",
    )


def _wire_chat(page: _Page, handlers: ChatHandlers, *, with_feedback: bool) -> None:
    """Asking (typed, example, regenerate), stopping, the actions under the chat, thumbs and comments."""
    chat, saved, title = page.chat, page.conversations.saved, page.conversations.title
    chat_outputs = [chat.chatbot, page.conversation, chat.question]
    answer = {  # typing a question and clicking an example answer the same way
        "fn": _page_answers(handlers, chat.chatbot),
        "inputs": [chat.question, page.conversation, page.settings.top_k, page.settings.backend],
        # The values as the page sends them (a text, a number, a choice): Gradio's preprocessing would
        # only check them, each in a worker thread of its own, three thread hand-offs per question
        # through the event loop every answer shares; `respond` checks them (`choice_problem`).
        "preprocess": False,
        # And the values as the page takes them, made in the answer's own thread (`_page_answers`).
        "postprocess": False,
        "outputs": [*chat_outputs, saved],  # the list with the answer, not in an event after it
        "concurrency_id": "answers",
        "concurrency_limit": handlers.settings.ui.max_concurrent_answers,
        "show_progress": "minimal",
        "show_progress_on": chat.chatbot,
    }
    # A question sent while an answer is being written (or stopped, see `stopped`) is sent when it ends.
    chat.question.submit(**answer, api_name="ask", trigger_mode="always_last")  # gradio_client: /ask
    chat.chatbot.example_select(handlers.pick_example, None, chat.question, queue=False).then(
        **answer, api_visibility="private"
    )
    extras = [chat.export_file, chat.feedback_note, chat.comment_row]  # of the conversation shown
    # (One step after it, not two: each is a request of its own.)
    chat.new_chat.click(handlers.new_conversation, None, chat_outputs, queue=False).then(
        lambda: (None, "", *handlers.hide_extras()), None, [saved, title, *extras], queue=False
    )
    saved.input(
        handlers.open_conversation, saved, [chat.chatbot, page.conversation, title], queue=False
    ).then(handlers.hide_extras, None, extras, queue=False)
    # Rename and Delete active or not, the Title box filled: in the page (CONVERSATION_ACTIONS_SCRIPT).
    saved.change(None, saved, None, js=CONVERSATION_SELECTED_JS)
    chat.regenerate.click(
        handlers.take_back_last, page.conversation, chat_outputs, queue=False, show_progress="hidden"
    ).then(**answer, api_visibility="private")
    chat.question.stop(handlers.stopped, page.conversation, [chat.chatbot, page.conversation], queue=False)
    chat.edit_last.click(
        handlers.take_back_last, page.conversation, chat_outputs, queue=False, show_progress="hidden"
    )
    chat.copy.click(handlers.last_answer_markdown, page.conversation, chat.copy_text, queue=False).then(
        None, chat.copy_text, None, js="(text) => { navigator.clipboard.writeText(text); return []; }"
    )
    chat.export.click(handlers.export, page.conversation, chat.export_file, queue=False)
    if with_feedback:  # thumbs need the store (and a like listener without them breaks the page)
        chat.chatbot.like(
            handlers.feedback,
            page.conversation,
            [chat.feedback_id, chat.feedback_note, chat.comment_row],
            queue=False,
        ).then(  # the comment box it opens, brought into view (at 1280x860 it opened below the fold)
            None, js=f"() => {{ {_SCROLL_TO_COMMENT_JS} {_NOTE_AGAIN_JS} return []; }}"
        )
    chat.send_comment.click(
        handlers.comment,
        [chat.feedback_id, chat.comment_box],
        [chat.feedback_note, chat.comment_box, chat.comment_row],
        queue=False,
    )
    # The Chatbot's own trash button clears the display (at once, in the page): forget the conversation
    # with it. The question box is left alone: emptied by this event's reply, it lost what was typed
    # meanwhile (a question sent right after was sent empty).
    chat.chatbot.clear(
        handlers.forget_conversation, None, [chat.chatbot, page.conversation], queue=False
    ).then(handlers.hide_extras, None, extras, queue=False)


# The note under a thumb goes after 4 s on a phone (app.css): a second thumb gave the same note, which Gradio
# left in place, its animation over (hidden): the note's animation starts again with each thumb.
_NOTE_AGAIN_JS = (
    "requestAnimationFrame(() => { const note = document.querySelector('#feedback-note .upload-note');"
    " if (note) { note.style.animation = 'none'; void note.offsetHeight; note.style.animation = ''; } });"
)
_SCROLL_TO_COMMENT_JS = (
    "requestAnimationFrame(() => document.querySelector('#feedback-comment')"
    "?.scrollIntoView({block: 'nearest', behavior: 'smooth'}));"
)


def _page_answers(handlers: ChatHandlers, chatbot: gr.Chatbot) -> Callable[..., Iterator[tuple]]:
    """`ChatHandlers.respond` as the answer event runs it (`postprocess=False`): each update's chat is made
    into the Chatbot's payload in the answer's worker thread, where Gradio's postprocessing sent it and the
    question box's value each to a worker thread of their own, through the event loop every session's
    messages wait on. A conversation list left as the page shows it (its conversation selected in it) is
    sent as that selection: an update that only keeps it rebuilt the dropdown on the event loop (a new
    component and its config, ~1-2 ms per answer under 50 sessions; py-spy)."""

    def answer(
        question: Any, conversation: Conversation, top_k: Any, backend: Any, request: gr.Request
    ) -> Iterator[tuple]:
        for chat, state, box, listed in handlers.respond(question, conversation, top_k, backend, request):
            if listed is LIST_KEPT and conversation.first_in_list and conversation.conversation_id:
                listed = conversation.conversation_id
            yield chatbot.postprocess(chat).model_dump(), state, box, listed

    answer.__annotations__ = typing.get_type_hints(answer)  # resolved once (see `_resolve_annotations`)
    return answer


def _wire_side(page: _Page, handlers: ChatHandlers) -> None:
    """The conversation list (rename, delete) and the settings (saved per person; the backend's model)."""
    listed, settings = page.conversations, page.settings
    listed.rename.click(handlers.rename_conversation, [listed.saved, listed.title], listed.saved, queue=False)
    listed.delete.click(
        handlers.delete_conversation,
        [listed.saved, page.conversation],
        [listed.saved, page.chat.chatbot, page.conversation, listed.title],
        queue=False,
    ).then(
        handlers.extras_after_delete,
        page.conversation,
        [page.chat.export_file, page.chat.feedback_note, page.chat.comment_row],
        queue=False,
    )
    for control in (settings.top_k.release, settings.backend.input):
        control(
            handlers.save_settings,
            [settings.top_k, settings.backend],
            None,
            queue=False,
            show_progress="hidden",
        )
    settings.backend.change(
        handlers.on_backend_change,
        settings.backend,
        [page.banner, settings.model],
        queue=False,
        show_progress="hidden",
    )


def _wire_uploads(page: _Page, handlers: ChatHandlers) -> None:
    """Starting, polling and cancelling an upload job are instant; the indexing runs in the background."""
    uploads = page.uploads
    uploads.add.click(
        handlers.start_upload,
        [uploads.files, uploads.collection],
        [page.upload_job, uploads.result, uploads.files, uploads.poll, uploads.add, uploads.cancel],
        queue=False,
        show_progress="hidden",
        api_name="add_documents",
    )
    uploads.poll.tick(
        handlers.poll_upload,
        [page.upload_job, page.settings.backend],
        [
            page.upload_job, uploads.result, uploads.poll, uploads.add, uploads.cancel, uploads.collection,
            page.banner, page.index_info,
        ],
        queue=False,
        show_progress="hidden",
        api_name="upload_progress",
    )  # fmt: skip
    uploads.cancel.click(
        handlers.cancel_upload, page.upload_job, uploads.result, queue=False, show_progress="hidden"
    )


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
        # Controls a person can see (WCAG 1.4.11, 3:1 against the card): Soft draws inputs with a near-white
        # border on white and secondary buttons white on white; a destructive button (Delete, Cancel indexing)
        # looked like every other one.
        input_border_width="1px",  # (Soft: 0, and buttons take the same width)
        input_border_color="*neutral_500",
        input_border_color_dark="*neutral_400",
        button_secondary_border_color="*neutral_500",
        button_secondary_border_color_dark="*neutral_400",
        button_cancel_text_color="#b91c1c",  # (the theme's names reach only its three hues: red-700/200/300)
        button_cancel_text_color_dark="#fecaca",
        button_cancel_border_color="#b91c1c",
        button_cancel_border_color_dark="#fca5a5",
        # Under the pointer too: Soft's hover fill for them is the secondary one (indigo-500 in dark mode,
        # the primary action's colour; slate with a pale border in light mode, the red border gone).
        button_cancel_background_fill_hover="#fef2f2",
        button_cancel_background_fill_hover_dark="#7f1d1d",
        button_cancel_border_color_hover="#b91c1c",
        button_cancel_border_color_hover_dark="#fca5a5",
        button_cancel_text_color_hover="#991b1b",
        button_cancel_text_color_hover_dark="#fee2e2",
    )


def serve(
    demo: gr.Blocks,
    host: str,
    port: int,
    *,
    block: bool = True,
    quiet: bool = False,
    auth: Callable[[str, str], bool] | None = None,
) -> str:
    """Start the page on host:port and return its URL. `block=False` returns at once (tests, scripts).
    `auth(name, password) -> bool`: a login page comes first (Gradio's)."""
    ui_settings = getattr(demo, "ui_settings", None)  # set by build_app
    choose_plot_backend()
    blas_on_one_thread()
    max_answers = ui_settings.max_concurrent_answers if ui_settings else 64
    try:
        _, url, _ = demo.launch(
            # Answers run in worker threads: enough of them for the answers allowed at once, plus the quick events.
            max_threads=max(40, max_answers + 8),
            max_file_size=f"{int(ui_settings.max_upload_mb * 1_000_000)}b" if ui_settings else None,
            auth=auth,
            auth_message=LOGIN_MESSAGE,
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,  # blocked below, once the server's stack is logged
            theme=theme(),
            css_paths=[CSS_PATH],
            ssr_mode=False,
            show_error=True,
            quiet=quiet,
            footer_links=[],
            # Gradio 6 records every run of a public endpoint (`/ask`): a task on the event loop per
            # question, and the page keeps each run's inputs and outputs (the whole chat) in the browser's
            # storage for a "runs" page this app does not link. Conversations are kept by the app
            # (`ui.conversations`), per person.
            run_history=False,
            head=BROWSER_ID_SCRIPT
            + CHAT_SCROLL_SCRIPT
            + QUESTION_HINT_SCRIPT
            + ASK_BAR_SCRIPT
            + PASSAGE_SCRIPT
            + CONVERSATION_ACTIONS_SCRIPT,
        )
    except OSError as exc:  # taken between `check_port` and here, or `serve` called alone
        if "Cannot find empty port" in str(exc):
            raise port_in_use(host, port) from None
        raise
    log.info("Serving with %s", served_stack(demo))
    if block:
        demo.block_thread()
    return url


def served_stack(demo: gr.Blocks, timeout_s: float = 5.0) -> str:
    """The event loop and HTTP parser the running server really uses, e.g. "uvloop + httptools" (uvicorn
    picks them when installed: `loop="auto"`, `http="auto"`, which Gradio does not pin): read from the
    protocol object of a connection made to it now. Each answer's SSE events go through both, on the one
    event loop every session shares; "asyncio + h11" (pure Python) costs more of that loop per event."""
    server = getattr(demo, "server", None)
    if server is None or not getattr(server, "started", False):
        return "not serving"
    config, state = server.config, server.server_state
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    with socket.create_connection((host, config.port), timeout=timeout_s):
        waited = time.monotonic() + timeout_s
        while not state.connections and time.monotonic() < waited:
            time.sleep(0.01)
        protocols = list(state.connections)
    if not protocols:
        return "unknown (no connection seen)"
    protocol = protocols[0]
    loop = type(getattr(protocol, "loop", None)).__module__.split(".")[0]
    parser = {"HttpToolsProtocol": "httptools", "H11Protocol": "h11"}.get(
        type(protocol).__name__, type(protocol).__name__
    )
    return f"{loop} + {parser}"


def port_in_use(host: str, port: int) -> RagError:
    return RagError(
        f"Port {port} on {host} is already in use (another `rag chat`, or another server). Start this chat "
        f"on another port with `rag chat --port {port + 1 if port < 65535 else 8000}` (setting ui.port), "
        "or stop the server that uses it."
    )


def check_port(settings: Settings) -> None:
    """Refuse at once, before any indexing, a `ui.host`:`ui.port` this chat cannot listen on, with the fix
    (Gradio's own check ends in an OSError traceback, after the index was built)."""
    host, port = settings.ui.host, settings.ui.port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: not TIME_WAIT
            probe.bind(address)
    except socket.gaierror as exc:
        raise RagError(
            f"Cannot listen on host {host!r}: {exc.strerror}. Give an address of this machine with --host "
            "(127.0.0.1 for this machine only, 0.0.0.0 for every network)."
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(host, port) from None
        if exc.errno == errno.EACCES:
            raise RagError(
                f"Port {port} needs administrator rights here. Use a port above 1023, e.g. `rag chat --port "
                "7860`."
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise RagError(
                f"{host} is not an address of this machine. Give one of its addresses with --host "
                "(127.0.0.1 for this machine only, 0.0.0.0 for every network)."
            ) from None
        raise RagError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None


def choose_plot_backend() -> None:
    """Gradio runs every event inside `utils.MatplotlibBackendMananger`, which asks matplotlib for its
    backend; with none chosen that imports pyplot, inside the first event after a start: the first questions
    waited 2.3 s for it together (py-spy, `eval.benchmarks.concurrency`). The chat draws no plots: the
    non-interactive backend is chosen once, before serving (matplotlib is Gradio's optional dependency)."""
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("agg")


def blas_on_one_thread() -> None:
    """numpy's BLAS (OpenBLAS) on one thread in the serving process, for good. Answers run side by side, one
    per core (`cpu_gate`), and their products are small (a question's vector against a passage's windows):
    OpenBLAS shared each between its threads, which wait for each other and spin after it on a busy machine.
    `ask` on PIAF, 60 dev questions, load ~8, with OPENBLAS_NUM_THREADS=1 against without, alternated: hybrid
    median 85.9, 129.0 -> 76.0, 72.7 ms, evidence stage 19.2, 16.9 -> 13.9, 14.2 ms. Indexing runs in child
    processes with threads of their own (`rag.assistant`)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def check_login(settings: Settings) -> Accounts | None:
    """The accounts when logins are on (`ui.auth`, by default whenever `ui.host` is not loopback), None
    when off. Refuses to start a chat that needs a login while there is nobody to log in."""
    if not auth_required(settings.ui.host, settings.ui.auth):
        return None
    accounts = Accounts(Database(settings.ui.database))
    if not accounts.users():
        raise RagError(
            f"The chat on {settings.ui.host} is reachable from other machines, so it needs a login, and "
            f"there is no user in {settings.ui.database} yet. Create one with: rag users add NAME --admin "
            "(or listen on 127.0.0.1 with --host 127.0.0.1)."
        )
    return accounts


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
    check_port(settings)  # before opening or building anything
    if assistant is None:
        from rag import build_assistant, open_assistant

        if paths:
            assistant = build_assistant(list(paths), settings, on_progress=on_progress)
        else:
            assistant = open_assistant(settings)
    accounts = check_login(settings)
    conversations = ConversationStore(Database(settings.ui.database))
    demo = build_app(assistant, accounts=accounts, conversations=conversations)
    login = f", login required ({len(accounts.users())} users)" if accounts else ""
    print(
        f"Chat on http://{settings.ui.host}:{settings.ui.port} (index: {assistant.status()['index_dir']}{login})",
        flush=True,
    )
    return serve(
        demo,
        settings.ui.host,
        settings.ui.port,
        block=block,
        auth=accounts.authenticate if accounts else None,
    )


_resolve_annotations(ChatHandlers)  # at the end: every name of the module is defined
