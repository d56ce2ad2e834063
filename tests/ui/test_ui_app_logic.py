"""The page's plain-Python parts: per-session conversation, uploads, errors (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_fakes import FakeAssistant

from rag.errors import BackendError, RagError
from rag.records import Answer
from rag.settings import Settings
from tests.conftest import fresh_python_lines
from ui.app import (
    Conversation,
    Turn,
    add_uploads,
    describe_error,
    existing_collections,
    safe_collection,
    split_by_type,
)


def test_history_holds_finished_turns_only():
    conversation = Conversation()
    done = Turn("Q1 ?", answer=Answer("Q1 ?", "Q1 ?", "R1 [1]", "fr", [], [], False))
    failed = Turn("Q2 ?", text="partial", error="backend down")
    streaming = Turn("Q3 ?", text="R3 so far")
    conversation.turns += [done, failed, streaming]
    assert conversation.history() == [
        {"role": "user", "content": "Q1 ?"},
        {"role": "assistant", "content": "R1 [1]"},
    ]
    shown = conversation.messages()
    assert [m["role"] for m in shown] == ["user", "assistant"] * 3
    assert "answer-error" in shown[3]["content"] and "answer-streaming" in shown[5]["content"]


def test_conversations_do_not_share_turns():
    first, second = Conversation(), Conversation()
    first.turns.append(Turn("Q ?"))
    assert second.turns == []


def test_errors_for_people():
    assert describe_error(BackendError("Ollama at http://127.0.0.1:11434 is not running.")).startswith(
        "Ollama"
    )
    assert describe_error(ValueError("x")) == "Unexpected error (ValueError): x"


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "  ", ".hidden", "x" * 80])
def test_collection_names_are_plain_folder_names(name):
    if not name.strip():
        assert safe_collection(name) == "uploads"
    else:
        with pytest.raises(ValueError, match="Collection name"):
            safe_collection(name)


def test_collection_names_accepted():
    assert safe_collection(" Rapports 2024 ") == "Rapports 2024"
    assert safe_collection("notes_v1.2") == "notes_v1.2"


def test_files_are_split_by_extension_case_insensitively():
    accepted, rejected = split_by_type(["/t/a.TXT", "/t/b.pdf", "/t/c.exe", "/t/noext"], [".txt", ".pdf"])
    assert [p.name for p in accepted] == ["a.TXT", "b.pdf"]
    assert [p.name for p in rejected] == ["c.exe", "noext"]


def test_existing_collections_always_offer_the_default(tmp_path: Path):
    assert existing_collections(tmp_path / "missing") == ["uploads"]
    (tmp_path / "rapports").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert existing_collections(tmp_path) == ["rapports", "uploads"]


@pytest.fixture
def fake(tmp_path: Path, seeds_dir: Path) -> FakeAssistant:
    settings = Settings.model_validate({"ui": {"uploads_dir": str(tmp_path / "uploads")}})
    return FakeAssistant(sorted(seeds_dir.glob("*.txt")), settings)


def test_uploads_are_copied_into_the_collection_and_indexed(fake: FakeAssistant, tmp_path: Path):
    note = tmp_path / "in" / "note.md"
    note.parent.mkdir()
    note.write_text("# Zorblax\nLe zorblax est bleu.\n", encoding="utf-8")
    seen = []
    outcome = add_uploads(fake, [str(note)], "Rapports", on_progress=lambda *a: seen.append(a))
    assert outcome.indexed
    assert (tmp_path / "uploads" / "Rapports" / "note.md").read_text(encoding="utf-8").startswith("# Zorblax")
    assert "Rapports" in outcome.message_html and "1 new file. Searchable now." in outcome.message_html
    assert "0 updated" not in outcome.message_html  # (it said "1 new, 0 updated file")
    assert seen == [(0, 1, "starting"), (1, 1, "reading")]
    # The copy in the collection is what gets indexed, not the upload's temporary file.
    assert fake.indexed == [[tmp_path / "uploads" / "Rapports" / "note.md"]]


def test_unsupported_uploads_are_refused_by_name_and_the_rest_indexed(fake: FakeAssistant, tmp_path: Path):
    bad, good = tmp_path / "x<b>.exe", tmp_path / "ok.txt"
    bad.write_bytes(b"MZ")
    good.write_text("zorblax", encoding="utf-8")
    outcome = add_uploads(fake, [str(bad), str(good)], None)
    assert outcome.indexed
    assert "Rejected x&lt;b&gt;.exe: unsupported file type &quot;.exe&quot;" in outcome.message_html
    assert ".docx" in outcome.message_html
    assert not (tmp_path / "uploads" / "uploads" / bad.name).exists()
    assert fake.indexed == [[tmp_path / "uploads" / "uploads" / "ok.txt"]]


def test_uploads_into_a_path_like_collection_are_refused(fake: FakeAssistant, tmp_path: Path):
    good = tmp_path / "ok.txt"
    good.write_text("zorblax", encoding="utf-8")
    outcome = add_uploads(fake, [str(good)], "../../etc")
    assert not outcome.indexed and "Collection name" in outcome.message_html
    assert not (tmp_path / "uploads").exists() and fake.indexed == []


def test_indexing_errors_are_reported(fake: FakeAssistant, tmp_path: Path):
    def broken(paths, *, on_progress=None):
        raise RagError("Could not read ok.txt: not UTF-8. Save it as UTF-8 and add it again.")

    fake.add_documents = broken
    good = tmp_path / "ok.txt"
    good.write_text("zorblax", encoding="utf-8")
    outcome = add_uploads(fake, [str(good)], None)
    assert not outcome.indexed
    assert "Indexing failed: Could not read ok.txt" in outcome.message_html


@pytest.fixture
def real_assistant(zorblax_assistant):
    return zorblax_assistant


def test_an_empty_upload_is_named_as_empty_not_already_indexed(real_assistant, tmp_path: Path):
    empty = tmp_path / "vide.txt"
    empty.write_bytes(b"")
    outcome = add_uploads(real_assistant, [str(empty)], None)
    assert "Rejected vide.txt: the file is empty" in outcome.message_html
    assert "already indexed" not in outcome.message_html


def test_a_skipped_file_is_reported_once_not_in_every_later_upload(real_assistant, tmp_path: Path):
    broken = tmp_path / "casse.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not a PDF at all")
    first = add_uploads(real_assistant, [str(broken)], None)
    assert "Skipped casse.pdf" in first.message_html and "nothing was added" in first.message_html
    good = tmp_path / "note.txt"
    good.write_text("Le zorblax se mange avec du pain de seigle.\n", encoding="utf-8")
    second = add_uploads(real_assistant, [str(good)], None)
    assert "1 new" in second.message_html
    assert "casse.pdf" not in second.message_html


def test_serving_chooses_the_plot_backend_so_no_event_imports_pyplot():
    """Gradio asks matplotlib for its backend in every event; unset, the first question after a start
    imported pyplot (2.3 s) while every other waited. `choose_plot_backend` (called by `serve`) prevents it."""
    script = (
        "import sys\n"
        "from ui.app import choose_plot_backend\n"
        "from gradio import utils\n"
        "choose_plot_backend()\n"
        "with utils.MatplotlibBackendMananger():\n"
        "    pass\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    assert fresh_python_lines(script)[-1] == "False"


def test_serving_runs_numpys_blas_on_one_thread():
    """Answers run side by side, one per core; OpenBLAS sharing each small product between its threads made
    them wait for each other on a busy machine. `blas_on_one_thread` (called by `serve`) sets one thread."""
    script = (
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from ui.app import blas_on_one_thread\n"
        "blas = lambda: max(lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas')\n"
        "before = blas()\n"
        "blas_on_one_thread()\n"
        "print(before, blas())\n"
    )
    before, after = fresh_python_lines(script)[-2:]
    assert after == "1", f"BLAS threads: {before} before, {after} after"


def test_the_queue_does_not_recompute_the_unused_monitoring_summary_after_each_event(fake: FakeAssistant):
    """Gradio's queue summarised its last events (up to 10,000) in a pandas DataFrame after every event, for
    a monitoring dashboard the chat never shows: up to 10 ms of the server's CPU per question."""
    from ui.app import build_app

    queue = build_app(fake)._queue
    record = {"time": 0.0, "status": "success", "process_time": 0.1, "function": "ask", "session_hash": "s"}
    queue.events_recorded += 200
    assert queue.compute_analytics_summary([dict(record) for _ in range(200)]) == {"functions": {}}
    assert queue.ANALYTICS_MAX_EVENTS == 1  # one record kept, not the last 10,000


