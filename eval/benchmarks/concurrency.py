"""Many people asking at once: latency of the chat under 1, 10, 25, 50 simultaneous sessions.

A benchmark script (prints figures, asserts nothing). It starts the chat server in a child process (so the
clients' own work does not share the server's interpreter), over seeds/ as `rag chat` serves it, and drives
it with `gradio_client`: one `Client` per session (its own server-side session), all sessions released at
once. Each session asks a question, a follow-up that leans on it, and a third question, one after the
other; every question is timed from submit to final answer, and to its first streamed token.

Scenarios, each printed as p50/p95/max and errors per session count:
- extractive backend, lexical mode and hybrid mode (--embedding-model, default the e5-small folder);
- the openai backend against a loopback OpenAI-compatible server that streams slowly (--tokens-per-s,
  default 20): time to first token is the figure that matters there, and where it goes is printed stage by
  stage (`stage_trace`: queue, condense, retrieval, the model's first piece, the page update, delivery);
  --llm-rewrite always,when_unsure runs it with both ways of searching follow-ups, side by side;
- an upload being indexed (a background job in the server's child process) while 10 sessions ask, again
  and again: blocks of --upload-block-s seconds take turns, the indexing child stopped (SIGSTOP: the
  baseline) or running, as the product starts it and under the other priorities of --upload-priorities
  (SCHED_IDLE, nice 19), so that the states share the machine's moments. A question counts for the block
  it began and ended in. Printed per state: p50 / p95 and the p50 added against the stopped blocks, with a
  95 % interval from resampling whole blocks (the base p50 is ~0.2 s: one run's ratio is mostly noise).

Every round is bounded (--round-limit, default 300 s): questions still unanswered then are cancelled and
counted as errors. Sessions waiting for a streamed (LLM) answer look at it every 20 ms (`gradio_client`'s own
iterator spins every millisecond in each of the 50 threads, which took CPU from the server it measured);
an extractive answer is one update, waited for without looking (`ask_timed`).

Old and new code side by side: `--server-code OLD,.,OLD,.` serves each round from the checkout named (OLD:
e.g. `git archive COMMIT | tar -x -C OLD`), alternated in one run, so both share the machine's moments.

Isolation is checked for every session: its final chat shows only its own questions (each one tagged with
the session's number) and no other session's text (`isolation`); a question past the round's time limit is
counted as a timeout, and a chat missing a question that was answered is counted apart, not as a leak.

    python -m eval.benchmarks.concurrency [--sessions 1,10,25,50] [--modes lexical,hybrid] [--no-llm]
        [--round-limit 300] [--upload-chars 200000] [--llm-rewrite always,when_unsure] [--server-code OLD,.]
    (the slow-LLM scenario alone: --modes "")
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from eval.benchmarks import cpu_stages, stage_trace

REPO = Path(__file__).resolve().parents[2]
DEFAULT_E5 = "/root/.cache/rag-fr/e5-small"
DEFAULT_PIAF = REPO.parent / "shared" / "bench" / "piaf"
QUESTIONS = [  # (question, follow-up leaning on it, third question)
    (
        "Quelle est la valorisation d'OpenAI ?",
        "Et qui est son principal investisseur ?",
        "Qui est Sam Altman ?",
    ),
    (
        "Sam Altman possède-t-il des parts d'OpenAI ?",
        "Pourquoi a-t-il fait ce choix ?",
        "Quels sont les défis financiers d'OpenAI ?",
    ),
    ("What financial challenges does OpenAI face?", "And who pays for them?", "Who runs OpenAI?"),
    (
        "Comment fonctionne le partenariat avec Microsoft ?",
        "Et combien a-t-il investi ?",
        "Quelle est la mission d'OpenAI ?",
    ),
]
SLOW_ANSWER = (
    "D'après les documents, OpenAI est valorisée à 80 milliards de dollars et Microsoft en est le principal "
    "investisseur, avec des milliards injectés dans l'infrastructure et les crédits de calcul [1]."
)


# --- a slow OpenAI-compatible server on 127.0.0.1 ---------------------------------------------------------
_FOLLOW_UP = re.compile(r"(?:Follow-up|Question de suite|Folgefrage)\s*:\s*(.+)")
_ASKED = re.compile(r"^(?:User|Utilisateur|Nutzer)\s*:\s*(.+)$", re.MULTILINE)


def slow_rewrite(prompt: str) -> str:
    """The fake model's standalone question for a condense prompt: the follow-up with the subject of the
    previous question, about as long as a real rewrite (it was the whole answer before: 1.6 s of tokens)."""
    follow_up = _FOLLOW_UP.search(prompt)
    asked = _ASKED.findall(prompt)
    question = follow_up.group(1).strip() if follow_up else prompt.strip().splitlines()[-1]
    return f"{question.rstrip(' ?')} ({asked[-1].strip().rstrip(' ?')}) ?" if asked else question


class _SlowLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat server writing `tokens_per_s` tokens a second, each request in its own
    thread (`ThreadingHTTPServer`): many streams at once, as a real server serves them. A condense request
    (one user message, no system prompt) gets a short rewrite, an answer request the fixed answer."""

    protocol_version = "HTTP/1.1"
    tokens_per_s = 20.0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        messages = body.get("messages") or []
        condense = not any(m.get("role") == "system" for m in messages)
        text = slow_rewrite(str(messages[-1].get("content", ""))) if condense and messages else SLOW_ANSWER
        tokens = re.findall(r"\S+\s*", text)
        delay = 1.0 / self.tokens_per_s
        if not body.get("stream"):
            time.sleep(delay * len(tokens))
            self._send_json(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(payload: str) -> None:
            data = f"data: {payload}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        for token in tokens:
            time.sleep(delay)
            chunk = {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}],
            }
            send(json.dumps(chunk))
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_json(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client closing a kept-alive connection is not news


def start_slow_llm(tokens_per_s: float) -> tuple[ThreadingHTTPServer, str]:
    """The fake model server in this process (a thread per stream)."""
    handler = type("SlowLLM", (_SlowLLM,), {"tokens_per_s": tokens_per_s})
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def _serve_slow_llm(tokens_per_s: float, ready: Any) -> None:
    """Child process: the fake model server, until killed."""
    server, url = start_slow_llm(tokens_per_s)
    ready.put(url)
    while True:
        time.sleep(3600)


class SlowLLMProcess:
    """The fake model server in a process of its own, as a real one is: in the benchmark's process its
    token pacing shared one interpreter lock with the 50 sessions' clients, and fell behind under them."""

    def __init__(self, tokens_per_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        ready = context.Queue()
        self.process = context.Process(target=_serve_slow_llm, args=(tokens_per_s, ready), daemon=True)
        self.process.start()
        self.url: str = ready.get(timeout=120)

    def close(self) -> None:
        self.process.kill()
        self.process.join(timeout=10)


# --- the chat server, in a child process ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(
    overrides: dict[str, Any],
    corpus: str,
    ready: Any,
    trace: str | None = None,
    keep_conversations: bool = True,
    server_stack: str = "auto",
    code: str | None = None,
    thread_kinds: str | None = None,
    stages: str | None = None,
) -> None:
    """Child process: index `corpus`, serve the chat on a free port, report its URL, then serve forever.
    `trace`: a file where the server's stages are timed for each question (`stage_trace`).
    `keep_conversations`: each answer saved in the conversation store (SQLite in `ui.database`), as `rag
    chat` serves it (the benchmark served without one before the eighth session: its figures left that out).
    `server_stack`: "auto" serves as `rag chat` does (uvicorn picks uvloop and httptools, installed with the
    project); "asyncio" hides both from uvicorn, which then falls back to asyncio's loop and h11, as without
    them (`--server-stack auto,asyncio` compares).
    `code`: a checkout of the project (e.g. `git archive` of the commit to compare against) whose `rag`,
    `index` and `ui` the server imports instead of this one's (`--server-code`).
    `thread_kinds`: a file the server keeps writing the kind of each of its threads to (`write_thread_kinds`).
    `stages`: a file the server keeps writing the CPU of each stage of the answers to (`cpu_stages`)."""
    if code:
        imported = sorted(name for name in ("rag", "index", "ui") if name in sys.modules)
        if imported:  # this module must not import them at its top: they would come from this checkout
            raise RuntimeError(f"{imported} were imported before the server's code was chosen")
        sys.path.insert(0, str(Path(code).resolve()))
    if server_stack == "asyncio":
        sys.modules["uvloop"] = None  # type: ignore[assignment]  # `import uvloop` raises ImportError
        sys.modules["httptools"] = None  # type: ignore[assignment]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        if trace:
            from eval.benchmarks import stage_trace

            stage_trace.install(Path(trace))
        if stages:
            cpu_stages.install(Path(stages))
        from rag import build_assistant, load_settings
        from ui.accounts import Database
        from ui.app import build_app, serve, served_stack
        from ui.conversations import ConversationStore

        settings = load_settings(environ={}, overrides=overrides)
        assistant = build_assistant([corpus], settings)
        # Warm-up: lazy loading is not latency (an English question loads the cross-lingual glossary).
        for question in ("Quelle est la valorisation d'OpenAI ?", "Who runs OpenAI?"):
            assistant.ask(question)
        conversations = ConversationStore(Database(settings.ui.database)) if keep_conversations else None
        demo = build_app(assistant, conversations=conversations)
        url = serve(demo, "127.0.0.1", _free_port(), block=False, quiet=True)
        ready.put(("ok", url, {**assistant.status(), "server_stack": served_stack(demo)}))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        ready.put(("error", f"{type(exc).__name__}: {exc}", None))
        return
    loop_thread = getattr(getattr(demo, "server", None), "thread", None)  # uvicorn's, in Gradio's server
    while True:
        if thread_kinds:
            write_thread_kinds(Path(thread_kinds), loop_thread)
        time.sleep(0.5)


EVENT_LOOP, WORKERS, OTHER = "event loop", "worker threads", "other threads"


def write_thread_kinds(path: Path, loop_thread: threading.Thread | None) -> None:
    """In the server: {native thread id: kind} of its threads, for the CPU per thread kind of each round
    (`cpu_by_kind`): the event loop every session's HTTP requests and messages go through, the worker
    threads the answers (and Gradio's pre- and postprocessing) run in, the others."""
    kinds = {}
    for thread in threading.enumerate():
        if thread is loop_thread:
            kinds[thread.native_id] = EVENT_LOOP
        elif thread.name.startswith("AnyIO worker"):
            kinds[thread.native_id] = WORKERS
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(kinds))
    partial.replace(path)


