"""Optional cross-encoder reranking of fused candidates (off by default: `retrieval.reranker_model`).

A cross-encoder reads the question and a candidate together, which orders candidates better than either
retriever alone but costs one model call per candidate, so only the first `max_candidates` are reranked.
sentence-transformers is imported when a reranker is built, never at import.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.errors import RagError


class RerankerUnavailableError(RagError):
    """The configured cross-encoder could not be loaded."""


class CrossEncoderReranker:
    def __init__(self, model_name: str, *, device: str = "cpu", max_candidates: int = 50) -> None:
        try:
            from sentence_transformers import CrossEncoder

            self.model = CrossEncoder(model_name, device=device)
        except Exception as exc:  # noqa: BLE001 - any load failure means the same thing to the user
            raise RerankerUnavailableError(
                f"Reranker model {model_name!r} could not be loaded ({type(exc).__name__}: {exc}). "
                "Set retrieval.reranker_model (RAG_RETRIEVAL__RERANKER_MODEL) to a local cross-encoder folder, "
                "or unset it to retrieve without reranking."
            ) from exc
        self.model_name = model_name
        self.max_candidates = max_candidates

    def rerank(self, question: str, candidates: Sequence[tuple[int, str]]) -> list[tuple[int, float]]:
        """(row, text) candidates in fused order -> (row, score) best first; the tail keeps its order."""
        head, tail = list(candidates[: self.max_candidates]), list(candidates[self.max_candidates :])
        if not head:
            return []
        scores = self.model.predict([(question, text) for _, text in head], show_progress_bar=False)
        ranked = sorted(
            zip((row for row, _ in head), (float(s) for s in scores), strict=True), key=lambda x: -x[1]
        )
        floor = ranked[-1][1] if ranked else 0.0
        return ranked + [(row, floor - 1.0 - i) for i, (row, _) in enumerate(tail)]
