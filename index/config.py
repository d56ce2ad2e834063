"""Settings of the indexing side. `rag.settings.Settings` nests this model; it is never read from two places."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_EMBEDDING_MODEL = "intfloat/multilingual-e5-small"


class IndexConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    index_dir: Path = Field(Path(".rag/index"), description="Folder of the built index (gitignored data).")
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
    chunk_size_tokens: int = Field(200, ge=16, le=8192, description="Chunk budget in the model's tokens.")
    chunk_overlap_tokens: int = Field(40, ge=0, le=4096, description="Overlap between neighbouring chunks.")
    extensions: tuple[str, ...] = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
    show_progress: bool = True

    def resolved_index_dir(self) -> Path:
        return Path(self.index_dir).expanduser().resolve()


IndexMode = Literal["hybrid", "lexical"]
