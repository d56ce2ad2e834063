"""Indexing uploads as background jobs: one thread per job, real progress, a cancel that works.

The chat page starts a job and returns at once; a timer on the page polls `IndexingJobs.get` and shows the
progress (files read, passages embedded). The work itself runs in `rag` (`Assistant.add_documents` in a
child process), so questions keep being answered meanwhile, on the index as it was, until the new
generation is switched in. Nothing here touches the index directly.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

STAGES = {  # what build_index reports (and "starting", before it runs) -> what a person reads
    "starting": ("Starting the indexer", "files"),
    "scanning": ("Checking files", "files"),
    "reading": ("Reading and splitting files", "files"),
    "embedding": ("Embedding passages", "passages"),
}
FINISHED = ("done", "failed", "cancelled")


@dataclass
class IndexingJob:
    owner: str  # the user (or browser session) who started it: only they see and cancel it
    files: list[str]
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = "waiting"  # waiting -> running -> done | failed | cancelled
    stage: str = ""
    done: int = 0
    total: int = 0
    result_html: str = ""
    started: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def progress(self, done: int, total: int, stage: str) -> None:
        self.state = "running"
        self.stage, self.done, self.total = stage, done, total


class IndexingJobs:
    """The jobs of one chat server (in memory: a job does not outlive the server, its result does)."""

    def __init__(self) -> None:
        self._jobs: dict[str, IndexingJob] = {}
        self._lock = threading.Lock()

    def start(self, owner: str, files: list[str], work: Callable[[IndexingJob], str]) -> IndexingJob:
        """Run `work(job)` (which returns the result HTML) in a thread; return the job at once."""
        job = IndexingJob(owner, files)
        with self._lock:
            self._jobs[job.job_id] = job

        def run() -> None:
            try:
                job.result_html = work(job)
                job.state = "cancelled" if job.cancel.is_set() else "done"
            except BaseException as exc:  # noqa: BLE001 - the page shows it; the server goes on
                job.result_html = f"Indexing failed ({type(exc).__name__}): {exc}"
                job.state = "failed"

        threading.Thread(target=run, name=f"indexing-{job.job_id}", daemon=True).start()
        return job

    def get(self, job_id: str | None, owner: str) -> IndexingJob | None:
        with self._lock:
            job = self._jobs.get(job_id or "")
        return job if job is not None and job.owner == owner else None

    def running(self, owner: str) -> IndexingJob | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.owner == owner and not j.finished), None)

    def cancel(self, job_id: str | None, owner: str) -> bool:
        job = self.get(job_id, owner)
        if job is None or job.finished:
            return False
        job.cancel.set()
        return True