class ChatServer:
    def __init__(
        self,
        workdir: Path,
        mode: str,
        embedding_model: str,
        llm_url: str | None,
        trace: Path | None = None,
        *,
        rewrite: str = "",
        keep_conversations: bool = True,
        server_stack: str = "auto",
        code: str | None = None,
        stages: bool = False,
    ) -> None:
        # Each checkout builds its own index: two versions of the code may not write the same format.
        variant = f"{mode}-{re.sub(r'[^A-Za-z0-9]+', '_', str(Path(code).resolve())) if code else 'here'}"
        overrides = {
            "index.index_dir": str(workdir / f"index-{variant}"),
            "index.embedding_model": embedding_model if mode == "hybrid" else "",
            "index.show_progress": False,
            "llm.backend": "openai" if llm_url else "extractive",
            "llm.base_url": llm_url,
            "llm.model": "slow-fake" if llm_url else None,
            "ui.uploads_dir": str(workdir / f"uploads-{mode}-{bool(llm_url)}"),
            "ui.questions_per_minute": 10_000,  # the benchmark is one "person" per session, asking fast
            "ui.database": str(
                workdir
                / f"chat-{variant}-{bool(llm_url)}-{rewrite}-{keep_conversations}-{server_stack}.sqlite3"
            ),
        }
        if rewrite:
            overrides["llm.rewrite_follow_ups"] = rewrite
        corpus = workdir / "seeds"
        if not corpus.exists():
            shutil.copytree(REPO / "seeds", corpus)
        context = multiprocessing.get_context("spawn")
        ready = context.Queue()
        # Not a daemon: the server indexes uploads in child processes of its own.
        self.trace = trace
        self.thread_kinds = workdir / f"threads-{variant}-{bool(llm_url)}-{time.monotonic_ns()}.json"
        self.stages = workdir / f"stages-{variant}-{time.monotonic_ns()}.json" if stages else None
        self.process = context.Process(
            target=_serve,
            args=(
                overrides,
                str(corpus),
                ready,
                str(trace) if trace else None,
                keep_conversations,
                server_stack,
                code,
                str(self.thread_kinds),
                str(self.stages) if self.stages else None,
            ),
        )
        self.process.start()
        kind, self.url, self.status = ready.get(timeout=600)
        if kind != "ok":
            self.process.kill()
            raise RuntimeError(f"the chat server did not start: {self.url}")

    def close(self) -> None:
        self.process.kill()
        self.process.join(timeout=10)


