"""Conversations and settings kept per person in SQLite: saved as answers finish, listed, reopened with
their history, renamed, deleted; they survive a new page and a new server (a new store on the same file)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from ui_fakes import FakeAssistant

from rag.settings import Settings
from tests.conftest import REPO
from ui.accounts import Database
from ui.app import ChatHandlers, Conversation
from ui.conversations import ConversationStore


class Request:  # what Gradio passes: who is asking
    def __init__(self, username: str) -> None:
        self.username = username
        self.session_hash = f"session-of-{username}"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "chat.sqlite3"


def handlers_over(database: Path, seeds_dir: Path, tmp_path: Path) -> ChatHandlers:
    """A chat server's handlers; a second call on the same file is the server after a restart."""
    settings = Settings.model_validate({"ui": {"uploads_dir": str(tmp_path / "uploads")}})
    fake = FakeAssistant(sorted(seeds_dir.glob("*.txt")), settings)
    return ChatHandlers(fake, conversations=ConversationStore(Database(database)))


def ask(handlers: ChatHandlers, question: str, conversation: Conversation, who: str) -> Conversation:
    *_, (_, conversation, _, _) = handlers.respond(question, conversation, 3, "extractive", Request(who))
    return conversation


def test_a_conversation_is_kept_and_reopened_with_its_history(database, seeds_dir, tmp_path):
    server = handlers_over(database, seeds_dir, tmp_path)
    conversation = ask(server, "Quelle est la valorisation d'OpenAI ?", Conversation(), "alice")
    conversation = ask(server, "Et Microsoft ?", conversation, "alice")
    assert conversation.conversation_id

    restarted = handlers_over(database, seeds_dir, tmp_path)
    listed = restarted.conversation_list(Request("alice"))["choices"]
    assert listed == [("Quelle est la valorisation d'OpenAI ?", conversation.conversation_id)]
    chat, reopened, title = restarted.open_conversation(conversation.conversation_id, Request("alice"))
    assert title == "Quelle est la valorisation d'OpenAI ?"
    assert [m["content"] for m in chat] == [m["content"] for m in conversation.messages()]
    reopened = ask(restarted, "Et Sam Altman ?", reopened, "alice")  # goes on with its history
    history = restarted.assistant.calls[-1]["history"]
    assert [m["content"] for m in history if m["role"] == "user"] == [
        "Quelle est la valorisation d'OpenAI ?",
        "Et Microsoft ?",
    ]
    assert len(restarted.conversations.turns("alice", conversation.conversation_id)) == 3


def test_an_answer_brings_its_conversation_list_with_its_last_update(database, seeds_dir, tmp_path):
    """The list (the answered conversation new in it, or moved to the top) comes with the answer's last
    page update: no request of its own after each answer. Earlier updates, and later answers of a
    conversation the page already shows first, leave it as it is."""
    server = handlers_over(database, seeds_dir, tmp_path)
    server.streams.per_answer = server.streams.total = 1000.0
    first = list(
        server.respond(
            "Quelle est la valorisation d'OpenAI ?", Conversation(), 3, "extractive", Request("al")
        )
    )
    *earlier, (_, older, _, listed) = first
    assert all(update[3] == {"__type__": "update"} for update in earlier)  # gr.skip(): unchanged
    assert listed["choices"] == [("Quelle est la valorisation d'OpenAI ?", older.conversation_id)]
    assert listed["value"] == older.conversation_id
    *_, (_, newer, _, listed) = server.respond(
        "Qui est Sam Altman ?", Conversation(), 3, "extractive", Request("al")
    )
    assert [cid for _, cid in listed["choices"]] == [newer.conversation_id, older.conversation_id]
    *_, (_, newer, _, listed) = server.respond("Et Microsoft ?", newer, 3, "extractive", Request("al"))
    assert listed == {"__type__": "update"}  # the list already shows it first: not queried, not sent
    reopened = server.open_conversation(older.conversation_id, Request("al"))[1]
    *_, (_, older, _, listed) = server.respond("Et Microsoft ?", reopened, 3, "extractive", Request("al"))
    assert [cid for _, cid in listed["choices"]] == [older.conversation_id, newer.conversation_id]  # moved up
    assert listed["value"] == older.conversation_id
    empty = list(server.respond("   ", older, 3, "extractive", Request("al")))
    assert [update[3] for update in empty] == [{"__type__": "update"}]


