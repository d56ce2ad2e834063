"""The one settings model of the product, and how it is loaded.

Precedence, lowest first: defaults < config file (TOML) < environment (RAG_*) < command-line flags.
Loaded once by the entry point (CLI, UI, eval) and passed down; no other module reads the environment
for a setting. Secrets (API keys) are read from the environment by the backend that needs them, by the
variable *name* held here, and are never stored in this model, logged or written to disk.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from index.config import IndexConfig

BackendName = Literal["extractive", "hf", "openai", "ollama"]  # the one list of backend names
ENV_PREFIX = "RAG_"
DEFAULT_CONFIG_FILE = "rag.toml"


class SettingsError(ValueError):
    """A setting is wrong; the message names it and says how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RetrievalSettings(_Strict):
    top_k: int = Field(5, ge=1, le=100, description="Passages shown to the model.")
    candidates: int = Field(
        50, ge=1, le=2000, description="Candidates taken from each retriever before fusion."
    )
    # Chosen on PIAF dev with the default model, multilingual-e5-small (all 1,518 paragraphs; about 1,400
    # French dev questions and the 300 translated ones; `python -m eval.benchmarks.fusion_sweep` sweeps
    # the same grid). Weighted fusion of
    # min-max normalised scores, dense:lexical = 1:1, 50 candidates each: French recall@5 0.910 / hit@1 0.773
    # (0.5:1, the weight chosen earlier with the English all-MiniLM: 0.903 / 0.780; 0.75:1 with 100
    # candidates 0.909 / 0.782; 2:1 0.895 / 0.739; RRF 1:1 0.897 / 0.755; dense alone 0.848 / 0.668). The
    # French figures are within noise of each other (one standard error is about 0.008); the translated
    # questions are not: English 0.893 at 1:1 against 0.843 at 0.5:1, German 0.857 against 0.787, because the
    # glossary bridge of the lexical side is weaker than the multilingual model. Hence 1:1. More candidates
    # (100) changed nothing beyond noise; fewer (20) lost hit@1.
    fusion: Literal["rrf", "weighted"] = "weighted"
    rrf_k: int = Field(60, ge=1, le=1000)
    dense_weight: float = Field(1.0, ge=0.0)
    lexical_weight: float = Field(1.0, ge=0.0)
    # Sentence max-sim, measured on PIAF dev by the same sweep (1:1 fusion, 50 candidates; recall@5 / hit@1):
    # weight 0 -> fr 0.915 / 0.769, en 0.893 / 0.707, de 0.857 / 0.663 (the 1:1 row, same run, 1,200 fr q);
    # 0.25 -> fr 0.917 / 0.773, en 0.903 / 0.743, de 0.867 / 0.683; 0.5 -> fr 0.919 / 0.777, en 0.913 / 0.750,
    # de 0.870 / 0.693; 1.0 -> fr 0.921 / 0.785, en 0.917 / 0.737, de 0.877 / 0.693. A chunk says many
    # things and a question asks one: its best sentence window is a sharper signal than the chunk's vector.
    # The gain grows with the weight in all three languages, so 1.0 (the largest weight tried). Hybrid mode
    # only; it reads the window vectors stored at index time, so no model call is added.
    # Re-checked and tried beyond this grid (same dev sets, same run, fr / en / de recall@5 / hit@1; the
    # default gives 0.921 / 0.785, 0.917 / 0.737, 0.877 / 0.693), nothing kept because nothing wins beyond
    # one standard error (fr ~0.008, en/de ~0.02):
    # - the title and heading path in the embedded text ("TITLE — HEADING\nTEXT" for chunks, "TITLE\n" before
    #   each sentence window): 0.918 / 0.776, 0.923 / 0.727, 0.873 / 0.690 (chunks only); 0.917 / 0.777,
    #   0.913 / 0.727, 0.860 / 0.690 (chunks and windows). PIAF chunks already open with "# TITLE" (1,518
    #   paragraphs in 1,601 chunks) and the lexical side indexes title and headings (`analyze_chunk`);
    # - sentence weight 1.5 / 2.0, dense 0.5-1.25, 100 candidates: all within 0.004 recall / 0.01 hit@1;
    # - a sentence-level lexical signal (IDF-weighted share of the question's terms in the best window) as
    #   a fourth ranking, lexical 0.5 + it 1.0: 0.932 / 0.792, 0.917 / 0.763, 0.873 / 0.707; as a rescoring
    #   of the 20 best: 0.930 / 0.792, 0.920 / 0.770, 0.870 / 0.700; added to each window's cosine
    #   (cosine + 0.05 x share): 0.929 / 0.788, 0.917 / 0.753, 0.880 / 0.700. Gains of about one standard
    #   error, for analysing every candidate's windows at question time (lexical mode: recall 0.879 ->
    #   0.872, worse). Promising for a later session: it needs the windows' terms stored at index time.
    # Eighth session, a fourth signal: term coverage, the IDF-weighted share of the question's distinct terms
    # (as the lexical search analyses them, translations included) that a candidate holds, added raw (0..1)
    # to the fused score. BM25 rewards a rare term repeated; coverage rewards holding *all* the question's
    # terms, which is what tells apart two paragraphs of one article. Chosen on all 3,263 PIAF dev questions
    # (fr) and the 300 translated ones (`python -m eval.benchmarks.fusion_sweep --model DIR --questions
    # 3263`; recall@5 / hit@1 fr, en, de): before (sentence 1.0, no coverage) 0.923 / 0.792, 0.917 / 0.737,
    # 0.877 / 0.693; sentence 2.0 + coverage 1.5: 0.934 / 0.809, 0.927 / 0.763, 0.883 / 0.703. The figures
    # are flat for coverage 1.0-2.0 (fr 0.932-0.934 / 0.807-0.809) with sentence 2.0; sentence 1.5 or 2.5
    # lose 0.002-0.005; coverage alone without a larger sentence weight gives about half the gain. A logistic
    # regression over 21 per-candidate features (the three scores, ranks, gaps to the best, raw cosines,
    # title match, answer-type windows, best-window term share), 5-fold by article on dev, topped at
    # 0.931-0.932 / 0.800-0.801: no better than these four weights, so no learned model is shipped. Dense
    # pseudo-relevance feedback (Rocchio, the question vector plus 0.3-1.0 x the mean of the 1-5 best
    # passages' vectors, searched again): 0.921-0.925 / 0.778-0.795, no gain. Lexical mode is unchanged
    # (coverage added to BM25 alone: within 0.001 recall, German 0.677 -> 0.673).
    sentence_weight: float = Field(
        2.0,
        ge=0.0,
        description="Hybrid mode: weight of a candidate's best sentence-window cosine (max-sim) in the fusion.",
    )
    coverage_weight: float = Field(
        1.5,
        ge=0.0,
        description="Hybrid mode, weighted fusion: weight of a candidate's share of the question's terms "
        "(IDF-weighted, 0..1) added to its fused score.",
    )
    # Tenth session, late interaction (`index.tokens`): the best fused candidates rescored by MaxSim, the
    # question's word tokens (from its one query pass) against each candidate's token vectors stored at index
    # time (int8), IDF-weighted, min-max normalised over the rescored candidates and added with this weight.
    # Chosen on PIAF dev (`python -m eval.benchmarks.fusion_sweep --model DIR`, its last block: 1,200 French
    # dev questions and the 300 translated ones; recall@5 / hit@1 fr, en, de): without it 0.932 / 0.802,
    # 0.930 / 0.763, 0.887 / 0.703; weight 3 over the best 20: 0.941 / 0.823, 0.943 / 0.783, 0.903 / 0.727.
    # Weights 2-8 over 10 or 20 candidates are all within one standard error of each other (fr 0.937-0.941 /
    # 0.820-0.824; en hit@1 0.777-0.800, de 0.723-0.737), weight 1 gives about two thirds of the gain: 3 x 20,
    # the setting the ninth session's experiment (`eval.benchmarks.late_interaction`) had picked before this
    # sweep, is kept. PIAF test, measured once with it (`fusion_sweep --split test`, 4,306 questions): recall@5 /
    # hit@1 0.915 / 0.768 without, 0.922 / 0.782 with (the issue's 0.93 / 0.80 still missed). Cost: 208 bytes per stored word piece (~160 per PIAF chunk: 53 MB for PIAF's
    # 1,601 chunks against 12 MB for the rest of the index; 400 bytes and 116 MB before the eleventh session's
    # projection, `index.tokens.BASIS_DIMENSION`; none with `index.token_vectors` off) and a few ms per question (README "Figures"). The
    # model (multilingual-e5-small) was not trained for MaxSim; the gain comes from a question word meeting
    # its own word in context, which one pooled vector per chunk blurs.
    late_interaction_weight: float = Field(
        3.0,
        ge=0.0,
        description="Hybrid mode, an index with token vectors: weight of the MaxSim of the question's tokens "
        "with a candidate's (min-max normalised over the rescored candidates) added to its fused score; 0: off.",
    )
    late_interaction_candidates: int = Field(
        20,
        ge=1,
        le=500,
        description="Hybrid mode: how many of the best fused candidates late interaction rescores.",
    )
    # Thirteenth session, the cosine span floor (issue 10, golden extra-008): min-max normalisation stretches
    # whatever span a ranking has to 0..1. Over a user's folder of a few chunks (seeds/: one article, 10
    # chunks, all of them candidates) e5's cosines barely differ: the dense span is 0.017-0.12 over the 59
    # golden questions, 0.025 for "Which company leads the investments in OpenAI?", whose chunk is 1st by
    # BM25 and by coverage but 6th by dense, 7th by sentence max-sim and 6th fused: noise of that size weighs
    # as much as a real difference would. (The stand-in's own vectors are within cosine 0.98-0.99 of the hub
    # model's: an error vector of length ~0.15-0.2, whose projection on a question moves a cosine by ~0.01.)
    # With a floor the span is max(max - min, FLOOR) for the three cosine rankings (dense, sentence max-sim,
    # late-interaction MaxSim), never for BM25, whose scale is not fixed. Measured on PIAF dev
    # (`python -m eval.benchmarks.fusion_sweep --model DIR`, its last block; all 3,263 French dev questions
    # and the 300 translated ones; recall@5 / hit@1 fr, en, de; the spans there over the top 50 of 1,518
    # paragraphs: dense median 0.057 (p10 0.026), sentence 0.102 (p10 0.069), MaxSim 0.097 (p10 0.057)):
    # floor 0 0.935 / 0.821, 0.940 / 0.787, 0.910 / 0.717; 0.03 0.936 / 0.823, 0.940 / 0.787, 0.907 / 0.717;
    # 0.04 0.937 / 0.824, 0.937 / 0.783, 0.907 / 0.727; 0.05 0.937 / 0.824, 0.940 / 0.787, 0.910 / 0.737
    # (fr gained / lost: recall 11 / 4, hit@1 18 / 7; de hit@1 6 / 0); 0.06 0.937 / 0.824, 0.940 / 0.783,
    # 0.910 / 0.740; 0.08 0.935 / 0.825, 0.933 / 0.780, 0.910 / 0.747; 0.1 0.934 / 0.824, 0.933 / 0.780,
    # 0.907 / 0.747: flat up to 0.06 (within one standard error, fr ~0.004 / 0.007), the translated English
    # questions lose from 0.08. On the golden sets (hybrid, `rag eval --piaf none --no-baselines
    # --no-adversarial`, RAG_RETRIEVAL__COSINE_SPAN_FLOOR=0.05, or 0.04) extra-008's chunk comes 5th and its
    # answer cites it (English recall@5 0.917 -> 1.000, citation precision 0.939 -> 0.959 over all), but the
    # unanswerable seed-026 ("What is the name of OpenAI's latest model?") is then answered: the chunk that
    # comes in holds a window sharing "model" with it (lexical score 0.221), and the hybrid gate reads the best
    # lexical score and the best cosine of any two windows (0.1 x 0.221 + 0.876 >= 0.882; without it the
    # margin was -0.0008). At 0.03 seed-026 is already answered and extra-008 not yet retrieved. A golden
    # question lost, so the floor stayed 0 until the gate's margin on seed-026 was not a matter of which chunk
    # comes 5th. Fourteenth session: the hybrid gate reads the lexical score only of windows whose cosine is
    # within `HybridGate.lexical_reach` (0.05) of the best one's (rag/abstention.py, calibrated at this floor):
    # the 5th chunk's window is 0.064 below the best cosine, so its "model" no longer counts and seed-026
    # abstains (margin -0.004, its best cosine alone). The floor ships at 0.05, the value the figures above
    # support: golden sets (hybrid, `rag eval --piaf none --no-baselines --no-adversarial`) 10/10 unanswerable
    # abstained, 0/49 answerable, extra-008 cited (citation precision en 0.917 -> 1.000, fr 1.000, de 0.778;
    # 0.939 -> 0.959 over all; recall@5 1.000); lexical mode does not read this setting (its report unchanged).
    cosine_span_floor: float = Field(
        0.05,
        ge=0.0,
        le=2.0,
        description="Hybrid mode: the smallest span of a cosine ranking's scores (dense, "
        "sentence max-sim, late-interaction MaxSim) that min-max normalisation stretches to 0..1; "
        "cosines closer than this are noise for the model and keep that little weight.",
    )
    lexical_only: bool = Field(False, description="Ignore the dense index even when there is one.")
    reranker_model: str | None = Field(
        None,
        description="Cross-encoder to rerank candidates, e.g. cross-encoder/mmarco-mMiniLMv2-L12-H384-v1.",
    )
    reranker_device: str = "cpu"


