"""Background indexing jobs: progress, cancel, and one writer per index (queued jobs say so)."""

from __future__ import annotations

import threading
import time

from ui.app import render_job
from ui.jobs import CANCELLED_BEFORE_START, IndexingJobs


def _wait(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _blocking_work(release: threading.Event, ran: list[str], name: str):
    def work(job) -> str:
        ran.append(name)
        job.progress(0, 1, "reading")
        release.wait(10)
        return f"done {name}"

    return work


def test_jobs_of_one_index_run_in_order_and_a_waiting_one_says_why():
    jobs, ran = IndexingJobs(), []
    release_first, release_second = threading.Event(), threading.Event()
    first = jobs.start("ann", ["a.txt"], _blocking_work(release_first, ran, "first"), lane="shared")
    _wait(lambda: first.state == "running")
    second = jobs.start("bob", ["b.txt"], _blocking_work(release_second, ran, "second"), lane="shared")
    assert second.state == "queued" and second.ahead == 1
    shown = render_job(second)
    assert 'data-state="queued"' in shown and "Waiting: 1 upload into this index ahead of yours" in shown
    time.sleep(0.3)
    assert ran == ["first"]  # the second waits while the first writes
    release_first.set()
    _wait(lambda: second.state == "running")
    assert first.state == "done" and ran == ["first", "second"]
    release_second.set()
    _wait(lambda: second.finished)
    assert second.result_html == "done second"


def test_a_queued_job_can_be_cancelled_before_it_starts_and_other_indexes_do_not_wait():
    jobs, ran = IndexingJobs(), []
    release = threading.Event()
    first = jobs.start("ann", ["a.txt"], _blocking_work(release, ran, "first"), lane="shared")
    _wait(lambda: first.state == "running")
    queued = jobs.start("bob", ["b.txt"], _blocking_work(release, ran, "queued"), lane="shared")
    private = jobs.start("carl", ["c.txt"], _blocking_work(release, ran, "private"), lane="private:carl")
    _wait(lambda: private.state == "running")  # another index: not behind the shared one
    assert jobs.cancel(queued.job_id, "bob")
    _wait(lambda: queued.finished)
    assert queued.state == "cancelled" and queued.result_html == CANCELLED_BEFORE_START
    release.set()
    _wait(lambda: first.finished and private.finished)
    assert "queued" not in ran