def test_the_queue_polls_for_events_and_progress_less_often_than_gradios_default(fake: FakeAssistant):
    """Gradio's queue looked for new events every 1 ms and for progress every 10 ms, on the event loop every
    session shares, even with nothing to do (an idle server used 5 % of a core)."""
    from ui.app import PROGRESS_POLL_S, QUEUE_POLL_S, build_app

    queue = build_app(fake)._queue
    assert (queue.sleep_when_free, queue.progress_update_sleep_when_free) == (QUEUE_POLL_S, PROGRESS_POLL_S)
    assert 0.001 < QUEUE_POLL_S <= 0.005 and PROGRESS_POLL_S <= 0.1  # a question waits at most 5 ms more


def test_streamed_answers_share_one_budget_of_page_updates():
    from ui.app import StreamBudget

    budget = StreamBudget(per_answer=10, total=40)
    assert budget.interval_s() == 0.1  # alone: its own rate
    with budget.streaming(), budget.streaming(counted=False):  # an extractive answer is not a stream
        assert budget.active == 1 and budget.interval_s() == 0.1
        with budget.streaming(), budget.streaming(), budget.streaming(), budget.streaming():
            assert budget.interval_s() == 5 / 40  # five streams: 8 updates a second each
    assert budget.active == 0
    many = StreamBudget(per_answer=10, total=40)
    many.active = 50
    assert many.interval_s() == 1.25  # 50 at once: 40 a second in all


