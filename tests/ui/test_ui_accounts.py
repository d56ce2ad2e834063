"""Accounts: scrypt-hashed passwords in SQLite, `rag users`, and the login rule of `rag chat`."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from rag.cli import main
from rag.errors import RagError
from rag.settings import Settings
from ui.accounts import AccountError, Accounts, Database, auth_required, check_password, hash_password
from ui.app import check_login


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    return Accounts(Database(tmp_path / "chat.sqlite3"))


def test_passwords_are_stored_as_salted_scrypt_hashes(accounts, tmp_path: Path):
    accounts.add("alice", "correct horse", "admin")
    stored = sqlite3.connect(tmp_path / "chat.sqlite3").execute("SELECT password FROM users").fetchone()[0]
    assert stored.startswith("scrypt$16384$8$1$") and "correct horse" not in stored
    assert hash_password("correct horse") != hash_password("correct horse")  # salted
    assert check_password("correct horse", stored) and not check_password("Correct horse", stored)
    assert accounts.authenticate("alice", "correct horse")
    assert not accounts.authenticate("alice", "wrong password")
    assert not accounts.authenticate("nobody", "correct horse")


def test_bad_names_passwords_and_duplicates_are_refused_with_the_fix(accounts):
    with pytest.raises(AccountError, match="at least 8 characters"):
        accounts.add("bob", "short")
    with pytest.raises(AccountError, match="is not allowed"):
        accounts.add("../bob", "long enough")
    accounts.add("bob", "long enough")
    with pytest.raises(AccountError, match="rag users passwd bob"):
        accounts.add("bob", "another one")
    accounts.set_password("bob", "a new password")
    assert accounts.authenticate("bob", "a new password")
    accounts.remove("bob")
    assert accounts.users() == []


@pytest.mark.parametrize(
    ("host", "setting", "expected"),
    [
        ("127.0.0.1", None, False),
        ("localhost", None, False),
        ("::1", None, False),
        ("0.0.0.0", None, True),
        ("192.168.1.20", None, True),
        ("chat.example.org", None, True),
        ("127.0.0.1", True, True),
        ("0.0.0.0", False, False),
    ],
)
def test_login_is_on_by_default_off_loopback(host, setting, expected):
    assert auth_required(host, setting) is expected


def test_a_public_chat_refuses_to_start_without_a_user(tmp_path: Path):
    settings = Settings.model_validate(
        {"ui": {"host": "0.0.0.0", "database": str(tmp_path / "chat.sqlite3")}}
    )
    with pytest.raises(RagError, match="rag users add NAME --admin"):
        check_login(settings)
    Accounts(Database(settings.ui.database)).add("alice", "correct horse", "admin")
    assert check_login(settings) is not None
    local = Settings.model_validate({"ui": {"database": str(tmp_path / "other.sqlite3")}})
    assert check_login(local) is None  # 127.0.0.1: no login unless asked for


def test_rag_users_commands(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("RAG_UI__DATABASE", str(tmp_path / "chat.sqlite3"))
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["users", "add", "alice", "--admin", "--password-stdin"]) == 0
    assert "User alice (admin) added" in capsys.readouterr().out
    assert main(["users", "list"]) == 0
    assert "alice\tadmin" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "bob", "--password-stdin"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err


def test_rag_chat_on_a_public_address_without_users_names_the_command(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("RAG_UI__DATABASE", str(tmp_path / "chat.sqlite3"))
    code = main(["chat", "--host", "0.0.0.0", "--index-dir", str(tmp_path / "index"), str(tmp_path)])
    assert code == 2
    assert "rag users add NAME --admin" in capsys.readouterr().err
    assert not (tmp_path / "index").exists()  # refused before indexing anything
