"""The optional LLM judge: reply parsing, scripted fake chat models, aggregation, runner and CLI wiring."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from eval_fakes import fake_corpus_factory
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from eval import cli
from eval.datasets import load_golden
from eval.judge import (
    NEEDS_LLM,
    OK,
    SKIPPED,
    UNPARSABLE,
    JudgeError,
    LLMJudge,
    judge_summary,
    make_judge,
    parse_judgement,
)
from eval.report import summary_markdown
from eval.runner import EvalConfig, run_eval
from rag.backends.base import GenerationRequest, Generator
from rag.backends.chat_model import ChatModelGenerator
from rag.errors import BackendError
from rag.records import Passage
from rag.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def _judge(*replies: str) -> LLMJudge:
    return LLMJudge(ChatModelGenerator(FakeListChatModel(responses=list(replies)), "fake"))


def _passage(n: int, text: str) -> Passage:
    return Passage(n, [f"c{n}"], "doc.txt", "doc.txt", "doc", text, 0, len(text), 1.0)


class FailingAfter(Generator):
    """Answers `{"score": 0.5}` `ok` times, then raises BackendError like a server that went away."""

    name = "flaky"

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.calls = 0

    def stream(self, request: GenerationRequest):
        self.calls += 1
        if self.calls > self.ok:
            raise BackendError("The flaky backend (at http://127.0.0.1:1) could not reach the server.")
        yield '{"score": 0.5, '
        yield '"reason": "half"}'


# --- parsing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "score", "status"),
    [
        ('{"score": 0.8, "reason": "all claims in [1]"}', 0.8, OK),
        ('Sure!\n```json\n{"score": "0.25", "reason": "one claim of four"}\n```', 0.25, OK),
        ('{"Score": 1, "Reason": "ok"} {"score": 0}', 1.0, OK),
        ("0.7", 0.7, OK),
        ("Score: 0.6 because the date is missing.", 0.6, OK),
        ("{'score': 0.9, 'reason': 'single quotes'}", 0.9, OK),
        ("I would give it 4/5.", 0.8, OK),
        ("The answer is entirely unsupported.", None, UNPARSABLE),
        ('{"score": 7, "reason": "out of ten"}', None, UNPARSABLE),
        ("It has 3 claims; 2 are supported.", None, UNPARSABLE),
        ("", None, UNPARSABLE),
    ],
)
def test_parse_judgement(reply: str, score: float | None, status: str) -> None:
    judgement = parse_judgement(reply)
    assert judgement.score == (pytest.approx(score) if score is not None else None)
    assert judgement.status == status


def test_parse_keeps_the_reason() -> None:
    assert parse_judgement('{"score": 0.8, "reason": "all claims in [1]"}').reason == "all claims in [1]"


# --- the judge over a fake chat model ----------------------------------------------------------------


def test_judge_with_scripted_replies_json_number_and_garbage() -> None:
    judge = _judge('{"score": 0.9, "reason": "supported"}', "0.4", "no idea, sorry")
    passages = [_passage(1, "Paris est la capitale de la France.")]
    first = judge.judge("Capitale ?", "Paris [1].", passages, ["Paris"])
    assert first["faithfulness"].score == pytest.approx(0.9) and first["faithfulness"].reason == "supported"
    assert first["correctness"].score == pytest.approx(0.4) and first["correctness"].status == OK
    garbage = judge.faithfulness("Capitale ?", "Paris [1].", passages)
    assert garbage.score is None and garbage.status == UNPARSABLE
    assert judge.replies == 3 and judge.stopped is None


def test_prompts_show_passages_answer_and_references() -> None:
    seen: list[GenerationRequest] = []

    class Recorder(Generator):
        name = "recorder"

        def stream(self, request: GenerationRequest):
            seen.append(request)
            yield '{"score": 1, "reason": "ok"}'

    judge = LLMJudge(Recorder())
    judge.judge(
        "Qui ?", "Marie Curie [2].", [_passage(2, "Marie Curie a reçu deux prix Nobel.")], ["M. Curie"]
    )
    faithfulness, correctness = (req.messages[-1].content for req in seen)
    assert "[2] Marie Curie a reçu deux prix Nobel." in faithfulness and "Marie Curie [2]." in faithfulness
    assert "REFERENCE: M. Curie" in correctness and "FAITHFULNESS" not in correctness
    assert '"score"' in seen[0].messages[0].content  # the system prompt asks for the JSON object


def test_no_reference_skips_correctness_without_asking() -> None:
    judge = _judge('{"score": 1, "reason": "ok"}')
    result = judge.correctness("Q ?", "A.", [])
    assert result.status == SKIPPED and result.score is None and judge.replies == 0


def test_backend_error_stops_judging() -> None:
    judge = LLMJudge(FailingAfter(ok=1))
    assert judge.faithfulness("Q ?", "A.", []).score == 0.5
    failed = judge.correctness("Q ?", "A.", ["ref"])
    assert failed.status == SKIPPED and failed.score is None
    assert judge.stopped and "could not reach the server" in judge.stopped
    calls = judge.generator.calls
    assert judge.faithfulness("Q ?", "A.", []).status == SKIPPED
    assert judge.generator.calls == calls  # not asked again after the error


def test_chat_model_failure_becomes_a_stop_not_a_crash() -> None:
    model = FakeListChatModel(responses=['{"score": 1}'], error_on_chunk_number=0)
    judge = LLMJudge(ChatModelGenerator(model, "fake"))
    assert judge.faithfulness("Q ?", "A.", []).status == SKIPPED
    assert judge.stopped and "fake backend" in judge.stopped


def test_judge_summary_means_and_counts() -> None:
    def rec(f: tuple[float | None, str], c: tuple[float | None, str]) -> dict:
        return {
            "judge": {
                "faithfulness": {"score": f[0], "status": f[1]},
                "correctness": {"score": c[0], "status": c[1]},
            }
        }

    records = [
        rec((1.0, OK), (0.5, OK)),
        rec((0.5, OK), (None, UNPARSABLE)),
        rec((None, UNPARSABLE), (None, SKIPPED)),
        {"scores": {}},  # abstained: not judged
    ]
    summary = judge_summary(records)
    assert summary == {
        "faithfulness": 0.75,
        "judged_faithfulness": 2,
        "correctness": 0.5,
        "judged_correctness": 1,
        "unparsable": 2,
    }
    assert judge_summary([{"scores": {}}]) is None


# --- setting the judge up ----------------------------------------------------------------------------


def test_extractive_backend_cannot_judge() -> None:
    settings = load_settings(environ={})
    assert settings.llm.backend == "extractive"
    for backend in (None, "extractive"):
        with pytest.raises(JudgeError, match="needs an LLM backend") as caught:
            make_judge(settings, backend)
        assert NEEDS_LLM in str(caught.value) and "'extractive'" in str(caught.value)


def test_ollama_judge_is_built_without_contacting_a_server() -> None:
    judge = make_judge(load_settings(environ={}), "ollama")
    assert judge.name == "ollama" and judge.generator.is_llm


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_flag_values() -> None:
    assert _args().judge is None
    assert _args("--judge").judge == ""
    assert _args("--judge", "ollama", "--piaf", "none").judge == "ollama"
    assert _args("--judge", "--piaf", "none").judge == ""


def test_cli_judge_with_extractive_is_a_clear_error(tmp_path: Path, capsys) -> None:
    settings = load_settings(environ={}, overrides={"eval.runs_dir": str(tmp_path)})
    assert cli.run(_args("--judge", "--piaf", "none", "--out", str(tmp_path / "r")), settings) == 2
    err = capsys.readouterr().err
    assert NEEDS_LLM in err
    assert not (tmp_path / "r").exists()  # stopped before running anything


def test_cli_passes_the_judge_backend_to_the_run(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_run_eval(datasets, settings, config):
        seen["judge"] = config.judge
        raise SystemExit(0)

    monkeypatch.chdir(REPO)
    monkeypatch.setattr("eval.runner.run_eval", fake_run_eval)
    settings = load_settings(environ={}, overrides={"eval.runs_dir": str(tmp_path)})
    args = _args("--judge", "ollama", "--piaf", "none", "--no-baselines", "--out", str(tmp_path / "r"))
    with pytest.raises(SystemExit):
        cli.run(args, settings)
    assert seen["judge"] == "ollama"


# --- a judged run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden():
    return load_golden(sorted((REPO / "eval" / "golden").glob("seed_qa*.jsonl")), REPO / "seeds")


def _run(golden, tmp_path: Path, judge: LLMJudge | None) -> dict:
    config = EvalConfig(label="judged", progress=False, baselines=False, cache_dir=tmp_path / "cache")
    return run_eval(
        [golden], load_settings(environ={}), config, corpus_factory=fake_corpus_factory, judge=judge
    )


def test_judged_run_records_scores_and_report_shows_them(golden, tmp_path: Path) -> None:
    results = _run(golden, tmp_path, _judge('{"score": 0.75, "reason": "fine"}'))
    answered = [r for r in results["questions"] if not r["scores"]["abstained"]]
    abstained = [r for r in results["questions"] if r["scores"]["abstained"]]
    assert answered and abstained
    assert all(r["scores"]["judge_faithfulness"] == 0.75 for r in answered)
    with_refs = [r for r in answered if r["references"]]
    assert all(r["scores"]["judge_correctness"] == 0.75 for r in with_refs)
    assert all(r["scores"]["judge_faithfulness"] is None and "judge" not in r for r in abstained)
    judged = results["summary"]["golden"]["judge"]
    assert judged["faithfulness"] == 0.75 and judged["judged_faithfulness"] == len(answered)
    assert judged["judged_correctness"] == len(with_refs) and judged["unparsable"] == 0
    assert results["judge"] == {"backend": "fake", "replies": len(answered) + len(with_refs), "stopped": None}
    text = summary_markdown(results, {})
    assert "LLM judge (fake)" in text and f"faithfulness to the passages ({len(answered)} judged)" in text
    assert "Judging stopped early" not in text


def test_run_eval_refuses_an_extractive_judge_before_any_work(golden, tmp_path: Path) -> None:
    config = EvalConfig(progress=False, baselines=False, cache_dir=tmp_path / "cache", judge="extractive")

    def factory(dataset, settings):
        raise AssertionError("no corpus may be built when the judge cannot work")

    with pytest.raises(JudgeError, match="needs an LLM backend"):
        run_eval([golden], load_settings(environ={}), config, corpus_factory=factory)


def test_unjudged_run_has_no_judge_section(golden, tmp_path: Path) -> None:
    results = _run(golden, tmp_path, None)
    assert "judge" not in results and "judge" not in results["summary"]["golden"]
    assert all(r["scores"]["judge_faithfulness"] is None for r in results["questions"])
    assert "LLM judge" not in summary_markdown(results, {})


def test_backend_error_mid_run_keeps_the_rest_of_the_run(golden, tmp_path: Path) -> None:
    results = _run(golden, tmp_path, LLMJudge(FailingAfter(ok=3)))
    assert len(results["questions"]) == len(golden.items)
    assert all("f1" in r["scores"] for r in results["questions"] if r["answerable"])
    judged = results["summary"]["golden"]["judge"]
    assert judged["judged_faithfulness"] + judged["judged_correctness"] == 3
    assert judged["faithfulness"] == 0.5
    assert results["judge"]["stopped"] and "could not reach the server" in results["judge"]["stopped"]
    assert any("LLM judge (flaky) stopped after 3 replies" in note for note in results["notes"])
    assert "Judging stopped early" in summary_markdown(results, {})
