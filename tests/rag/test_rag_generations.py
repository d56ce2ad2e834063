"""Readers never wait for each other nor for a writer: `add_documents` builds the next index generation
beside the current one and switches it in; a cancelled build changes nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rag import IndexingCancelledError
from tests.conftest import build_zorblax_assistant, fresh_python_lines


@pytest.fixture
def assistant(zorblax_assistant):
    return zorblax_assistant


def new_document(tmp_path: Path, name: str = "vin.txt") -> Path:
    path = tmp_path / name
    path.write_text("Le glorbium est un vin vert de Savoie, servi très frais.\n", encoding="utf-8")
    return path


def sources(answer) -> set[str]:
    return {Path(p.source).name for p in answer.passages}


def test_answers_go_on_while_documents_are_added(assistant, tmp_path: Path):
    inside, release = threading.Event(), threading.Event()

    def slow_progress(done: int, total: int, stage: str) -> None:
        inside.set()
        release.wait(timeout=30)  # the writer stays in the middle of its build

    writer = threading.Thread(
        target=assistant.add_documents,
        args=([new_document(tmp_path)],),
        kwargs={"on_progress": slow_progress},
    )
    writer.start()
    try:
        assert inside.wait(timeout=30)
        answer = assistant.ask(
            "Où est affiné le zorblax ?"
        )  # would deadlock if readers waited for the writer
        assert "Grenoble" in answer.text
        assert assistant.status()["documents"] == 1  # the old generation until the new one is complete
    finally:
        release.set()
        writer.join(timeout=60)
    assert assistant.status()["documents"] == 2
    assert "vin.txt" in sources(assistant.ask("Qu'est-ce que le glorbium ?"))


def test_an_answer_started_before_a_switch_finishes_on_its_generation(assistant, tmp_path: Path):
    stream = assistant.stream("Où est affiné le zorblax ?")
    assistant.add_documents([new_document(tmp_path)])
    assert assistant.status()["documents"] == 2  # switched: the next question reads the new generation
    *_, answer = stream  # started (created) before the switch: the old reader answers it
    assert "Grenoble" in answer.text and sources(answer) == {"fromage.txt"}


@pytest.mark.parametrize("in_subprocess", [False, True])
def test_cancelled_indexing_leaves_the_index_as_it_was(assistant, tmp_path: Path, in_subprocess: bool):
    cancel = threading.Event()
    seen = []

    def progress(done: int, total: int, stage: str) -> None:
        seen.append(stage)
        cancel.set()  # cancel at the first sign of work

    before = assistant.status()
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(300):  # enough work that the cancel arrives before the build could end
        new_document(folder, f"vin{number}.txt")
    with pytest.raises(IndexingCancelledError, match="nothing was added"):
        assistant.add_documents([folder], on_progress=progress, cancel=cancel, in_subprocess=in_subprocess)
    assert assistant.status() == before
    from rag import open_assistant

    assert open_assistant(assistant.settings).status()["documents"] == 1  # on disk too
    assert seen


def test_indexing_in_a_child_process_reports_progress_and_switches_in(assistant, tmp_path: Path):
    seen = []
    report = assistant.add_documents(
        [new_document(tmp_path)], on_progress=lambda *event: seen.append(event), in_subprocess=True
    )
    assert report.new_files == 1
    assert any(stage == "reading" for _, _, stage in seen)
    assert "vin.txt" in sources(assistant.ask("Qu'est-ce que le glorbium ?"))


def test_private_indexes_are_searched_with_the_shared_one_by_their_owner_only(assistant, tmp_path: Path):
    alice = assistant.with_private_index(tmp_path / "alice")
    bob = assistant.with_private_index(tmp_path / "bob")
    assert alice.status()["documents"] == 1  # nothing private yet: the shared index alone
    (tmp_path / "a").mkdir()
    alice.add_documents([new_document(tmp_path / "a")])
    question = "Qu'est-ce que le glorbium ?"
    assert "vin.txt" in sources(alice.ask(question))
    assert "vin.txt" not in sources(bob.ask(question))
    assert "vin.txt" not in sources(assistant.ask(question))
    assert "fromage.txt" in sources(alice.ask("Où est affiné le zorblax ?"))  # the shared corpus too

    shared_doc = tmp_path / "shared" / "pain.txt"
    shared_doc.parent.mkdir()
    shared_doc.write_text("Le pain de seigle accompagne le zorblax.\n", encoding="utf-8")
    assistant.add_documents([shared_doc])  # a new shared generation: the views follow it
    assert "pain.txt" in sources(alice.ask("Avec quel pain mange-t-on le zorblax ?"))
    assert "pain.txt" in sources(bob.ask("Avec quel pain mange-t-on le zorblax ?"))
    assert alice.status()["documents"] == 3 and bob.status()["documents"] == 2
    reopened = assistant.with_private_index(tmp_path / "alice")  # after a restart: found on disk again
    assert "vin.txt" in sources(reopened.ask(question))


def test_private_indexes_are_folders_beside_a_postgresql_shared_store(pg_url: str, tmp_path: Path):
    """With `index.store_url`, the shared corpus is in PostgreSQL and each user's uploads stay a folder index
    of their own (`ui.private_dir`): never written into the shared database, searched with it by their
    owner only."""
    assistant = build_zorblax_assistant(tmp_path, **{"index.store_url": pg_url})
    alice = assistant.with_private_index(tmp_path / "alice")
    bob = assistant.with_private_index(tmp_path / "bob")
    (tmp_path / "a").mkdir()
    alice.add_documents([new_document(tmp_path / "a")], in_subprocess=True)  # as the chat does
    question = "Qu'est-ce que le glorbium ?"
    assert "vin.txt" in sources(alice.ask(question))
    assert "fromage.txt" in sources(alice.ask("Où est affiné le zorblax ?"))  # the shared corpus too
    assert "vin.txt" not in sources(bob.ask(question))
    assert "vin.txt" not in sources(assistant.ask(question))
    assert assistant.status()["documents"] == 1 and alice.status()["documents"] == 2
    assert (tmp_path / "alice").is_dir() and any((tmp_path / "alice").iterdir())  # a folder index
    from rag import open_assistant

    assert (
        open_assistant(assistant.settings).status()["documents"] == 1
    )  # the database holds the shared corpus only


def test_a_background_indexer_yields_the_cpu_to_answers():
    """The child of `add_documents(in_subprocess=True)` runs niced, bound to one core, torch on one thread."""
    script = (
        "import os, torch\n"
        "from rag.assistant import INDEXING_THREADS, _yield_to_answers\n"
        "torch.set_num_threads(2)\n"
        "_yield_to_answers()\n"
        "print(torch.get_num_threads(), INDEXING_THREADS, os.nice(0), os.environ['OMP_NUM_THREADS'],\n"
        "      len(os.sched_getaffinity(0)))\n"
    )
    threads, wanted, niceness, omp, cores = fresh_python_lines(script)
    assert threads == wanted == omp == cores == "1" and int(niceness) >= 10