class LLMSettings(_Strict):
    backend: BackendName = "extractive"
    model: str | None = Field(None, description="Model name for ollama/openai, or a name/folder for hf.")
    base_url: str | None = Field(None, description="Server address for ollama and OpenAI-compatible servers.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Name of the environment variable holding the key."
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1, le=32768)
    timeout_s: float = Field(60.0, gt=0)
    hf_device: str = "cpu"
    rewrite_follow_ups: Literal["when_unsure", "always"] = Field(
        "when_unsure",
        description="How an LLM backend finds the search query of a follow-up question. 'when_unsure': the "
        "rule-based rewrite (rag.condense: the conversation's rarest words added) when it finds the "
        "conversation's subject, the model's rewrite only when it does not; the model reads the "
        "conversation in its answer prompt either way. 'always': the model rewrites every follow-up first "
        "(a whole model call before the answer's first token).",
    )


class AnswerSettings(_Strict):
    abstain_threshold: float | None = Field(
        None, description="Override the calibrated abstention threshold (0..1); None: calibrated default."
    )
    support_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Minimum support of a valid citation.")
    max_history_turns: int = Field(6, ge=0, le=100)


class UISettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    uploads_dir: Path = Path(".rag/uploads")
    database: Path = Field(
        Path(".rag/chat.sqlite3"), description="SQLite file of accounts, conversations and feedback."
    )
    private_dir: Path = Field(
        Path(".rag/users"), description="Each user's own uploads and index (when logins are on)."
    )
    auth: bool | None = Field(
        None, description="Require a login. None: on when `host` is not a loopback address, else off."
    )
    # Limits of the shared chat, each refused with a message that names it.
    max_concurrent_answers: int = Field(64, ge=1, le=1024, description="Questions answered at once.")
    cpu_answers: int = Field(
        0,
        ge=0,
        le=1024,
        description="Answers of a backend without an LLM (extractive: pure CPU work) computed at once; "
        "0: one per CPU core. More only makes threads fight for the cores; LLM answers (waiting on a "
        "server) are limited by max_concurrent_answers only.",
    )
    stream_updates_per_s: float = Field(
        10.0, gt=0, le=1000, description="Most page updates per second while an answer is streamed."
    )
    stream_updates_per_s_total: float = Field(
        40.0,
        gt=0,
        le=100_000,
        description="Most page updates per second for all the answers streamed at once, shared among them "
        "(each update re-sends the chat: 50 answers at 10 a second took the server's whole CPU). The first "
        "piece of an answer is always shown at once.",
    )
    max_question_chars: int = Field(4000, ge=10, le=1_000_000, description="Longest question accepted.")
    questions_per_minute: int = Field(30, ge=1, le=10_000, description="Per user (or per browser session).")
    max_upload_mb: float = Field(20.0, gt=0, description="Largest file accepted in an upload, in MB.")
    max_upload_files: int = Field(20, ge=1, le=1000, description="Most files in one upload.")


