"""The concurrency benchmark's own measuring tools (the benchmark itself runs for minutes: not a test)."""

from __future__ import annotations

import os
import time

from eval.benchmarks.concurrency import Round, SessionResult, process_cpu_s


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


def test_session_tags_are_distinct_and_add_no_word_to_the_question():
    from eval.benchmarks.concurrency import session_tag
    from rag.evidence import content_words

    tags = [session_tag(n) for n in range(64)]
    assert len(set(tags)) == 64
    question = "Quelle est la valorisation d'OpenAI ?"
    assert all(content_words(f"{question} {tag}", "fr") == content_words(question, "fr") for tag in tags)