# --- sessions -----------------------------------------------------------------------------------------------
@dataclass
class SessionResult:
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    leaked: bool = False  # its chat showed another session's text (`isolation`)
    incomplete: bool = False  # its chat showed fewer of its questions than were answered
    abstained: int = 0  # answers "not in the documents": cheaper than real ones, so counted and shown
    #: (question, submitted, first token seen or None), time.monotonic(): lined up with the server's trace
    timeline: list[tuple[str, float, float | None]] = field(default_factory=list)


TAG_STYLES = ("invisible", "symbols")
_TAG = re.compile(r"\(([•◦]+)\)|\u200d([\u200b\u200c]+)\u200d")


def session_tag(session: int, style: str = "invisible") -> str:
    """The session's number in binary, written so that the question keeps its words and its cost.

    "invisible" (the default): zero-width space / zero-width non-joiner for 0 / 1 between two zero-width
    joiners, characters the model's tokenizer drops (the word joiner U+2060 is not dropped: it made "Who runs
    OpenAI?" abstain): the question embedded is the person's own, token for token. "symbols" (the tenth session's tag, "(•◦•)"): visible, but each symbol is a token of its own,
    about 8 per question, which made a hybrid answer's query embedding ~35 % dearer than a real question's.
    Neither is a word: "(session 5)" added two words the documents do not contain, so most questions were
    abstentions, answered without the work (or the LLM) a real question needs."""
    bits = format(session, "b")
    if style == "symbols":
        return "(" + bits.replace("1", "•").replace("0", "◦") + ")"
    if style != "invisible":
        raise ValueError(f"unknown tag style {style!r}; use one of {TAG_STYLES}")
    return "\u200d" + bits.replace("1", "\u200c").replace("0", "\u200b") + "\u200d"


def tags_in(text: str) -> set[str]:
    """Every session tag in `text` (either style), as written."""
    return {match.group(0) for match in _TAG.finditer(text)}


def _tagged(question: str, session: int, style: str = "invisible") -> str:
    return f"{question} {session_tag(session, style)}"


def message_text(message: dict) -> str:
    """A chat message's text: Gradio gives its content as a string or as a list of {"type": "text", "text":
    ...} parts (str() of that list would escape the invisible tags' characters, as repr does)."""
    content = message.get("content", "")
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def _last_answer_text(chat: Any) -> str:
    messages = chat if isinstance(chat, list) else []
    return message_text(messages[-1]) if messages and isinstance(messages[-1], dict) else ""


POLL_S = 0.02  # how often a session looks at its job (gradio_client's own iterator spins every 1 ms)


def ask_timed(
    client: Any, question: str, backend: str, deadline: list[float]
) -> tuple[float, float | None, Any]:
    """Ask one question; -> (seconds to the final answer, seconds to its first streamed piece, the chat).
    Past `deadline[0]` (a monotonic time) the question is cancelled and TimeoutError raised.

    An extractive answer is one page update (its first piece is the final answer, None here): its session
    waits for the job's end without looking at it every 20 ms (50 sessions polling took the benchmark's
    CPU, on the cores the server measured needs, and added up to 20 ms to each latency)."""
    began = time.perf_counter()
    first = None
    chat: Any = []
    job = client.submit(question, 5, backend, api_name="/ask")
    if backend == "extractive":
        try:
            left = deadline[0] - time.monotonic()
            chat = job.result(timeout=None if left == float("inf") else max(0.0, left))[0]
        except TimeoutError:
            job.cancel()
            raise TimeoutError("no answer before the round's time limit (--round-limit)") from None
        return time.perf_counter() - began, first, chat
    seen = 0
    while not job.done():
        if time.monotonic() > deadline[0]:
            job.cancel()
            raise TimeoutError("no answer before the round's time limit (--round-limit)")
        outputs = job.outputs()
        for output in outputs[seen:]:
            chat = output[0] if isinstance(output, (list, tuple)) else output
            text = _last_answer_text(chat)
            if first is None and "answer" in text and 'class="thinking"' not in text:
                first = time.perf_counter() - began
        seen = len(outputs)
        time.sleep(POLL_S)
    chat = job.result(timeout=30)[0]
    return time.perf_counter() - began, first, chat