def test_each_person_sees_only_their_own_conversations(database, seeds_dir, tmp_path):
    server = handlers_over(database, seeds_dir, tmp_path)
    mine = ask(server, "Quelle est la valorisation d'OpenAI ?", Conversation(), "alice")
    assert server.conversation_list(Request("bob"))["choices"] == []
    chat, conversation, _ = server.open_conversation(mine.conversation_id, Request("bob"))
    assert chat == [] and conversation.turns == []  # an id guessed by someone else opens nothing
    server.delete_conversation(mine.conversation_id, Conversation(), Request("bob"))
    assert server.conversation_list(Request("alice"))["choices"]  # not deleted by bob


def test_rename_delete_and_settings(database, seeds_dir, tmp_path):
    server = handlers_over(database, seeds_dir, tmp_path)
    first = ask(server, "Quelle est la valorisation d'OpenAI ?", Conversation(), "alice")
    second = ask(server, "Qui est Sam Altman ?", Conversation(), "alice")
    alice = Request("alice")
    assert [cid for _, cid in server.conversation_list(alice)["choices"]] == [
        second.conversation_id,
        first.conversation_id,
    ]  # latest first
    server.rename_conversation(first.conversation_id, "Valorisation", alice)
    assert ("Valorisation", first.conversation_id) in server.conversation_list(alice)["choices"]
    listed, chat, conversation, _ = server.delete_conversation(second.conversation_id, second, alice)
    assert chat == [] and conversation.turns == []  # the open one was deleted: a new one starts
    assert [cid for _, cid in listed["choices"]] == [first.conversation_id]

    server.save_settings(12, "extractive", alice)
    _, top_k, backend = handlers_over(database, seeds_dir, tmp_path).load_person(alice)
    assert top_k["value"] == 12 and backend["value"] == "extractive"


class Like:  # what Gradio passes for a thumb: the message index and the choice
    def __init__(self, index: int, liked: bool) -> None:
        self.index, self.liked, self.value = index, liked, None


def test_thumbs_down_is_kept_with_the_answer_and_becomes_a_golden_candidate(database, seeds_dir, tmp_path):
    from eval.feedback import write_candidates

    server = handlers_over(database, seeds_dir, tmp_path)
    conversation = ask(server, "Quelle est la valorisation d'OpenAI ?", Conversation(), "alice")
    conversation = ask(server, "Et Microsoft ?", conversation, "alice")
    feedback_id, note, row = server.feedback(conversation, Like(3, False), Request("alice"))  # 2nd answer
    assert "kept for review" in note and row["visible"] is True
    server.comment(feedback_id, "Ne répond pas sur Microsoft.", Request("alice"))
    server.feedback(conversation, Like(1, True), Request("alice"))  # a thumbs-up is no candidate

    out = tmp_path / "candidates.jsonl"
    assert write_candidates(database, out) == 1
    (line,) = [json.loads(text) for text in out.read_text(encoding="utf-8").splitlines()]
    assert line["question"] == "Et Microsoft ?" and line["answerable"] is None and line["answer"] == ""
    assert line["review"]["comment"] == "Ne répond pas sur Microsoft."
    assert line["review"]["given_answer"] == conversation.turns[1].answer.text
    assert line["review"]["passages"] and line["evidence"][0]["doc"] == "openai-altman.fr.txt"


def test_regenerate_and_edit_take_the_last_question_back(database, seeds_dir, tmp_path):
    server = handlers_over(database, seeds_dir, tmp_path)
    conversation = ask(server, "Quelle est la valorisation d'OpenAI ?", Conversation(), "alice")
    conversation = ask(server, "Et Microsoft ?", conversation, "alice")
    chat, conversation, box = server.take_back_last(conversation, Request("alice"))
    assert box == "Et Microsoft ?" and len(conversation.turns) == 1 and len(chat) == 2
    assert len(server.conversations.turns("alice", conversation.conversation_id)) == 1  # forgotten when kept
    conversation = ask(server, "Et Sam Altman ?", conversation, "alice")  # the edited question
    kept = server.conversations.turns("alice", conversation.conversation_id)
    assert [t.question for t in kept] == ["Quelle est la valorisation d'OpenAI ?", "Et Sam Altman ?"]


def test_export_is_markdown_with_numbered_sources(database, seeds_dir, tmp_path):
    server = handlers_over(database, seeds_dir, tmp_path)
    conversation = ask(server, "Quelle est la valorisation d'OpenAI ?", Conversation(), "alice")
    exported = Path(server.export(conversation, Request("alice"))["value"]).read_text(encoding="utf-8")
    assert exported.startswith("# Quelle est la valorisation d'OpenAI ?\n")
    assert "## 1. Quelle est la valorisation d'OpenAI ?" in exported
    assert "80 milliards de dollars. [1]" in exported
    assert "Sources:\n[1] openai-altman.fr.txt: “80 milliards de dollars.”" in exported
    assert server.last_answer_markdown(conversation).startswith("80 milliards de dollars. [1]\n\nSources:")