def test_an_extractive_answer_is_one_page_update_that_also_clears_the_box(tmp_path, seeds_dir):
    """Each page update sends the whole chat again (~10 ms of the server's CPU under 50 sessions): an
    answer computed whole is shown in one, which clears the question box too. Its query is embedded ahead
    of its turn for a CPU slot (hybrid mode; nothing to do here, in lexical mode)."""
    from ui_browser import copy_seeds, lexical_settings

    from rag import build_assistant
    from ui.app import ChatHandlers

    assistant = build_assistant([copy_seeds(seeds_dir, tmp_path)], lexical_settings(tmp_path))
    embedded: list[str] = []
    assistant.embed_ahead = lambda question, history=None, *, backend=None: embedded.append(question)
    handlers = ChatHandlers(assistant)
    conversation = Conversation()
    updates = list(handlers.respond("Quelle est la valorisation d'OpenAI ?", conversation, 3, "extractive"))
    assert len(updates) == 1
    messages, conversation, box, listed = updates[0]
    assert box == "" and "milliards" in messages[-1]["content"] and "badge-ok" in messages[-1]["content"]
    assert embedded == ["Quelle est la valorisation d'OpenAI ?"]
    updates = list(handlers.respond("Et qui est son principal investisseur ?", conversation, 3, "extractive"))
    assert len(updates) == 1 and len(updates[0][0]) == 4


def test_a_streamed_answer_clears_the_box_once_and_never_sends_it_again(fake: FakeAssistant):
    """The first update clears the box; every later one leaves it as it is (`gr.update()` without a value).
    Not the same "" again: the page sets every plain value it receives, even an unchanged one, so "" would
    erase the next question typed meanwhile (the browser test of `test_ui_chat_fake.py`)."""
    from ui.app import ChatHandlers

    fake.delay = 0.01  # pieces 10 ms apart,
    handlers = ChatHandlers(fake)
    handlers.streams.per_answer = handlers.streams.total = 1000.0  # and an update allowed every 1 ms
    updates = list(handlers.respond("Quelle est la valorisation d'OpenAI ?", Conversation(), 3, "fake"))
    boxes = [box for _, _, box, _ in updates]
    assert len(boxes) >= 4 and boxes[0] == ""
    assert all(box == {"__type__": "update"} for box in boxes[1:])  # gr.update(): no value, nothing changes


def test_a_streamed_answer_sends_the_conversation_state_first_and_last_only(fake: FakeAssistant):
    """In between, the session's own `Conversation` is changed in place (`gr.skip()`: Gradio neither
    stores it again nor rebuilds the State's config at every update)."""
    from ui.app import ChatHandlers

    fake.delay = 0.01
    handlers = ChatHandlers(fake)
    handlers.streams.per_answer = handlers.streams.total = 1000.0
    conversation = Conversation()
    updates = list(handlers.respond("Quelle est la valorisation d'OpenAI ?", conversation, 3, "fake"))
    states = [state for _, state, _, _ in updates]
    assert len(states) >= 4 and states[0] is conversation and states[-1] is conversation
    assert all(state == {"__type__": "update"} for state in states[1:-1])
    assert conversation.turns[-1].answer is not None  # the answer is in the session's object itself


def test_a_rejected_file_stays_named_above_the_progress_of_the_rest(fake: FakeAssistant, tmp_path: Path):
    """The line naming a rejected file went at the first progress update and came back with the result."""
    import time

    from ui.app import ChatHandlers

    fake.index_delay = 0.5
    handlers = ChatHandlers(fake)
    bad, good = tmp_path / "tableur.xlsx", tmp_path / "ok.txt"
    bad.write_bytes(b"PK\x03\x04")
    good.write_text("zorblax", encoding="utf-8")
    job_id, started, *_ = handlers.start_upload([str(bad), str(good)], None)
    assert "Rejected tableur.xlsx" in started and 'class="upload-job"' in started
    polled, shown, *_ = handlers.poll_upload(job_id, "extractive")
    assert polled == job_id  # still indexing
    assert "Rejected tableur.xlsx" in shown and 'class="upload-job"' in shown
    deadline = time.monotonic() + 10
    while polled is not None and time.monotonic() < deadline:
        time.sleep(0.05)
        polled, shown, *_ = handlers.poll_upload(job_id, "extractive")
    assert polled is None and "Rejected tableur.xlsx" in shown and "upload-job" not in shown
