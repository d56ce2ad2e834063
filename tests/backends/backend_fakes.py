"""Fakes for the backend tests: fake OpenAI and Ollama servers on 127.0.0.1, a tiny random HF model.

The servers are stdlib `http.server` instances on port 0, started and stopped by the fixtures. They
record every request (path, headers, JSON body) so tests can check what a backend sends, and answer
with scripted pieces so tests can check what it streams. The HF model is a two-layer GPT-2 with a
character-level tokenizer, built once per session in a temporary folder and loaded through the real
`from_pretrained` path, exactly like a user's local model folder.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from rag.backends import GenerationRequest
from rag.records import Passage
from rag.settings import Settings

API_KEY_ENV = "FAKE_LLM_API_KEY"
API_KEY = "sk-test-0123456789"
ANSWER_PIECES = ["Paris est ", "la capitale ", "de la France ", "[1]."]
CONDENSED_REPLY = "Standalone question: « Quelle est la population de Paris ? »"
MISSING_MODEL = "missing-model"
BROKEN_MODEL = "breaks-mid-answer"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeServer:
    """A running fake server: its base address and the requests it received."""

    url: str
    requests: list[RecordedRequest] = field(default_factory=list)

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]


def _is_condense(body: dict[str, Any]) -> bool:
    """A condense request carries the conversation but no numbered passages."""
    return not any(re.search(r"^\[1\] ", str(m.get("content", "")), re.M) for m in body.get("messages", []))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_record: FakeServer  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        body = json.loads(raw or b"{}")
        self.server_record.requests.append(
            RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        return body

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, content_type: str, lines: list[bytes], *, truncate: bool = False) -> None:
        data = b"".join(lines)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        # A truncated stream announces more bytes than it sends, then closes: a dropped connection.
        self.send_header("Content-Length", str(len(data) + (1000 if truncate else 0)))
        self.end_headers()
        for line in lines:
            self.wfile.write(line)
            self.wfile.flush()
        if truncate:
            self.close_connection = True


class OpenAIHandler(_Handler):
    def do_POST(self) -> None:
        body = self._read_json()
        if self.path != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._send_json(
                401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}}
            )
            return
        model = body.get("model")
        if model == MISSING_MODEL:
            self._send_json(
                404,
                {
                    "error": {
                        "message": f"The model `{model}` does not exist.",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
            )
            return
        pieces = [CONDENSED_REPLY] if _is_condense(body) else ANSWER_PIECES
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(pieces)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                },
            )
            return

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        lines = [chunk({"role": "assistant", "content": ""})]
        lines += [chunk({"content": piece}) for piece in pieces]
        if model == BROKEN_MODEL:
            self._send_stream("text/event-stream", lines[:3], truncate=True)
            return
        lines += [chunk({}, "stop"), b"data: [DONE]\n\n"]
        self._send_stream("text/event-stream", lines)


class OllamaHandler(_Handler):
    def do_POST(self) -> None:
        body = self._read_json()
        if self.path != "/api/chat":
            self._send_json(404, {"error": f"no route {self.path}"})
            return
        model = body.get("model")
        if model == MISSING_MODEL:
            self._send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        pieces = [CONDENSED_REPLY] if _is_condense(body) else ANSWER_PIECES

        def line(content: str, done: bool) -> bytes:
            payload: dict[str, Any] = {
                "model": model,
                "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": content},
                "done": done,
            }
            if done:
                payload.update(done_reason="stop", total_duration=1, eval_count=4, prompt_eval_count=9)
            return (json.dumps(payload) + "\n").encode()

        if not body.get("stream", True):
            self._send_json(200, json.loads(line("".join(pieces), True)))
            return
        lines = [line(piece, False) for piece in pieces] + [line("", True)]
        if model == BROKEN_MODEL:
            self._send_stream("application/x-ndjson", lines[:2], truncate=True)
            return
        self._send_stream("application/x-ndjson", lines)


def serve(handler: type[_Handler], prefix: str) -> Iterator[FakeServer]:
    record = FakeServer(url="")
    bound = type("BoundHandler", (handler,), {"server_record": record})
    server = ThreadingHTTPServer(("127.0.0.1", 0), bound)
    server.daemon_threads = True
    record.url = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm-server", daemon=True
    )
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def llm_settings(**llm: Any) -> Settings:
    return Settings(llm={"api_key_env": API_KEY_ENV, "timeout_s": 10.0, **llm})


# -- a request like the one the chain builds ---------------------------------------------------------

PASSAGES = [
    Passage(
        number=1,
        chunk_ids=["doc1#0"],
        doc_id="doc1",
        source="france.md",
        title="France",
        text="Paris est la capitale de la France. Elle compte environ deux millions d'habitants.",
        start=0,
        end=83,
        score=1.0,
    ),
    Passage(
        number=2,
        chunk_ids=["doc2#0"],
        doc_id="doc2",
        source="lyon.md",
        title="Lyon",
        text="Lyon est une ville du sud-est de la France, connue pour sa gastronomie.",
        start=0,
        end=71,
        score=0.5,
    ),
]


def make_request(question: str = "Quelle est la capitale de la France ?") -> GenerationRequest:
    numbered = "\n\n".join(f"[{p.number}] {p.title}\n{p.text}" for p in PASSAGES)
    messages = [
        SystemMessage("Réponds avec les passages numérotés et cite-les avec [n]."),
        HumanMessage(f"Passages :\n{numbered}\n\nQuestion : {question}"),
    ]
    return GenerationRequest(question=question, language="fr", passages=PASSAGES, messages=messages)


# -- a tiny random causal LM in a folder ------------------------------------------------------------

TINY_CHARS = list("abcdefghijklmnopqrstuvwxyz ")
TINY_SPECIALS = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_model(folder: Path, *, chat_template: bool = True) -> Path:
    """A 2-layer GPT-2 over a character tokenizer (lowercase letters and space), saved to `folder`.

    Generation can only produce letters and spaces: special tokens are suppressed and there is no EOS,
    so a greedy generation always runs to exactly `max_new_tokens` characters.
    """
    import torch
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import BPE
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(TINY_SPECIALS + TINY_CHARS)}
    # BPE without merges = one token per character; Fuse joins them back without spaces.
    core = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=TINY_SPECIALS[4:],
    )
    if chat_template:
        tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=4096,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=vocab["<s>"],
        eos_token_id=None,
        pad_token_id=vocab["<pad>"],
    )
    model = GPT2LMHeadModel(config)
    model.generation_config = GenerationConfig(
        suppress_tokens=[vocab[t] for t in TINY_SPECIALS],
        eos_token_id=None,
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"],
    )
    model.save_pretrained(folder)
    return folder


def tiny_model_reply(folder: Path, messages: list[Any], max_new_tokens: int) -> str:
    """What the tiny model answers to `messages`, computed with transformers directly (chat template, greedy
    decoding): the oracle the HF backend's text must equal, so a backend that lost or reordered the prompt
    would not pass a check on the alphabet and length alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    turns = [{"role": roles[m.type], "content": str(m.content)} for m in messages]
    prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(
        **encoded, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
    )
    return tokenizer.decode(output[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True)