def run_session(
    client: Any,
    session: int,
    backend: str,
    start: threading.Event,
    result: SessionResult,
    deadline: list[float],
    tags: str = "invisible",
) -> None:
    """The session's three questions, one after the other, each timed to its first streamed piece and to
    its final answer. Past the round's deadline (`deadline[0]`, a monotonic time set when the round starts)
    the question being answered is cancelled and counted as an error: a round always ends."""
    start.wait()
    questions = [_tagged(q, session, tags) for q in QUESTIONS[session % len(QUESTIONS)]]
    chat: Any = []
    for question in questions:
        submitted = time.monotonic()
        try:
            elapsed, first, chat = ask_timed(client, question, backend, deadline)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        result.timeline.append((question, submitted, None if first is None else submitted + first))
        text = _last_answer_text(chat)
        if "answer-error" in text:
            result.errors.append(re.sub(r"<[^>]+>", " ", text)[:200])
        result.abstained += "badge-abstain" in text
        result.latencies.append(elapsed)
        result.first_tokens.append(first if first is not None else elapsed)
    messages = [m for m in chat if isinstance(m, dict)]
    shown = " ".join(message_text(m) for m in messages)
    asked = [message_text(m) for m in messages if m.get("role") == "user"]
    tag = session_tag(session, tags)
    result.leaked, result.incomplete = isolation(shown, asked, tag, len(result.latencies))


def isolation(shown: str, asked: Sequence[str], tag: str, answered: int) -> tuple[bool, bool]:
    """(leaked, incomplete) for a session's last chat (all its text `shown`, its questions `asked`), `tag`
    its own, `answered` its questions answered. A leak is another session's text: another tag, or a
    question without this session's tag. A chat showing fewer of its questions than were answered is
    incomplete, not a leak (the thirteenth session counted a chat left short by a question past the round's
    time limit as a leak)."""
    leaked = bool(tags_in(shown) - {tag}) or any(tag not in question for question in asked)
    return leaked, len(asked) < answered


@dataclass
class Round:
    results: list[SessionResult]
    started: float  # time.monotonic() when the sessions were released
    ended: float  # ... when the last one finished (or the time limit passed)
    server_cpu_s: float = float("nan")  # CPU seconds the chat server's process used during the round
    client_cpu_s: float = float("nan")  # ... and this script's (the 50 gradio_client sessions)
    llm_cpu_s: float | None = None  # ... and the fake LLM server's, when there is one
    server_threads_s: dict[str, float] = field(default_factory=dict)  # the server's CPU by thread kind

    def cpu_note(self) -> str:
        """CPU per answered question, server and benchmark client apart: where the round's time went."""
        answered = sum(len(r.latencies) for r in self.results) or 1
        kinds = ", ".join(
            f"{kind} {1000 * seconds / answered:.1f}" for kind, seconds in self.server_threads_s.items()
        )
        return (
            f"CPU per question: server {1000 * self.server_cpu_s / answered:.0f} ms"
            + (f" ({kinds})" if kinds else "")
            + f", client {1000 * self.client_cpu_s / answered:.0f} ms"
            + ("" if self.llm_cpu_s is None else f", fake LLM {1000 * self.llm_cpu_s / answered:.0f} ms")
            + f" (round {self.ended - self.started:.1f} s wall)"
        )


