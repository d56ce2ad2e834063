"""Conversations and settings kept per person in SQLite: saved as answers finish, listed, reopened with
their history, renamed, deleted; they survive a new page and a new server (a new store on the same file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_fakes import FakeAssistant

from rag.settings import Settings
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
    *_, (_, conversation, _) = handlers.respond(question, conversation, 3, "extractive", Request(who))
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
