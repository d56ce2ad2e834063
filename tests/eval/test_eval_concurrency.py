"""The concurrency benchmark's own measuring tools (the benchmark itself runs for minutes: not a test)."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from eval.benchmarks.concurrency import (
    EVENT_LOOP,
    OTHER,
    WORKERS,
    Round,
    SessionResult,
    cpu_by_kind,
    process_cpu_s,
    thread_cpu_s,
    write_thread_kinds,
)


def test_process_cpu_seconds_grow_with_work():
    before = process_cpu_s(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = process_cpu_s(os.getpid())
    assert 0.1 <= after - before < 5


def test_cpu_note_divides_by_answered_questions():
    results = [SessionResult(latencies=[0.1, 0.2]), SessionResult(latencies=[0.3, 0.4])]
    note = Round(results, 0.0, 2.0, server_cpu_s=0.4, client_cpu_s=0.2).cpu_note()
    assert "server 100 ms" in note and "client 50 ms" in note and "2.0 s wall" in note


def test_the_servers_cpu_is_split_by_thread_kind(tmp_path):
    """The event loop, the worker threads (named as anyio names them) and the rest, from /proc per thread."""
    import threading

    busy = threading.Event()

    def work() -> None:
        end = time.thread_time() + 0.2
        while time.thread_time() < end:
            pass
        busy.wait()

    loop = threading.Thread(target=work, name="uvicorn")
    worker = threading.Thread(target=work, name="AnyIO worker thread")
    kinds = tmp_path / "kinds.json"
    before = thread_cpu_s(os.getpid())
    for thread in (loop, worker):
        thread.start()
    time.sleep(0.05)
    write_thread_kinds(kinds, loop)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spent = cpu_by_kind(before, thread_cpu_s(os.getpid()), kinds)
        if spent[EVENT_LOOP] >= 0.15 and spent[WORKERS] >= 0.15:
            break
        time.sleep(0.05)
    busy.set()
    for thread in (loop, worker):
        thread.join()
    assert set(spent) == {EVENT_LOOP, WORKERS, OTHER}
    assert 0.15 <= spent[EVENT_LOOP] < 5 and 0.15 <= spent[WORKERS] < 5
    assert cpu_by_kind(before, thread_cpu_s(os.getpid()), tmp_path / "missing.json") == {}
    note = Round([SessionResult(latencies=[1.0])], 0.0, 1.0, 0.5, 0.1, None, spent).cpu_note()
    assert f"({EVENT_LOOP} " in note and f"{WORKERS} " in note


@pytest.mark.parametrize("style", ["invisible", "symbols"])
def test_session_tags_are_distinct_found_again_and_add_no_word_to_the_question(style):
    from eval.benchmarks.concurrency import _tagged, session_tag, tags_in
    from rag.evidence import content_words

    tags = [session_tag(n, style) for n in range(64)]
    assert len(set(tags)) == 64
    question = "Quelle est la valorisation d'OpenAI ?"
    assert all(content_words(f"{question} {tag}", "fr") == content_words(question, "fr") for tag in tags)
    shown = " ".join(_tagged(question, n, style) for n in (2, 5, 12))
    assert tags_in(shown) == {session_tag(n, style) for n in (2, 5, 12)}
    assert tags_in(question) == set()


def test_invisible_tags_are_invisible():
    import unicodedata

    from eval.benchmarks.concurrency import session_tag

    assert all(unicodedata.category(ch) == "Cf" for n in (0, 1, 37) for ch in session_tag(n))


def test_bootstrap_ratio_of_medians_and_its_interval():
    from eval.benchmarks.concurrency import bootstrap_ratio

    assert bootstrap_ratio([[2.0, 2.0], [2.0]], [[1.0], [1.0, 1.0]]) == (2.0, 2.0, 2.0)
    rng = np.random.default_rng(3)
    busy = [list(1.2 + 0.3 * rng.random(20)) for _ in range(10)]
    quiet = [list(1.0 + 0.3 * rng.random(20)) for _ in range(10)]
    point, low, high = bootstrap_ratio(busy, quiet)
    assert low < point < high and 1.05 < point < 1.35 and high - low < 0.3


def test_child_priorities_are_applied_to_every_thread_and_restored():
    import subprocess

    from eval.benchmarks.concurrency import CHILD_PRIORITIES, NO_UPLOAD, child_pids

    child = subprocess.Popen(["sleep", "30"])
    try:
        os.setpriority(os.PRIO_PROCESS, child.pid, 10)  # as the product's indexing child starts
        assert child.pid in child_pids(os.getpid())
        shipped: dict[int, int] = {}

        def state() -> str:
            return open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0]

        NO_UPLOAD.apply(child.pid, shipped)
        time.sleep(0.1)
        assert state() == "T"  # stopped
        CHILD_PRIORITIES["idle"].apply(child.pid, shipped)
        assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE and state() != "T"
        CHILD_PRIORITIES["nice19"].apply(child.pid, shipped)
        assert os.sched_getscheduler(child.pid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == 19
        CHILD_PRIORITIES["shipped"].apply(child.pid, shipped)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == 10
    finally:
        child.kill()
        child.wait()


class _Job:
    """A gradio_client job whose result comes after `delay_s`; counts how often it is looked at."""

    def __init__(self, delay_s: float) -> None:
        self.ready = time.monotonic() + delay_s
        self.looked = 0
        self.cancelled = False

    def result(self, timeout: float | None = None):
        wait = self.ready - time.monotonic()
        if timeout is not None and wait > timeout:
            time.sleep(timeout)
            raise TimeoutError
        time.sleep(max(0.0, wait))
        return ([{"role": "assistant", "content": "<div class='answer'>80 milliards</div>"}], None)

    def done(self) -> bool:
        self.looked += 1
        return time.monotonic() >= self.ready

    def outputs(self) -> list:
        self.looked += 1
        return []

    def cancel(self) -> None:
        self.cancelled = True


class _Client:
    def __init__(self, job: _Job) -> None:
        self.job = job

    def submit(self, *args, **kwargs) -> _Job:
        return self.job


def test_an_extractive_answer_is_waited_for_without_polling_and_cancelled_at_the_deadline():
    from eval.benchmarks.concurrency import ask_timed

    job = _Job(0.1)
    called = time.monotonic()  # the job's 0.1 s began at its creation: a busy machine may use some of it
    elapsed, first, chat = ask_timed(_Client(job), "q", "extractive", [float("inf")])
    assert (
        job.ready - called - 0.005 <= elapsed < 1 and first is None and "80 milliards" in chat[0]["content"]
    )
    assert job.looked == 0  # 50 sessions looking every 20 ms took the cores the server needs

    late = _Job(5.0)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        ask_timed(_Client(late), "q", "extractive", [time.monotonic() + 0.1])
    assert late.cancelled and time.monotonic() - began < 2


def test_server_code_must_be_a_checkout_of_the_project(tmp_path, capsys):
    from eval.benchmarks.concurrency import main

    with pytest.raises(SystemExit):
        main(["--server-code", str(tmp_path), "--no-llm", "--modes", "lexical"])
    assert "no ui/app.py" in capsys.readouterr().err


def test_message_text_keeps_invisible_tags_of_list_contents():
    from eval.benchmarks.concurrency import message_text, session_tag, tags_in

    tag = session_tag(5)
    parts = {"role": "user", "content": [{"type": "text", "text": f"<div>Qui ? {tag}</div>"}]}
    assert tags_in(message_text(parts)) == {tag}
    assert message_text({"role": "user", "content": f"Qui ? {tag}"}).endswith(tag)


def test_a_leak_is_another_sessions_text_and_a_short_chat_is_not_one():
    from eval.benchmarks.concurrency import isolation, session_tag, summary

    mine, other = session_tag(5), session_tag(6)
    asked = [f"Qui ? {mine}", f"Et lui ? {mine}"]
    assert isolation(" ".join(asked) + " réponse", asked, mine, 2) == (False, False)
    # The third question past the round's limit: two answered, two shown.
    assert isolation(" ".join(asked), asked, mine, 2) == (False, False)
    assert isolation(" ".join(asked) + f" {other}", asked, mine, 2) == (True, False)  # another's tag
    assert isolation("Qui ? Et lui ?", ["Qui ?", f"Et lui ? {mine}"], mine, 2) == (True, False)  # untagged
    assert isolation(asked[0], asked[:1], mine, 2) == (False, True)  # an answered question not shown
    timed_out = SessionResult(latencies=[1.0, 1.0], errors=["TimeoutError: no answer before the limit"])
    line = summary([timed_out, SessionResult(latencies=[1.0], leaked=True, incomplete=True)])
    assert "timeouts 1" in line and "another's history 1" in line and "missing a question answered 1" in line


def test_cpu_stages_time_each_step_in_its_thread_and_print_per_question(tmp_path, monkeypatch):
    """`--cpu-stages`: a generator stage is timed step by step (Gradio runs each step in a worker thread),
    and the totals the server writes are printed per answered question, between two reads."""
    from eval.benchmarks import cpu_stages

    monkeypatch.setattr(cpu_stages, "_totals", {})

    def busy(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    def answer():
        busy(0.05)
        yield "shown"
        time.sleep(0.1)  # waiting is not CPU
        yield "done"

    steps = cpu_stages._timed_generator("answer event", answer)()
    assert next(steps) == "shown"
    other = threading.Thread(target=lambda: list(steps))  # the next step in another thread, as Gradio does
    other.start()
    other.join()
    saved = cpu_stages._timed("save", busy)
    saved(0.02)
    assert 0.05 <= cpu_stages._totals["answer event"] < 0.09
    assert 0.02 <= cpu_stages._totals["save"] < 0.05

    path = tmp_path / "stages.json"
    path.write_text(json.dumps({"answer event": 1.0, "save": 0.5}))
    before = cpu_stages.read(path)
    path.write_text(json.dumps({"answer event": 1.3, "save": 0.56, "unknown": 9}))
    line = cpu_stages.breakdown(before, cpu_stages.read(path), answered=10)
    assert line == "CPU per question by stage (ms): answer event 30.00, save 6.00"
    assert cpu_stages.read(tmp_path / "missing.json") == {}
