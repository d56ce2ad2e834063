"""QueryBatcher: questions embedded at the same moment by several threads share one model call."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from index.query_batcher import QueryBatcher


class _Model:
    """A fake batch model: each text's vector is (its length, the batch size); the first call can be held
    until the test lets it go, so that other callers pile up meanwhile."""

    def __init__(self, hold_first: bool = False, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.hold_first = hold_first
        self.fail_on = fail_on

    def __call__(self, texts):
        self.batches.append(list(texts))
        self.started.set()
        if self.hold_first and len(self.batches) == 1:
            assert self.release.wait(10)
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError(f"cannot embed {self.fail_on!r}")
        return np.array([[len(t), len(texts)] for t in texts], dtype=np.float32)


def _ask_in_threads(batcher: QueryBatcher, texts: list[str]) -> tuple[dict, dict, list[threading.Thread]]:
    results: dict[str, np.ndarray] = {}
    errors: dict[str, BaseException] = {}

    def ask(text: str) -> None:
        try:
            results[text] = batcher.embed(text)
        except Exception as exc:  # noqa: BLE001 - recorded for the test
            errors[text] = exc

    threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    return results, errors, threads


def _wait_waiting(batcher: QueryBatcher, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(batcher._waiting) < count:
        assert time.monotonic() < deadline, "the callers never queued"
        time.sleep(0.005)


def test_a_lone_question_is_embedded_at_once_alone():
    model = _Model()
    batcher = QueryBatcher(model)
    assert batcher.embed("abc").tolist() == [3.0, 1.0]
    assert model.batches == [["abc"]]


def test_questions_arriving_while_the_model_runs_share_the_next_call():
    model = _Model(hold_first=True)
    batcher = QueryBatcher(model)
    first, _, first_threads = _ask_in_threads(batcher, ["q"])
    assert model.started.wait(10)
    texts = [f"question {'x' * n}" for n in range(6)]
    results, errors, threads = _ask_in_threads(batcher, texts)
    _wait_waiting(batcher, len(texts))
    model.release.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert not errors
    assert len(model.batches) == 2 and sorted(model.batches[1]) == sorted(texts)
    assert batcher.calls == 2
    for text in texts:  # each caller gets its own row, from the shared call
        assert results[text].tolist() == [len(text), len(texts)]
    assert first["q"].tolist() == [1.0, 1.0]


def test_batches_are_at_most_max_batch_and_everybody_is_answered():
    model = _Model(hold_first=True)
    batcher = QueryBatcher(model, max_batch=3)
    _, _, first_threads = _ask_in_threads(batcher, ["first"])
    assert model.started.wait(10)
    texts = [f"t{n}" for n in range(7)]
    results, errors, threads = _ask_in_threads(batcher, texts)
    _wait_waiting(batcher, len(texts))
    model.release.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert not errors and set(results) == set(texts)
    assert [len(batch) for batch in model.batches] == [1, 3, 3, 1]


def test_a_failing_call_reaches_its_callers_and_the_next_batch_still_runs():
    model = _Model(hold_first=True, fail_on="bad")
    batcher = QueryBatcher(model, max_batch=2)
    _, _, first_threads = _ask_in_threads(batcher, ["first"])
    assert model.started.wait(10)
    results, errors, threads = _ask_in_threads(batcher, ["bad"])
    _wait_waiting(batcher, 1)
    more, more_errors, more_threads = _ask_in_threads(batcher, ["x"])
    _wait_waiting(batcher, 2)
    model.release.set()
    for thread in first_threads + threads + more_threads:
        thread.join(10)
    assert isinstance(errors["bad"], ValueError) and "bad" in str(errors["bad"])
    assert "x" in more_errors  # it shared the failing call: it gets the same error, not a hang
    assert batcher.embed("after").tolist() == [5.0, 1.0]  # the batcher is not left busy


def test_up_to_max_running_calls_run_at_once_then_the_waiting_share_one():
    in_flight, peak, lock = [0], [0], threading.Lock()
    both_running, release = threading.Barrier(2, timeout=10), threading.Event()
    batches: list[list[str]] = []

    def model(texts):
        with lock:
            batches.append(list(texts))
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        if len(batches) <= 2:
            both_running.wait()  # the first two calls run side by side, or this times out
            assert release.wait(10)
        with lock:
            in_flight[0] -= 1
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = QueryBatcher(model, max_running=2)
    _, _, first = _ask_in_threads(batcher, ["a"])
    _, _, second = _ask_in_threads(batcher, ["b"])
    _wait_waiting(batcher, 0)
    deadline = time.monotonic() + 10
    while len(batches) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    results, errors, later = _ask_in_threads(batcher, ["c", "d", "e"])
    _wait_waiting(batcher, 3)
    release.set()
    for thread in first + second + later:
        thread.join(10)
    assert not errors and set(results) == {"c", "d", "e"}
    assert peak[0] == 2 and sorted(map(len, batches)) == [1, 1, 3]


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="max_batch"):
        QueryBatcher(lambda texts: np.zeros((len(texts), 2)), max_batch=0)
    with pytest.raises(ValueError, match="max_running"):
        QueryBatcher(lambda texts: np.zeros((len(texts), 2)), max_running=0)


def test_a_question_asked_again_is_not_embedded_again():
    """Stores sharing one embedder (a shared index and a private collection) ask for the same question:
    one model call. Only the last `remember` questions are kept."""
    model = _Model()
    batcher = QueryBatcher(model, remember=2)
    first = batcher.embed("abc")
    assert batcher.embed("abc") is first and batcher.calls == 1
    assert not first.flags.writeable  # shared by every asker: nobody may change it in place
    batcher.embed("de"), batcher.embed("fgh")  # "abc" is now the oldest of three: forgotten
    batcher.embed("abc")
    assert batcher.calls == 4 and [batch for batch in model.batches] == [["abc"], ["de"], ["fgh"], ["abc"]]
    assert QueryBatcher(model, remember=0).embed("x").tolist() == [1.0, 1.0]


def test_a_batch_split_into_calls_answers_each_call_s_callers_as_it_ends():
    """A burst waiting together is embedded in several calls (`split`): the first call's callers get their
    rows while the next call runs (a caller of that call runs it), not when the whole batch is done."""
    second_call = threading.Event()
    batches: list[list[str]] = []
    first_started, release_first = threading.Event(), threading.Event()

    def model(texts):
        batches.append(list(texts))
        if len(batches) == 1:
            first_started.set()
            assert release_first.wait(10)
        if len(batches) == 3:  # the burst's second call: held until the test has seen the first answered
            assert second_call.wait(10)
        return np.array([[len(t), len(texts)] for t in texts], dtype=np.float32)

    def by_length_in_twos(texts):
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [order[i : i + 2] for i in range(0, len(order), 2)]

    batcher = QueryBatcher(model, split=by_length_in_twos)
    _, _, first = _ask_in_threads(batcher, ["lone"])
    assert first_started.wait(10)
    texts = ["a" * n for n in (4, 1, 3, 2)]
    results, errors, threads = _ask_in_threads(batcher, texts)
    _wait_waiting(batcher, len(texts))
    release_first.set()
    deadline = time.monotonic() + 10
    while not {"a", "aa"} <= set(results):  # the shortest two, answered while the next call is held
        assert time.monotonic() < deadline, "the first call's callers waited for the whole batch"
        time.sleep(0.005)
    assert "aaa" not in results and "aaaa" not in results
    second_call.set()
    for thread in first + threads:
        thread.join(10)
    assert not errors and batches == [["lone"], ["a", "aa"], ["aaa", "aaaa"]]
    assert all(results[text].tolist() == [len(text), 2] for text in texts)
    assert batcher.calls == 3 and batcher.embed("b").tolist() == [1.0, 1.0]  # the slot was freed


def test_a_split_that_does_not_hold_every_question_once_is_one_call():
    model = _Model(hold_first=True)
    batcher = QueryBatcher(model, split=lambda texts: [[0]])  # loses the others: never trusted
    _, _, first = _ask_in_threads(batcher, ["first"])
    assert model.started.wait(10)
    results, errors, threads = _ask_in_threads(batcher, ["x", "yy", "zzz"])
    _wait_waiting(batcher, 3)
    model.release.set()
    for thread in first + threads:
        thread.join(10)
    assert not errors and set(results) == {"x", "yy", "zzz"}
    assert sorted(model.batches[1]) == ["x", "yy", "zzz"]
