"""Conversations kept server-side, per person, in the chat's SQLite file (`ui.database`).

A conversation is saved turn by turn as each answer finishes: the question, the answer's text (the
history later questions are condensed with), the HTML the page showed, and the whole `Answer` as JSON
(its passages and citations). Reloading the page or restarting the server loses nothing; each person
lists, opens, renames and deletes only their own. Their settings (top-k, backend) are kept beside them.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ui.accounts import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated_at);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer_text TEXT,
    answer_html TEXT NOT NULL,
    answer_json TEXT,
    error TEXT,
    PRIMARY KEY (conversation_id, position)
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    conversation_id TEXT,
    position INTEGER NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    answer_text TEXT NOT NULL,
    answer_json TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS user_settings (
    owner TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
"""
TITLE_CHARS = 60


@dataclass(frozen=True)
class SavedTurn:
    question: str
    answer_text: str | None
    answer_html: str
    error: str | None
    answer_json: str | None = None


def title_of(question: str) -> str:
    title = " ".join(question.split())
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"


class ConversationStore:
    def __init__(self, database: Database) -> None:
        self.db = database
        with self.db.connect() as db:
            db.executescript(SCHEMA)

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def save_turn(
        self,
        owner: str,
        conversation_id: str,
        position: int,
        question: str,
        *,
        answer_html: str,
        answer: Any | None = None,
        error: str | None = None,
    ) -> None:
        """Record turn `position` (0-based) of a conversation, creating the conversation on its first turn."""
        now = time.time()
        with self.db.connect() as db:
            row = db.execute("SELECT owner FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO conversations (id, owner, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    (conversation_id, owner, title_of(question), now, now),
                )
            elif row["owner"] != owner:
                raise PermissionError("This conversation belongs to someone else.")
            db.execute(
                "INSERT OR REPLACE INTO turns (conversation_id, position, question, answer_text, answer_html, "
                "answer_json, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    position,
                    question,
                    getattr(answer, "text", None),
                    answer_html,
                    json.dumps(answer.to_dict(), ensure_ascii=False) if answer is not None else None,
                    error,
                ),
            )
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))

    def truncate(self, owner: str, conversation_id: str, position: int) -> None:
        """Forget turns `position` and later (a regenerated or edited question replaces them)."""
        with self.db.connect() as db:
            db.execute(
                "DELETE FROM turns WHERE conversation_id = ? AND position >= ? AND conversation_id IN "
                "(SELECT id FROM conversations WHERE owner = ?)",
                (conversation_id, position, owner),
            )

    def list(self, owner: str) -> list[tuple[str, str]]:
        """(title, id) of the owner's conversations, the latest first."""
        with self.db.connect() as db:
            rows = db.execute(
                "SELECT id, title FROM conversations WHERE owner = ? ORDER BY updated_at DESC", (owner,)
            ).fetchall()
        return [(row["title"], row["id"]) for row in rows]

    def turns(self, owner: str, conversation_id: str) -> list[SavedTurn]:
        with self.db.connect() as db:
            rows = db.execute(
                "SELECT t.question, t.answer_text, t.answer_html, t.error, t.answer_json FROM turns t "
                "JOIN conversations c ON c.id = t.conversation_id WHERE c.id = ? AND c.owner = ? "
                "ORDER BY t.position",
                (conversation_id, owner),
            ).fetchall()
        return [
            SavedTurn(r["question"], r["answer_text"], r["answer_html"], r["error"], r["answer_json"])
            for r in rows
        ]

    def rename(self, owner: str, conversation_id: str, title: str) -> bool:
        title = title_of(title)
        if not title:
            return False
        with self.db.connect() as db:
            return bool(
                db.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND owner = ?",
                    (title, conversation_id, owner),
                ).rowcount
            )

    def delete(self, owner: str, conversation_id: str) -> bool:
        with self.db.connect() as db:
            return bool(
                db.execute(
                    "DELETE FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)
                ).rowcount
            )

    def settings(self, owner: str) -> dict[str, Any]:
        with self.db.connect() as db:
            row = db.execute("SELECT settings FROM user_settings WHERE owner = ?", (owner,)).fetchone()
        return json.loads(row["settings"]) if row else {}

    def save_settings(self, owner: str, **values: Any) -> None:
        merged = {**self.settings(owner), **values}
        with self.db.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO user_settings (owner, settings) VALUES (?, ?)",
                (owner, json.dumps(merged)),
            )

    # --- feedback: thumbs up/down with an optional comment, kept with what was asked, answered and cited ---
    def save_feedback(
        self, owner: str, conversation_id: str | None, position: int, rating: str, answer: Any
    ) -> int:
        with self.db.connect() as db:
            cursor = db.execute(
                "INSERT INTO feedback (owner, conversation_id, position, rating, question, answer_text, "
                "answer_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    conversation_id,
                    position,
                    rating,
                    answer.question,
                    answer.text,
                    json.dumps(answer.to_dict(), ensure_ascii=False),
                    time.time(),
                ),
            )
            return int(cursor.lastrowid)

    def comment_feedback(self, owner: str, feedback_id: int, comment: str) -> bool:
        with self.db.connect() as db:
            return bool(
                db.execute(
                    "UPDATE feedback SET comment = ? WHERE id = ? AND owner = ?",
                    (comment.strip(), feedback_id, owner),
                ).rowcount
            )
