"""Settings of the indexing side. `rag.settings.Settings` nests this model; it is never read from two places."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from index.loaders import SUPPORTED_EXTENSIONS

DEFAULT_EMBEDDING_MODEL = "intfloat/multilingual-e5-small"


class IndexConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    index_dir: Path = Field(Path(".rag/index"), description="Folder of the built index (gitignored data).")
    store_url: str = Field(
        "",
        description="Where the index lives: empty for the folder `index_dir`; postgresql://user@host/db for a "
        "PostgreSQL database with pgvector (see the README). A password is better put in PGPASSWORD or ~/.pgpass.",
    )
    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers model name or local folder. Empty string: lexical retrieval only.",
    )
    embedding_device: str = Field("cpu", description="torch device for the embedding model: cpu, cuda, mps.")
    query_prompt: str | None = Field(
        None, description="Text put before queries; None: the model's own prompt, or 'query: ' for E5."
    )
    passage_prompt: str | None = Field(
        None, description="Text put before passages; None: the model's own prompt, or 'passage: ' for E5."
    )
    embedding_batch_size: int = Field(32, ge=1, le=4096)
    # One question is ~20 tokens: its matrix products are too small to share between cores (each layer's
    # threads meet at a barrier dozens of times per question), and when the cores are busy (other chat
    # sessions, an index build) a waiting thread spins on a core another thread needs. Measured by
    # eval/benchmarks/query_embedding.py: figures in docs/figures-history.md (answer latency).
    embedding_query_threads: int = Field(
        1,
        ge=0,
        le=1024,
        description="CPU threads torch uses to embed one question (0: torch's default, one per core). "
        "Passages (index builds) always use torch's default.",
    )
    # ONNX Runtime runs the same weights' graph with fused kernels: one question's embedding took a third
    # of torch's time and passages less CPU, with the same vectors (cosine >= 0.9999, checked on every load;
    # eval/benchmarks/query_embedding.py). "auto" uses it when onnxruntime is installed and the export
    # works, else torch; see index/onnx_encoder.py.
    embedding_backend: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="What runs the embedding model on the CPU: 'onnx' (ONNX Runtime; the model is exported "
        "once to the user's cache), 'torch', or 'auto' (ONNX Runtime when installed, else torch).",
    )
    # Questions through an int8 copy of the ONNX export (index/onnx_encoder.py): about half the CPU of
    # float32 per question (e5-small, 150 chat questions one by one: 21.7 -> 10.7-13.7 ms of CPU), the cost
    # that limits a chat serving many people in hybrid mode. Passages stay float32. Off by default: it
    # moves retrieval by more than 0.003. PIAF dev, the product's retriever, recall@5 / hit@1 (fr 1,200
    # sampled / en, de 300 translated), float32: fr 0.921 / 0.785, en 0.917 / 0.737, de 0.877 / 0.693;
    # int8, first layer float32 (shipped rule): fr 0.918 / 0.782, en 0.917 / 0.747, de 0.873 / 0.680;
    # every layer int8: fr 0.921 / 0.782, en 0.917 / 0.757, de 0.863 / 0.697; FFN output float32:
    # fr 0.920 / 0.788, en 0.913 / 0.750, de 0.860 / 0.687 (en/de: one question is 0.0033).
    embedding_query_int8: bool = Field(
        False,
        description="Embed questions with an int8 copy of the model (ONNX Runtime only; made once beside "
        "the float32 export, checked against it on every load). Passages always use float32.",
    )
    # Late interaction's storage (`index.tokens`): every chunk's token vectors, the bulk of a hybrid index
    # (PIAF: 53 MB of token vectors beside 12.4 MB for the rest, `index.tokens.BASIS_DIMENSION`; ~3.3 GB at
    # 100k chunks of 160 word pieces). Off,
    # retrieval ranks without the MaxSim rescoring, as from an index of before them (PIAF dev recall@5 / hit@1
    # fr 0.941 / 0.823 -> 0.932 / 0.802: `rag.settings.RetrievalSettings.late_interaction_weight`). Turned off
    # on an index that has them, the next `rag index` drops them without embedding anything; turned on again,
    # it embeds every chunk once more to add them. The PostgreSQL store never keeps them.
    token_vectors: bool = Field(
        True,
        description="Hybrid mode, folder store: keep every chunk's token vectors for late interaction "
        "(MaxSim rescoring). False: a smaller index that ranks without it; applied by the next `rag index`.",
    )
    # Defaults measured with eval/benchmarks/chunking.py (PIAF dev, lexical retrieval, paragraphs joined per
    # article): at an equal context budget (1,280 tokens = top-5 x 256) 256/76 gave the best answer recall
    # (0.861; 200/40: 0.847, 320/96: 0.857, 512/102: 0.819); bigger chunks win recall@5 only by sending
    # more text. Capped at the model's window (prompt and special tokens included) when larger.
    chunk_size_tokens: int = Field(256, ge=16, le=8192, description="Chunk budget in the model's tokens.")
    chunk_overlap_tokens: int = Field(76, ge=0, le=4096, description="Overlap between neighbouring chunks.")
    extensions: tuple[str, ...] = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
    show_progress: bool = True

    @field_validator("extensions", mode="before")
    @classmethod
    def _parse_extensions(cls, value: object) -> tuple[str, ...]:
        """A list of file types, or one string (an environment variable): ".txt,.md" or '[".txt", ".md"]'.
        Each is lower-cased and given its dot; a type no loader reads is refused here, not skipped later."""
        if isinstance(value, str):
            text = value.strip()
            value = [part.strip(" '\"") for part in text.strip("[]").split(",")] if text else []
        how = f"separated by commas, among {', '.join(SUPPORTED_EXTENSIONS)} (e.g. .txt,.md,.pdf)"
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"must list file types {how}")
        wanted = [item.strip().lower() for item in value if item.strip()]
        wanted = [item if item.startswith(".") else f".{item}" for item in wanted]
        unknown = [item for item in wanted if item not in SUPPORTED_EXTENSIONS]
        if unknown or not wanted:
            said = f"{', '.join(unknown)} cannot be read; " if unknown else "no file type given; "
            raise ValueError(f"{said}list file types {how}")
        return tuple(dict.fromkeys(wanted))

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be empty (the folder index.index_dir) or a PostgreSQL URL postgresql://user@host:5432/dbname"
            )
        return value

    @property
    def uses_postgres(self) -> bool:
        return bool(self.store_url)

    def resolved_index_dir(self) -> Path:
        return Path(self.index_dir).expanduser().resolve()


IndexMode = Literal["hybrid", "lexical"]