def thread_cpu_s(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of process `pid` (Linux /proc; empty elsewhere)."""
    found: dict[int, float] = {}
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()
            found[int(thread)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def cpu_by_kind(
    before: dict[int, float], after: dict[int, float], kinds_file: Path | None
) -> dict[str, float]:
    """The CPU seconds the threads used between two `thread_cpu_s`, summed by their kind as the server's
    `write_thread_kinds` file names them ({} without it)."""
    try:
        kinds = (
            {int(tid): kind for tid, kind in json.loads(kinds_file.read_text()).items()} if kinds_file else {}
        )
    except (OSError, ValueError):
        kinds = {}
    if not kinds:
        return {}
    spent = {EVENT_LOOP: 0.0, WORKERS: 0.0, OTHER: 0.0}
    for tid, seconds in after.items():
        spent[kinds.get(tid, OTHER)] += seconds - before.get(tid, 0.0)
    return spent


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its reaped children (Linux /proc), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


_TLS = ssl.create_default_context()


def client_of(url: str) -> Any:
    """A `gradio_client.Client` (its own server-side session) sharing one TLS context. gradio_client opens a
    new httpx client for every request, and each built its own TLS context from the system's certificates
    (even for http://): py-spy showed that as most of the benchmark's own CPU, 116 ms of client CPU per
    question against 31 ms of the server's, on the same 2 cores. A browser does nothing of the kind."""
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=_TLS)


def open_page(client: Any) -> Any:
    """What a browser's page load does before anyone asks: one of the page's load events, which also
    creates the session's state on the server (Gradio's `SessionState`: the config of every component of
    the page, ~20 ms of the server's event loop under load). Without it each session's first question paid
    for that, 50 at once in the event loop every answer's updates go through (py-spy: 52 of 721 samples of
    the loop's thread in a 50-session slow-LLM round)."""
    client.predict("extractive", api_name="/page_info")
    return client


def by_position(results: Sequence[SessionResult]) -> str:
    """p50 / p95 of the sessions' first, second and third answers apart: is the tail the first burst (every
    session's first question at once) or later questions waiting behind the others?"""
    parts = []
    for position, name in enumerate(("1st", "2nd", "3rd")):
        values = [r.latencies[position] for r in results if len(r.latencies) == len(QUESTIONS[0])]
        values = values or [float("nan")]
        parts.append(f"{name} {np.percentile(values, 50):.2f} / {np.percentile(values, 95):.2f} s")
    return "p50 / p95 by question: " + ", ".join(parts)


def run_round(
    url: str,
    sessions: int,
    backend: str,
    limit_s: float,
    server_pid: int | None = None,
    on_release: Callable[[], Any] | None = None,
    llm_pid: int | None = None,
    thread_kinds: Path | None = None,
    tags: str = "invisible",
) -> Round:
    # Connected one by one before the round (what a browser does on page load is not what is measured).
    clients = [open_page(client_of(url)) for _ in range(sessions)]
    start = threading.Event()
    deadline = [float("inf")]
    results = [SessionResult() for _ in range(sessions)]
    threads = [
        threading.Thread(
            target=run_session, args=(clients[n], n, backend, start, results[n], deadline, tags), daemon=True
        )
        for n in range(sessions)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    server_cpu = process_cpu_s(server_pid) if server_pid else float("nan")
    threads_before = thread_cpu_s(server_pid) if server_pid else {}
    client_cpu = time.process_time()
    llm_cpu = process_cpu_s(llm_pid) if llm_pid else None
    if on_release is not None:  # e.g. the profiler: the round only, not the clients' connections
        on_release()
    started = time.monotonic()
    deadline[0] = started + limit_s
    start.set()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline[0] + 60 - time.monotonic()))
    ended = time.monotonic()
    server_cpu = (process_cpu_s(server_pid) if server_pid else float("nan")) - server_cpu
    threads_after = thread_cpu_s(server_pid) if server_pid else {}
    client_cpu = time.process_time() - client_cpu
    if llm_cpu is not None and llm_pid:  # is the fake server keeping up? (it must not be the bottleneck)
        llm_cpu = process_cpu_s(llm_pid) - llm_cpu
    if thread_kinds is not None:
        time.sleep(0.6)  # the server names its threads every 0.5 s: the ones the round started too
    threads = cpu_by_kind(threads_before, threads_after, thread_kinds)
    return Round(results, started, ended, server_cpu, client_cpu, llm_cpu, threads)


def summary(results: Sequence[SessionResult], first_token: bool = False) -> str:
    values = [v for r in results for v in (r.first_tokens if first_token else r.latencies)]
    errors = sum(len(r.errors) for r in results)
    leaks = sum(r.leaked for r in results)
    incomplete = sum(r.incomplete for r in results)
    timeouts = sum(error.startswith("TimeoutError") for r in results for error in r.errors)
    abstained = sum(r.abstained for r in results)
    if not values:
        return f"no answer · errors {errors} (timeouts {timeouts})"
    p50, p95, high = np.percentile(values, 50), np.percentile(values, 95), max(values)
    kinds = sorted({error.split(":")[0] for r in results for error in r.errors})
    return (
        f"p50 {p50:5.2f} s  p95 {p95:5.2f} s  max {high:5.2f} s  ({len(values)} answers, {abstained} abstained, "
        f"errors {errors}"
        f"{' ' + str(kinds) if kinds else ''}, timeouts {timeouts}, sessions seeing another's history {leaks}"
        f"{f', chats missing a question answered {incomplete}' if incomplete else ''})"
    )