def test_stop_marks_the_answer_being_written(database, seeds_dir, tmp_path):
    server = handlers_over(database, seeds_dir, tmp_path)
    conversation = Conversation()
    answering = server.respond("Quelle est la valorisation d'OpenAI ?", conversation, 3, "extractive")
    next(answering), next(answering)  # the question is shown and the answer has begun
    chat, conversation = server.stopped(conversation)
    answering.close()
    assert conversation.turns[-1].error.startswith("Stopped.")
    assert "Stopped." in chat[-1]["content"]


def test_a_reopened_conversation_shows_its_turns_as_they_were_shown(database, seeds_dir, tmp_path):
    """Each kept turn reopens as the chat showed it (a stopped answer reopened without the text written
    before Stop); a question refused before any work ("Nothing was asked") is not kept, so it never reopens
    as a failed answer."""
    server = handlers_over(database, seeds_dir, tmp_path)
    conversation = ask(server, "Quelle est la valorisation d'OpenAI ?", Conversation(), "alice")
    conversation = ask(server, "x" * 5000, conversation, "alice")  # over ui.max_question_chars
    assert "Nothing was asked" in conversation.messages()[-1]["content"]
    answering = server.respond("Et Microsoft ?", conversation, 3, "extractive", Request("alice"))
    next(answering), next(answering)
    _, conversation = server.stopped(conversation, Request("alice"))
    answering.close()
    live = [m["content"] for m in conversation.messages()]
    _, reopened, _ = handlers_over(database, seeds_dir, tmp_path).open_conversation(
        conversation.conversation_id, Request("alice")
    )
    assert [m["content"] for m in reopened.messages()] == live[:2] + live[4:]
    assert "Stopped." in live[-1] and "answer-text partial" in live[-1]


class BrowserRequest:  # no login: a page load (session) of a browser that keeps an id in a cookie
    def __init__(self, cookie: str | None, session: str) -> None:
        self.username = None
        self.session_hash = session
        self.headers = {"cookie": cookie} if cookie else {}


def test_without_a_login_each_browser_has_its_own_list_across_reloads(database, seeds_dir, tmp_path):
    from ui.app import person

    server = handlers_over(database, seeds_dir, tmp_path)
    first_id, second_id = "a" * 32, "b" * 32
    page = BrowserRequest(f"theme=dark; rag_browser={first_id}", "load-1")
    *_, (_, mine, _, _) = server.respond("Qui est Sam Altman ?", Conversation(), 3, "extractive", page)
    reloaded = BrowserRequest(f"rag_browser={first_id}", "load-2")  # same browser, new page
    assert server.conversation_list(reloaded)["choices"] == [("Qui est Sam Altman ?", mine.conversation_id)]
    other = BrowserRequest(f"rag_browser={second_id}", "load-3")
    assert server.conversation_list(other)["choices"] == []
    assert person(reloaded) == f"browser:{first_id}" != person(other)
    # No id, or not one (a forged value): the page load is its own person, never someone else's list.
    assert person(BrowserRequest(None, "load-4")) == "load-4"
    assert person(BrowserRequest("rag_browser=../alice", "load-5")) == "load-5"
    assert server.conversation_list(BrowserRequest("rag_browser=x", "load-6"))["choices"] == []


def test_a_saved_answer_survives_the_server_being_killed_right_after(database):
    """Saves do not wait for the disk (WAL with synchronous=NORMAL: 50 sessions' saves no longer queue behind
    each other's flush), yet a server killed at once, with no close and no checkpoint, loses nothing."""
    script = (
        "import os\n"
        "from ui.accounts import Database\n"
        "from ui.conversations import ConversationStore\n"
        f"store = ConversationStore(Database({str(database)!r}))\n"
        "store.save_turn('alice', 'c1', 0, 'Quelle est la valorisation ?', answer_html='<p>80 milliards</p>')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120, capture_output=True)
    assert done.returncode == -9, done.stderr
    store = ConversationStore(Database(database))
    assert [cid for _, cid in store.list("alice")] == ["c1"]
    assert [turn.question for turn in store.turns("alice", "c1")] == ["Quelle est la valorisation ?"]
    with Database(database).connect() as db:
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sqlite3.connect(database).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
