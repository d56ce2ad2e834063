"""`rag eval --from-feedback`: the chat's thumbs-down answers as golden-set candidates for a person to review.

The chat keeps each thumb in the `feedback` table of its SQLite file (`ui.database`): who, the question,
the answer, the whole `Answer` as JSON (passages and citations) and an optional comment. This reads that
table with sqlite3 (the table is the contract; eval does not import the UI) and writes one JSONL line per
thumbs-down in the golden format of `eval/golden/*.jsonl`, with what a reviewer needs beside it:

    {"id": "feedback-12", "question": ..., "lang": "fr", "answerable": null, "answer": "",
     "evidence": [{"doc": "file.txt", "quote": "the passage the answer cited"}],
     "review": {"given_answer": ..., "comment": ..., "passages": [...], "asked_at": ...}}

`answerable` is null and `answer` empty on purpose: a person decides both (no anchor closes this loop),
then moves the reviewed lines into a golden file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any


class FeedbackError(ValueError):
    pass


def read_thumbs_down(database: Path) -> list[dict[str, Any]]:
    if not Path(database).is_file():
        raise FeedbackError(
            f"No chat database at {database}: feedback is kept there by the chat (setting ui.database). "
            "Give the right one with RAG_UI__DATABASE=PATH."
        )
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute(
                "SELECT id, question, answer_text, answer_json, comment, created_at FROM feedback "
                "WHERE rating = 'down' ORDER BY id"
            ).fetchall()
        except sqlite3.OperationalError:
            return []  # a database from before feedback existed: nothing to review
        except sqlite3.DatabaseError as exc:
            raise FeedbackError(
                f"{database} is not a chat database ({exc}). Give the chat's with RAG_UI__DATABASE=PATH "
                "(setting ui.database)."
            ) from exc
    return [dict(row) for row in rows]


def candidate(row: dict[str, Any]) -> dict[str, Any]:
    answer = json.loads(row["answer_json"])
    cited = {c["marker"] for c in answer.get("citations") or []}
    passages = answer.get("passages") or []
    evidence = [
        {"doc": Path(c["source"]).name, "quote": c["quote"]}
        for c in answer.get("citations") or []
        if c.get("quote")
    ]
    return {
        "id": f"feedback-{row['id']}",
        "question": row["question"],
        "lang": answer.get("language") or "",
        "answerable": None,
        "answer": "",
        "evidence": evidence,
        "review": {
            "given_answer": row["answer_text"],
            "comment": row["comment"],
            "abstained": answer.get("abstained", False),
            "passages": [
                {
                    "number": p["number"],
                    "doc": Path(p["source"]).name,
                    "cited": p["number"] in cited,
                    "text": p["text"],
                }
                for p in passages
            ],
            "asked_at": time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"])),
        },
    }


def write_candidates(database: Path, out: Path) -> int:
    """Write the candidates of `database` into `out` (JSONL); return how many."""
    rows = read_thumbs_down(database)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(candidate(row), ensure_ascii=False) + "\n")
    except OSError as exc:
        raise FeedbackError(
            f"Cannot write the candidates to {out} ({exc.strerror}). Give a file you can write to: "
            "rag eval --from-feedback FILE."
        ) from exc
    return len(rows)
