"""Indexing uploads as background jobs: one thread per job, real progress, a cancel that works.

The chat page starts a job and returns at once; a timer on the page polls `IndexingJobs.get` and shows the
progress (files read, passages embedded). The work itself runs in `rag` (`Assistant.add_documents` in a
child process), so questions keep being answered meanwhile, on the index as it was, until the new
generation is switched in. Nothing here touches the index directly.

Jobs that write into the same index (`lane`: the shared corpus, or one user's private collection) run one
after the other, in the order they were started: a job waiting for its turn is "queued" and says how many
uploads are ahead of it (the index takes one writer at a time; without the lane a second upload sat in
"Starting the indexer" with no word of why). A queued job can be cancelled before it starts.
"""

from __future__ import annotations

import itertools
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
CANCELLED_BEFORE_START = '<div class="upload-note">Cancelled before it started: nothing was indexed.</div>'
_order = itertools.count()


@dataclass
class IndexingJob:
    owner: str  # the user (or browser session) who started it: only they see and cancel it
    files: list[str]
    lane: str = ""  # the index it writes into: jobs of one lane run one at a time, in order
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = "waiting"  # (queued ->) waiting -> running -> done | failed | cancelled
    ahead: int = 0  # while queued: unfinished jobs of its lane started before it
    order: int = field(default_factory=lambda: next(_order))
    stage: str = ""
    done: int = 0
    total: int = 0
    result_html: str = ""
    note_html: str = ""  # shown above its progress: what the upload refused (the result repeats it)
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
        self._turns = threading.Condition(self._lock)  # notified whenever a job finishes

    def start(
        self, owner: str, files: list[str], work: Callable[[IndexingJob], str], *, lane: str = ""
    ) -> IndexingJob:
        """Run `work(job)` (which returns the result HTML) in a thread once the jobs of its `lane` started
        before it have finished; return the job at once (queued when it has to wait)."""
        job = IndexingJob(owner, files, lane)
        with self._lock:
            self._jobs[job.job_id] = job
            job.ahead = self._ahead(job)
            if job.ahead:
                job.state = "queued"

        def run() -> None:
            try:
                if not self._wait_for_turn(job):
                    job.result_html, job.state = CANCELLED_BEFORE_START, "cancelled"
                    return
                job.result_html = work(job)
                job.state = "cancelled" if job.cancel.is_set() else "done"
            except BaseException as exc:  # noqa: BLE001 - the page shows it; the server goes on
                job.result_html = f"Indexing failed ({type(exc).__name__}): {exc}"
                job.state = "failed"
            finally:
                with self._turns:
                    self._turns.notify_all()

        threading.Thread(target=run, name=f"indexing-{job.job_id}", daemon=True).start()
        return job

    def _ahead(self, job: IndexingJob) -> int:
        """Unfinished jobs of `job`'s lane started before it (call with the lock held)."""
        return sum(
            1 for j in self._jobs.values() if j.lane == job.lane and j.order < job.order and not j.finished
        )

    def _wait_for_turn(self, job: IndexingJob) -> bool:
        """Block until no earlier job of the lane is unfinished; False if `job` is cancelled meanwhile."""
        with self._turns:
            while True:
                job.ahead = self._ahead(job)
                if job.cancel.is_set():
                    return False
                if not job.ahead:
                    if job.state == "queued":
                        job.state = "waiting"
                    return True
                self._turns.wait(timeout=0.2)  # also wakes up to notice a cancel

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
