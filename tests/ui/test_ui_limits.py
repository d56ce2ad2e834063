"""Limits of the shared chat, checked on the page's handlers without a browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_fakes import FakeAssistant

from rag.settings import Settings
from ui.app import ChatHandlers, Conversation, check_uploads
from ui.limits import RateLimiter


@pytest.fixture
def handlers(tmp_path: Path, seeds_dir: Path) -> ChatHandlers:
    settings = Settings.model_validate(
        {
            "ui": {
                "uploads_dir": str(tmp_path / "uploads"),
                "max_question_chars": 200,
                "questions_per_minute": 3,
                "max_upload_mb": 0.001,
                "max_upload_files": 2,
            }
        }
    )
    return ChatHandlers(FakeAssistant(sorted(seeds_dir.glob("*.txt")), settings))


def ask(handlers: ChatHandlers, question: str, conversation: Conversation | None = None):
    conversation = conversation or Conversation()
    *_, (messages, conversation, _, _) = handlers.respond(question, conversation, 3, "extractive")
    return conversation


def test_a_too_long_question_is_refused_before_any_search(handlers):
    conversation = ask(handlers, "Pourquoi ?" * 100_000)
    turn = conversation.turns[-1]
    assert "1,000,000 characters long; the limit is 200" in turn.error
    assert len(turn.question) < 400  # not a million characters echoed back into the page
    assert handlers.assistant.calls == []
    assert conversation.history() == []
    # What the chat says under it: nothing was asked (not "pick another backend", which would not help).
    shown = conversation.messages()[-1]["content"]
    assert "Nothing was asked" in shown and "another backend" not in shown


def test_questions_per_minute_are_limited_per_person(handlers):
    conversation = Conversation()
    for _ in range(3):
        conversation = ask(handlers, "Quelle est la valorisation d'OpenAI ?", conversation)
    refused = ask(handlers, "Et Microsoft ?", conversation).turns[-1]
    assert refused.error.startswith("Too many questions: at most 3 per minute")
    assert len(handlers.assistant.calls) == 3


@pytest.mark.parametrize(
    ("top_k", "backend", "named"),
    [
        (0, "extractive", "top-k"),
        (21, "extractive", "top-k"),
        ("5", "extractive", "top-k"),
        (3, "gpt-9", "gpt-9"),
    ],
)
def test_settings_out_of_the_page_choices_are_refused_by_name(handlers, top_k, backend, named):
    """The answer event takes the page's values unprocessed (no Gradio check in a worker thread per
    value): another client's out-of-range top-k or unknown backend is named in the chat, before any search."""
    conversation = Conversation()
    *_, (_, conversation, _, _) = handlers.respond("Qui est Sam Altman ?", conversation, top_k, backend)
    assert named in conversation.turns[-1].error and handlers.assistant.calls == []
    *_, (_, conversation, _, _) = handlers.respond("Qui est Sam Altman ?", conversation, 20.0, None)
    assert conversation.turns[-1].error is None and len(handlers.assistant.calls) == 1


def test_the_answer_event_takes_the_page_values_unprocessed(handlers, tmp_path: Path):
    # ... and gives them as the page takes them: the Chatbot's payload made in the answer's thread, a kept
    # conversation list sent as its selection (an update that keeps it rebuilt the dropdown per answer).
    from ui.accounts import Database
    from ui.app import LIST_KEPT, build_app
    from ui.conversations import ConversationStore

    store = ConversationStore(Database(tmp_path / "chat.sqlite3"))
    demo = build_app(handlers.assistant, conversations=store)
    asked = [fn for fn in demo.fns.values() if fn.api_name == "ask"]
    assert len(asked) == 1 and asked[0].preprocess is False and asked[0].postprocess is False
    chatbot = asked[0].outputs[0]
    conversation = Conversation()
    *_, (chat, conversation, box, listed) = asked[0].fn("Qui est Sam Altman ?", conversation, 5, None, None)
    assert chat == chatbot.postprocess(conversation.messages()).model_dump()
    assert listed["choices"] == [("Qui est Sam Altman ?", conversation.conversation_id)]  # new in the list
    *_, (chat, conversation, box, listed) = asked[0].fn("Et OpenAI ?", conversation, 5, None, None)
    assert len(chat) == 4 and chat == chatbot.postprocess(conversation.messages()).model_dump()
    assert listed == conversation.conversation_id and listed is not LIST_KEPT  # kept, selected


def test_rate_limiter_window_slides():
    now = [0.0]
    limiter = RateLimiter(2, window=60, clock=lambda: now[0])
    assert limiter.check("a") is None and limiter.check("a") is None
    assert "Wait 60 s" in limiter.check("a")
    assert limiter.check("b") is None  # another person is not slowed down
    now[0] = 61
    assert limiter.check("a") is None


def test_uploads_too_big_or_too_many_are_refused_by_name(handlers, tmp_path: Path):
    small, big = tmp_path / "petit.txt", tmp_path / "gros.txt"
    small.write_text("zorblax", encoding="utf-8")
    big.write_text("zorblax " * 1000, encoding="utf-8")
    checked = check_uploads(handlers.settings, [str(small), str(big)], None)
    assert [p.name for p in checked.accepted] == ["petit.txt"]
    assert "Rejected gros.txt: 0.0 MB, more than the 0.001 MB limit" in checked.refusals_html
    too_many = check_uploads(handlers.settings, [str(small)] * 3, None)
    assert too_many.accepted == [] and "3 files chosen; at most 2" in too_many.refusals_html
