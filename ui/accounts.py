"""Accounts of the shared chat: users with a role, passwords hashed with scrypt, in the app's SQLite file.

    rag users add NAME [--admin]      # asks for the password twice (or reads it from stdin)
    rag users list | remove NAME | passwd NAME

The database is `ui.database` (default `.rag/chat.sqlite3`, beside the index). A password is stored as
`scrypt$N$r$p$salt$hash` (hashlib.scrypt, 16-byte random salt, 32-byte key): never in clear, never logged.
Roles: `admin` manages the shared corpus (uploads go into it); `user` reads it and uploads into a private
collection only they search.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROLES = ("admin", "user")
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD = 8
# scrypt cost: 2**14 x 8 x 1 takes ~50 ms and 16 MB here, the parameters Python's docs and OWASP cite.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class AccountError(ValueError):
    """A bad user name, password or role; the message says how to fix it."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    encode = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt).decode()}${encode(key).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


class Database:
    """The chat's SQLite file: one connection per thread (sqlite3 objects are not shared across threads)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")  # readers do not wait for a writer
            # A commit is written to the WAL without waiting for the disk (fsync at checkpoints only): still
            # kept when the server crashes or is killed, lost only if the machine itself goes down before
            # the next checkpoint. Each answer is saved before it is shown, and with a disk flush per
            # commit, 50 sessions' saves waited in line behind each other's (150 saves from 50 threads,
            # this machine: 1.2 s against 0.25 s, 1.03 against 0.66 ms of CPU per save).
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._local.connection = connection
        with connection:  # one transaction: committed, or rolled back on an error
            yield connection


SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    password TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
"""


class Accounts:
    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, name: str, password: str, role: str = "user") -> User:
        if not USER_NAME.match(name or ""):
            raise AccountError(
                f"User name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit."
            )
        if role not in ROLES:
            raise AccountError(f"Role {role!r} is not one of {', '.join(ROLES)}.")
        check_new_password(password)
        with self.db.connect() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AccountError(
                    f"User {name!r} exists already. Change the password with `rag users passwd {name}`."
                )
            db.execute(
                "INSERT INTO users (name, role, password) VALUES (?, ?, ?)",
                (name, role, hash_password(password)),
            )
        return User(name, role)

    def set_password(self, name: str, password: str) -> None:
        check_new_password(password)
        with self.db.connect() as db:
            changed = db.execute(
                "UPDATE users SET password = ? WHERE name = ?", (hash_password(password), name)
            ).rowcount
        if not changed:
            raise AccountError(f"There is no user {name!r}. Create it with `rag users add {name}`.")

    def remove(self, name: str) -> None:
        with self.db.connect() as db:
            if not db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount:
                raise AccountError(f"There is no user {name!r} (see `rag users list`).")

    def users(self) -> list[User]:
        with self.db.connect() as db:
            rows = db.execute("SELECT name, role FROM users ORDER BY name").fetchall()
        return [User(row["name"], row["role"]) for row in rows]

    def get(self, name: str) -> User | None:
        with self.db.connect() as db:
            row = db.execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
        return User(row["name"], row["role"]) if row else None

    def authenticate(self, name: str, password: str) -> bool:
        """The login check (Gradio's `auth` callable). Unknown users cost the same time as wrong passwords."""
        with self.db.connect() as db:
            row = db.execute("SELECT password FROM users WHERE name = ?", (name or "",)).fetchone()
        stored = row["password"] if row else _dummy_hash()
        return check_password(password or "", stored) and row is not None


def check_new_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"The password must have at least {MIN_PASSWORD} characters.")


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def auth_required(host: str, auth: bool | None) -> bool:
    """`ui.auth`, or by default: on for any address but loopback (127.x, ::1, localhost)."""
    if auth is not None:
        return auth
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name other than localhost: reachable from elsewhere
