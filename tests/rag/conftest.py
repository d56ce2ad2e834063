"""Fixtures of the answering tests: a real lexical index of seeds/ (built once per session) and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rag_fakes import lexical_settings

SEED_DOC = "openai-altman.fr.txt"


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path) -> Path:
    from index.build import build_index

    index_dir = tmp_path_factory.mktemp("seed-index")
    build_index([seeds_dir], lexical_settings(index_dir).index, embedder=None, progress=False)
    return index_dir


@pytest.fixture(scope="session")
def seed_assistant(seed_index_dir: Path):
    from rag import open_assistant

    return open_assistant(lexical_settings(seed_index_dir))


@pytest.fixture(scope="session")
def seed_text(seeds_dir: Path) -> str:
    return (seeds_dir / SEED_DOC).read_text(encoding="utf-8")


@pytest.fixture
def fresh_assistant(seed_index_dir: Path) -> Iterator:
    """An assistant of its own, for tests that plug in a fake generator."""
    from rag import open_assistant

    yield open_assistant(lexical_settings(seed_index_dir))
