"""BEIR SciFact through a real collection: nDCG@10 and Recall@100 for dense, lexical and hybrid.

Reads ``../shared/eval/scifact`` relative to the repository (override with
``--data`` or ``JUPYTER_LLM_SCIFACT``); the data is never copied into the repo.
Each document is one chunk, ``title + " " + text``, encoded with all-MiniLM-L6-v2
(exact cosine with sqlite-vec). Published: MiniLM dense 0.645, BM25 0.665.

    .venv/bin/python benchmarks/retrieval_scifact.py [--collection /tmp/scifact.sqlite]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def load_scifact(data: Path) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    """Corpus rows, test queries by id, and test qrels (CRLF-tolerant)."""
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open(encoding="utf-8")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (data / "queries.jsonl").open())}
    qrels: dict[str, dict[str, int]] = {}
    with (data / "qrels" / "test.tsv").open(encoding="utf-8", newline="") as f:
        next(f)
        for line in f:
            parts = line.strip().split("\t")
            if len(parts) == 3 and int(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return corpus, {q: queries[q] for q in qrels}, qrels


def ndcg_at(ranked: list[str], rel: dict[str, int], k: int = 10) -> float:
    """Binary-gain nDCG@k as in BEIR (pytrec_eval)."""
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rel: dict[str, int], k: int = 100) -> float:
    """Fraction of relevant documents in the top k."""
    return len(set(ranked[:k]) & set(rel)) / len(rel) if rel else 0.0


def build(path: Path, corpus: list[dict], backend: str) -> float:
    """Create the collection: one chunk per abstract; returns encoding+write seconds."""
    from jupyter_llm.retrieval.chunking import Chunk, ChunkerSettings
    from jupyter_llm.retrieval.collection import Collection

    coll = Collection.create(path, vector_backend=backend,
                             chunking=ChunkerSettings(chunk_size=8192, chunk_overlap=0))
    texts = [(d.get("title", "") + " " + d.get("text", "")).strip() for d in corpus]
    start = time.perf_counter()
    step = 512
    for i in range(0, len(corpus), step):
        vectors = coll.embedder.embed(texts[i:i + step])
        for j, d in enumerate(corpus[i:i + step]):
            coll.write_document(f"scifact/{d['_id']}", title=d.get("title", ""), kind="text",
                                sha256=str(d["_id"]), mtime=None, size=None,
                                chunks=[Chunk(texts[i + j])], vectors=vectors[j:j + 1])
        print(f"  encoded {min(i + step, len(corpus))}/{len(corpus)}", file=sys.stderr,
              flush=True)
    elapsed = time.perf_counter() - start
    coll.close()
    return elapsed


def main() -> None:
    """Build (or reuse) the SciFact collection and print metrics per search mode."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("JUPYTER_LLM_SCIFACT",
                                                     str(REPO.parent / "shared/eval/scifact")))
    ap.add_argument("--collection", default=None,
                    help="collection file to build or reuse (default: a temporary file)")
    ap.add_argument("--backend", default="vec", choices=["vec", "vss"])
    ap.add_argument("--queries", type=int, default=0, help="only the first N queries")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "corpus.jsonl").is_file():
        sys.exit(f"SciFact not found at {data}; pass --data or set JUPYTER_LLM_SCIFACT.")
    corpus, queries, qrels = load_scifact(data)
    if args.queries:
        queries = dict(list(queries.items())[:args.queries])
    tmp = None
    if args.collection:
        path = Path(args.collection)
    else:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "scifact.sqlite"
    if not path.exists():
        print(f"building {path} from {len(corpus)} abstracts ({args.backend})…", file=sys.stderr)
        secs = build(path, corpus, args.backend)
        print(f"encode+write: {secs:.1f} s, {len(corpus) / secs:.1f} docs/s")

    from jupyter_llm.retrieval.collection import Collection

    coll = Collection.open(path)
    coll.embedder.embed(["warm up"])
    print(f"SciFact test: {len(queries)} queries, {len(corpus)} documents, backend "
          f"{coll.meta.vector_backend}")
    print(f"{'mode':8} {'nDCG@10':>8} {'R@100':>7} {'p50 ms':>7} {'p95 ms':>7}")
    for mode in ("dense", "lexical", "hybrid"):
        ndcgs, recalls, times = [], [], []
        for qid, text in queries.items():
            t = time.perf_counter()
            res = coll.search(text, k=100, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
            ranked = [r.source.split("/", 1)[1] for r in res]
            ndcgs.append(ndcg_at(ranked, qrels[qid]))
            recalls.append(recall_at(ranked, qrels[qid]))
        times.sort()
        print(f"{mode:8} {sum(ndcgs) / len(ndcgs):8.4f} {sum(recalls) / len(recalls):7.4f} "
              f"{times[len(times) // 2]:7.1f} {times[int(len(times) * 0.95)]:7.1f}", flush=True)
    print("published: MiniLM dense 0.645 (MTEB), BM25 0.665 (BEIR) nDCG@10")
    coll.close()


if __name__ == "__main__":
    main()