# --- the upload scenario ------------------------------------------------------------------------------------
def make_upload(workdir: Path, piaf_dir: Path, characters: int) -> Path:
    """A French document of about `characters` characters: PIAF paragraphs when available, else seeds."""
    texts: list[str] = []
    if (piaf_dir / "contexts.jsonl").is_file():
        with open(piaf_dir / "contexts.jsonl", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                texts.append(row.get("text") or row.get("context") or "")  # PIAF's contexts.jsonl: "text"
                if sum(map(len, texts)) >= characters:
                    break
    while sum(map(len, texts)) < characters:
        texts.append((REPO / "seeds" / "openai-altman.fr.txt").read_text(encoding="utf-8"))
    path = workdir / f"upload-{characters}.txt"
    path.write_text("\n\n".join(texts), encoding="utf-8")
    return path


def child_pids(pid: int) -> set[int]:
    """The child processes of `pid` (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError):
            found.update(int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found


def indexing_child(server_pid: int, before: set[int], wait_s: float = 120.0) -> int | None:
    """The child process the server started to index an upload: its new child that is not multiprocessing's
    resource tracker (the server's spawned children share the benchmark's tracker: none is expected)."""
    waited = time.monotonic() + wait_s
    while time.monotonic() < waited:
        for pid in child_pids(server_pid) - before:
            with contextlib.suppress(OSError):
                if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                    return pid
        time.sleep(0.05)
    return None


def _alive(pid: int) -> bool:
    """Running or stopped, not exited (a zombie not yet reaped by its parent counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


@dataclass(frozen=True)
class ChildPriority:
    """How the indexing child runs during a block: stopped (SIGSTOP: the "no upload" baseline), as the product
    starts it, or with every thread moved to another scheduling class / nice level (restored after)."""

    name: str
    stopped: bool = False
    nice: int | None = None
    idle_class: bool = False

    def apply(self, pid: int, shipped_nice: dict[int, int]) -> None:
        if self.stopped:
            os.kill(pid, signal.SIGSTOP)
            return
        for tid in _threads(pid):
            with contextlib.suppress(OSError):
                if self.idle_class:
                    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                else:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                    shipped = shipped_nice.setdefault(tid, os.getpriority(os.PRIO_PROCESS, tid))
                    os.setpriority(os.PRIO_PROCESS, tid, shipped if self.nice is None else self.nice)
        os.kill(pid, signal.SIGCONT)


CHILD_PRIORITIES = {
    "shipped": ChildPriority("upload indexing (as shipped)"),
    "nice19": ChildPriority("upload indexing, nice 19", nice=19),
    "idle": ChildPriority("upload indexing, SCHED_IDLE", idle_class=True),
}
NO_UPLOAD = ChildPriority("no upload (indexing child stopped)", stopped=True)


@dataclass
class TimedAnswer:
    began: float  # time.monotonic()
    ended: float
    error: bool = False


def new_conversation(client: Any) -> None:
    """A new server-side session (an empty chat) for `client`, as a reloaded page gets. `reset_session` alone
    is not enough: `gradio_client` keeps reading the old session's message stream, and the answers of the
    new one, sent on the new session's stream, were never seen (the sessions hung). Marking the stream
    closed makes the next question open the new session's stream; the old reader ends on its own (the
    client's stream epochs keep it from closing the new one)."""
    client.reset_session()
    with client.pending_lock:
        client.stream_open = False


def _ask_forever(
    url: str, session: int, backend: str, stop: threading.Event, answers: list[TimedAnswer]
) -> None:
    """A session asking its three questions again and again (a new conversation each time) until `stop`."""
    client = client_of(url)
    never = [float("inf")]
    while not stop.is_set():
        new_conversation(client)
        open_page(client)
        for question in QUESTIONS[session % len(QUESTIONS)]:
            if stop.is_set():
                return
            began = time.monotonic()
            try:
                _, _, chat = ask_timed(client, _tagged(question, session), backend, never)
                failed = "answer-error" in _last_answer_text(chat)
            except Exception:  # noqa: BLE001 - counted
                failed = True
            answers.append(TimedAnswer(began, time.monotonic(), failed))


def bootstrap_ratio(
    with_blocks: Sequence[Sequence[float]], without_blocks: Sequence[Sequence[float]], draws: int = 2000
) -> tuple[float, float, float]:
    """p50 of `with` / p50 of `without`, and its 95 % interval by resampling whole blocks (questions of one
    block share the machine's moment: resampling them one by one would understate the noise)."""
    rng = np.random.default_rng(11)

    def median_of(blocks: Sequence[Sequence[float]], picks: np.ndarray) -> float:
        return float(np.median(np.concatenate([np.asarray(blocks[i], dtype=float) for i in picks])))

    point = median_of(with_blocks, np.arange(len(with_blocks))) / median_of(
        without_blocks, np.arange(len(without_blocks))
    )
    ratios = [
        median_of(with_blocks, rng.integers(0, len(with_blocks), len(with_blocks)))
        / median_of(without_blocks, rng.integers(0, len(without_blocks), len(without_blocks)))
        for _ in range(draws)
    ]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(low), float(high)


def upload_interleaved(
    server: ChatServer,
    upload: Path,
    sessions: int,
    backend: str,
    limit_s: float,
    block_s: float,
    priorities: Sequence[ChildPriority],
) -> None:
    """Questions of `sessions` sessions while the server indexes `upload` in its child process, in blocks of
    `block_s` seconds that take turns: the child stopped (the baseline), then running under each of
    `priorities`. A question counts for the block it began and ended in (others are left out). Printed per
    state: p50 / p95, and the p50 against the stopped blocks with a 95 % bootstrap interval."""
    from gradio_client import handle_file

    before = child_pids(server.process.pid)
    client_of(server.url).predict([handle_file(str(upload))], "bench", api_name="/add_documents")
    child = indexing_child(server.process.pid, before)
    if child is None:
        print("  the upload's indexing child process was not seen: no upload figure")
        return
    states = [NO_UPLOAD, *priorities]
    shipped_nice: dict[int, int] = {}
    answers: list[TimedAnswer] = []
    blocks: list[tuple[float, float, ChildPriority]] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_ask_forever, args=(server.url, n, backend, stop, answers), daemon=True)
        for n in range(sessions)
    ]
    began = time.monotonic()
    try:
        NO_UPLOAD.apply(child, shipped_nice)
        for thread in threads:
            thread.start()
        time.sleep(block_s)  # the sessions connect and ask their first questions: not measured
        turn = 0
        while _alive(child) and time.monotonic() - began < limit_s:
            state = states[turn % len(states)]
            state.apply(child, shipped_nice)
            start = time.monotonic()
            time.sleep(block_s)
            blocks.append((start, time.monotonic(), state))
            if not state.stopped:
                with contextlib.suppress(ProcessLookupError):  # the job may finish during the block
                    os.kill(child, signal.SIGSTOP)  # each block starts from the same state
            turn += 1
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGCONT)
        for thread in threads:
            thread.join(timeout=60)
    finished = not _alive(child)
    per_state: dict[str, list[list[float]]] = {state.name: [] for state in states}
    errors = 0
    for start, end, state in blocks:
        inside = [a for a in answers if start <= a.began and a.ended <= end]
        errors += sum(a.error for a in inside)
        latencies = [a.ended - a.began for a in inside if not a.error]
        if latencies:
            per_state[state.name].append(latencies)
    print(
        f"  upload of {upload.stat().st_size / 1e6:.2f} MB indexed by the server's child process while "
        f"{sessions} sessions ask, in {block_s:g} s blocks taking turns ({len(blocks)} blocks; the job "
        f"{'finished' if finished else 'had NOT finished: the last blocks were still indexing'}; errors {errors}):"
    )
    baseline = per_state[NO_UPLOAD.name]
    for state in states:
        measured = per_state[state.name]
        values = [v for block in measured for v in block]
        if not values:
            print(f"    {state.name:<38} no answer")
            continue
        line = (
            f"    {state.name:<38} p50 {np.percentile(values, 50):5.2f} s  p95 {np.percentile(values, 95):5.2f} s"
            f"  ({len(values)} answers, {len(measured)} blocks)"
        )
        if not state.stopped and baseline and len(measured) >= 2 and len(baseline) >= 2:
            point, low, high = bootstrap_ratio(measured, baseline)
            line += (
                f"  p50 added {100 * (point - 1):+.0f} % (95 % interval {100 * (low - 1):+.0f} to "
                f"{100 * (high - 1):+.0f} %)"
            )
        print(line)