class EvalSettings(_Strict):
    piaf_dir: Path = Path("../shared/bench/piaf")
    golden: Path = Path("eval/golden/seed_qa.jsonl")
    runs_dir: Path = Path("runs")


class Settings(_Strict):
    index: IndexConfig = Field(default_factory=IndexConfig)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    ui: UISettings = Field(default_factory=UISettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """RAG_SECTION__FIELD=value, e.g. RAG_LLM__BACKEND=ollama or RAG_INDEX__EMBEDDING_MODEL=./my-model."""
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        if "__" not in name:
            _refuse_one_underscore(name)
            continue
        section, _, field = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in Settings.model_fields:
            raise SettingsError(
                f"Environment variable {name}: unknown section {section!r}. "
                f"Valid sections: {', '.join(Settings.model_fields)}."
            )
        values.setdefault(section, {})[field] = raw
    return values


def _refuse_one_underscore(name: str) -> None:
    """RAG_INDEX_DIR or RAG_RETRIEVAL_TOP_K (one underscore where two are needed) would be ignored without a
    word: refused, naming the variable meant. Other RAG_ names (RAG_CONFIG, a test's own) are left alone."""
    rest = name[len(ENV_PREFIX) :].lower()
    meant = [
        f"{ENV_PREFIX}{section.upper()}__{field.upper()}"
        for section, model in Settings.model_fields.items()
        for field in model.annotation.model_fields  # type: ignore[union-attr]
        if rest in (f"{section}_{field}", field)
    ]
    if meant:
        raise SettingsError(
            f"Environment variable {name} is not a setting: a setting's variable is RAG_SECTION__FIELD, with "
            f"two underscores after the section. Rename it {' or '.join(meant)}."
        )


def _dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """{'llm.backend': 'hf'} -> {'llm': {'backend': 'hf'}}; None values are skipped (flag not given)."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _explain(error: ValidationError, origin: str) -> str:
    lines = [f"Invalid settings ({origin}):"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        env_name = ENV_PREFIX + "__".join(str(p) for p in item["loc"]).upper()
        lines.append(
            f"  - {where}: {item['msg']} (got {item.get('input')!r}; config key {where}, env {env_name})"
        )
    return "\n".join(lines)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings: defaults < TOML file < RAG_* environment < `overrides` (dotted keys)."""
    if config_file is not None and not isinstance(config_file, str | os.PathLike):
        raise SettingsError(
            f"config_file must be the path of a TOML file (str or Path), got {config_file!r:.60}."
        )
    if overrides is not None and not isinstance(overrides, Mapping):
        raise SettingsError(
            "overrides must be a mapping of dotted keys to values, e.g. {'retrieval.top_k': 8}, got "
            f"{type(overrides).__name__}."
        )
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    from_env = environ.get("RAG_CONFIG", "")
    path = Path(config_file) if config_file else Path(from_env or DEFAULT_CONFIG_FILE)
    if config_file and not path.is_file():
        raise SettingsError(
            f"Config file {path} does not exist. Give an existing TOML file or leave --config out."
        )
    if not config_file and from_env and not path.is_file():
        # Named on purpose, like --config: a typo must not silently drop every setting of the file.
        raise SettingsError(
            f"Config file {path} (from RAG_CONFIG) does not exist. Point RAG_CONFIG at an existing TOML "
            "file, or unset it to read ./rag.toml."
        )
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"Config file {path} is not valid TOML: {exc}. Fix the file or remove it."
            ) from exc
    data = _deep_merge(data, _from_env(environ))
    data = _deep_merge(data, _dotted(overrides or {}))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, f"file {path}, RAG_* environment, flags")) from exc
