"""`rag index` behind the console script: build/update once, or keep the index in sync (--watch).

The watch mode polls sizes and modification times every `poll_seconds` (no extra dependency, works on
network drives where inotify does not), waits until the files stop changing for one more period
(debounce: an editor saving or a copy in progress), then runs an incremental build. The embedding model
is loaded once for the whole session. Ctrl-C ends it cleanly; an interrupted write leaves the previous
index in place (see index.store).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from index.build import AUTO, BuildReport, build_index, discover_files
from index.config import IndexConfig
from index.errors import IndexError_
from index.terminal import printable

EXIT_OK = 0
EXIT_ERROR = 2  # as every `rag` error (README)
EXIT_INTERRUPTED = 130


def print_report(report: BuildReport, stream=None) -> None:  # noqa: ANN001 - a text stream
    stream = stream or sys.stdout
    for message in report.messages:
        print(printable(message), file=stream)
    for path, reason in report.skipped:
        print(printable(f"skipped {path}: {reason}"), file=stream)
    print(printable(("" if report.written else "Up to date: ") + report.summary()), file=stream)


def _snapshot(roots: list[Path], config: IndexConfig) -> dict[str, tuple[int, int]]:
    return {str(f.path): (f.size, f.mtime_ns) for f in discover_files(roots, config.extensions)}


def run_index(
    paths: Iterable[str | os.PathLike[str]],
    config: IndexConfig,
    *,
    watch: bool = False,
    forget: Iterable[str | os.PathLike[str]] = (),
    rebuild: bool = False,
    poll_seconds: float = 2.0,
    max_cycles: int | None = None,
) -> int:
    """Index `paths` into config.index_dir and print a summary; with `watch`, keep syncing until Ctrl-C.

    Returns the process exit code: 0 done, 2 an error was printed, 130 interrupted (index left intact).
    `max_cycles` bounds the watch loop (tests).
    """
    paths = list(paths)
    forget = list(forget)
    try:
        embedder = AUTO
        if watch and config.embedding_model:
            from index.embedding import load_embedder

            embedder = load_embedder(config)  # once for the whole session
        report = build_index(paths, config, embedder=embedder, forget=forget, rebuild=rebuild)
        print_report(report)
        if not watch:
            return EXIT_OK
        from index.stores import open_store

        roots = [Path(r) for r in open_store(config, load_model=False).manifest.roots]
        print(printable(f"Watching {', '.join(map(str, roots))} for changes (Ctrl-C to stop)..."), flush=True)
        seen = _snapshot(roots, config)
        cycles = 0
        while max_cycles is None or cycles < max_cycles:
            cycles += 1
            time.sleep(poll_seconds)
            now = _snapshot(roots, config)
            if now == seen:
                continue
            while True:  # debounce: wait until a whole period passes without change
                time.sleep(poll_seconds)
                settled = _snapshot(roots, config)
                if settled == now:
                    break
                now = settled
            report = build_index([], config, embedder=embedder)
            print_report(report)
            seen = now
        return EXIT_OK
    except IndexError_ as exc:
        print(printable(" ".join(f"Error: {exc}".split())), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if watch:
            print("\nStopped watching.", file=sys.stderr)
            return EXIT_OK
        print("\nInterrupted: the previous index is unchanged.", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_copy_from_folder(index_dir: Path, config: IndexConfig) -> int:
    """`rag index --from-folder DIR`: copy a folder index into the PostgreSQL store, without re-embedding."""
    if not config.uses_postgres:
        print(
            "Error: --from-folder copies into PostgreSQL: set index.store_url (RAG_INDEX__STORE_URL="
            "postgresql://user@host/db) to the database first.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    from index.pg_store import copy_folder_index

    try:
        started = time.perf_counter()
        chunks = copy_folder_index(index_dir, config.store_url)
    except IndexError_ as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nInterrupted: the database is unchanged.", file=sys.stderr)
        return EXIT_INTERRUPTED
    from index.pg_schema import redact

    print(
        f"Copied {chunks} chunks from {index_dir} into {redact(config.store_url)} in "
        f"{time.perf_counter() - started:.1f} s (nothing embedded again). The folder is left as it was."
    )
    return EXIT_OK