@dataclass
class Profiler:
    process: subprocess.Popen | None = None
    output: Path | None = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        print(f"  py-spy samples of the server (all threads): {self.output}")


def profile(pid: int, folder: Path | None, name: str, gil_only: bool = False) -> Profiler:
    """`py-spy record` on the chat server during one round (--py-spy FOLDER), raw stacks for flame graphs.
    `gil_only` (--py-spy-gil): only the thread holding the interpreter lock is sampled, i.e. the work the
    server's one lock serialises (threads in ONNX Runtime, or runnable but waiting for a core, are left out)."""
    if folder is None:
        return Profiler()
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{name}.txt"
    beside = Path(sys.executable).parent / "py-spy"  # the venv's, when not on PATH
    command = [
        shutil.which("py-spy") or str(beside),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    command += ["--nonblocking", "--threads", "--rate", "50"] + (["--gil"] if gil_only else [])
    return Profiler(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), output)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,10,25,50")
    parser.add_argument("--modes", default="lexical,hybrid")
    parser.add_argument("--embedding-model", default=DEFAULT_E5)
    parser.add_argument("--tokens-per-s", type=float, default=20.0)
    parser.add_argument("--no-llm", action="store_true", help="Skip the slow-LLM scenario.")
    parser.add_argument(
        "--llm-rewrite",
        default="when_unsure",
        help="llm.rewrite_follow_ups of the slow-LLM scenario; 'always,when_unsure' runs both, side by side.",
    )
    parser.add_argument(
        "--conversations",
        default="kept",
        help="'kept': each answer saved in the conversation store, as `rag chat` does; 'none': no store; "
        "'kept,none' runs the extractive scenarios both ways, side by side.",
    )
    parser.add_argument(
        "--server-stack",
        default="auto",
        help="'auto': the server's event loop and HTTP parser as `rag chat` picks them (uvloop + httptools); "
        "'asyncio': both hidden, asyncio + h11; 'auto,asyncio' runs the extractive scenarios both ways.",
    )
    parser.add_argument(
        "--server-code",
        default="",
        help="Checkouts of the project (folders, e.g. `git archive` of a commit, unpacked) whose code the "
        "server runs instead of this one's ('.' is this one): 'OLD,.,OLD,.' runs the extractive scenarios "
        "with each in turn, alternated in one run (old and new code on the same moments of the machine).",
    )
    parser.add_argument("--no-upload", action="store_true", help="Skip the upload-while-asking scenario.")
    parser.add_argument(
        "--cpu-stages",
        action="store_true",
        help="Print the server's CPU per question by stage of the answer (embedding, chain, save, ...): "
        "`eval.benchmarks.cpu_stages`, thread CPU time of each stage, timed in the server.",
    )
    parser.add_argument("--upload-chars", type=int, default=200_000)
    parser.add_argument(
        "--py-spy", type=Path, default=None, help="Folder: record the server with py-spy during each round."
    )
    parser.add_argument(
        "--py-spy-gil", action="store_true", help="With --py-spy: sample only the thread holding the GIL."
    )
    parser.add_argument("--upload-sessions", type=int, default=10)
    parser.add_argument(
        "--upload-block-s", type=float, default=2.0, help="Length of the blocks with and without the upload."
    )
    parser.add_argument(
        "--upload-priorities",
        default="shipped,idle",
        help=f"How the indexing child runs in its blocks, beside the stopped baseline: {','.join(CHILD_PRIORITIES)}.",
    )
    parser.add_argument(
        "--tags",
        default="invisible",
        help="How each question carries its session's number, for the history check: 'invisible' "
        "(zero-width characters the tokenizer drops: the question costs what a person's does), 'symbols' "
        "(the tenth session's visible '(•◦•)', ~8 tokens more per question); 'invisible,symbols' runs each "
        "extractive round both ways, alternated on the same server.",
    )
    parser.add_argument("--piaf-dir", type=Path, default=DEFAULT_PIAF)
    parser.add_argument(
        "--round-limit",
        type=float,
        default=300.0,
        help="Seconds a round may last: questions still unanswered then are cancelled and counted as errors.",
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.sessions.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    print(f"{os.cpu_count()} CPUs; corpus seeds/; 3 questions per session (question, follow-up, another)")

    with tempfile.TemporaryDirectory(prefix="rag-concurrency-") as tmp:
        workdir = Path(tmp)
        stores = [{"kept": True, "none": False}[name] for name in args.conversations.split(",")]
        stacks = [name for name in args.server_stack.split(",") if name]
        styles = [name for name in args.tags.split(",") if name]
        if not styles or set(styles) - set(TAG_STYLES):
            parser.error(
                f"--tags: use {' or '.join(TAG_STYLES)}, or both comma-separated (got {args.tags!r})"
            )
        unknown = set(stacks) - {"auto", "asyncio"}
        if unknown:
            parser.error(f"--server-stack: unknown {sorted(unknown)}; use auto, asyncio or auto,asyncio")
        codes: list[str | None] = [
            None if name == "." else name for name in args.server_code.split(",") if name
        ] or [None]
        missing = [name for name in codes if name and not (Path(name) / "ui" / "app.py").is_file()]
        if missing:
            parser.error(f"--server-code: {missing} hold no checkout of the project (no ui/app.py)")
        # (mode, backend, LLM server, llm.rewrite_follow_ups, conversations kept, server stack, code)
        scenarios: list[tuple[str, str, str | None, str, bool, str, str | None]] = [
            (mode, "extractive", None, "", store, stack, code)
            for mode in modes
            for store in stores
            for stack in stacks
            for code in codes
        ]
        llm = None
        if not args.no_llm:
            llm = SlowLLMProcess(args.tokens_per_s)
            llm_url = llm.url
            scenarios += [
                ("lexical", "openai", llm_url, rewrite, stores[0], stacks[0], codes[0])
                for rewrite in args.llm_rewrite.split(",")
            ]
        trace = workdir / "stages.jsonl"  # the LLM rounds' per-question stage times (`stage_trace`)
        try:
            for mode, backend, llm_url, rewrite, store, stack, code in scenarios:
                server = ChatServer(
                    workdir,
                    mode,
                    args.embedding_model,
                    llm_url,
                    trace if llm_url else None,
                    rewrite=rewrite,
                    keep_conversations=store,
                    server_stack=stack,
                    code=code,
                    stages=args.cpu_stages,
                )
                try:
                    title = f"{backend} backend, {server.status['retrieval_mode']} mode, "
                    title += "conversations kept" if store else "no conversation store"
                    title += f", server on {server.status['server_stack']}"
                    if args.server_code:
                        title += f", server code {code or 'of this checkout'}"
                    if llm_url:
                        title += (
                            f" (loopback LLM streaming {args.tokens_per_s:g} tokens/s, follow-ups: {rewrite})"
                        )
                    print(f"\n== {title} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
                    rounds = [
                        (count, style)
                        for count in counts
                        for style in (styles if not llm_url else styles[:1])
                    ]
                    for count, style in rounds:
                        profilers: list[Profiler] = []
                        start_profiler = functools.partial(
                            lambda started, *spec: started.append(profile(*spec)),
                            profilers,
                            server.process.pid,
                            args.py_spy,
                            f"{mode}-{backend}-{count}" + (f"-{style}" if len(styles) > 1 else ""),
                            args.py_spy_gil,
                        )
                        if trace.exists():
                            trace.write_text("")  # truncated: the server keeps appending to it
                        stages_before = cpu_stages.read(server.stages)
                        try:
                            measured = run_round(
                                server.url,
                                count,
                                backend,
                                args.round_limit,
                                server.process.pid,
                                on_release=start_profiler,
                                llm_pid=llm.process.pid if llm_url and llm is not None else None,
                                tags=style,
                                thread_kinds=server.thread_kinds,
                            )
                        finally:
                            for profiler in profilers:
                                profiler.stop()
                        results = measured.results
                        if len(styles) > 1:
                            print(f"  {count:3d} sessions  questions tagged {style}")
                        print(f"  {count:3d} sessions  answer       {summary(results)}")
                        print(f"  {count:3d} sessions  {by_position(results)}")
                        if llm_url:
                            print(f"  {count:3d} sessions  first token  {summary(results, first_token=True)}")
                            timeline = [entry for r in results for entry in r.timeline]
                            stages = stage_trace.stage_times(stage_trace.read(trace), timeline)
                            print(f"  {count:3d} sessions  {stage_trace.breakdown(stages)}")
                        print(f"  {count:3d} sessions  {measured.cpu_note()}")
                        if server.stages is not None:
                            answered = sum(len(r.latencies) for r in results)
                            stages_after = cpu_stages.read(server.stages)
                            print(
                                f"  {count:3d} sessions  {cpu_stages.breakdown(stages_before, stages_after, answered)}"
                            )
                    if (
                        backend == "extractive"
                        and not args.no_upload
                        and (store, stack, code) == (stores[0], stacks[0], codes[0])
                    ):
                        upload_interleaved(
                            server,
                            make_upload(workdir, args.piaf_dir, args.upload_chars),
                            args.upload_sessions,
                            backend,
                            args.round_limit,
                            args.upload_block_s,
                            [CHILD_PRIORITIES[name] for name in args.upload_priorities.split(",") if name],
                        )
                finally:
                    server.close()
        finally:
            if llm is not None:
                llm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
