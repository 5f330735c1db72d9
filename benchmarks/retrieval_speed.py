"""Retrieval speed, as ratios against baselines measured in the same run.

1. Ingest throughput: a full ``Collection.ingest`` of course files (load, chunk, embed,
   write) versus raw sentence-transformers ``encode`` of the same chunk texts
   (goal: ratio >= 0.9).
2. Query latency of the vector index at 10k and 100k chunks for ``vec`` (sqlite-vec),
   ``vss`` (sqlite-vss) and numpy brute force, p50/p95 in ms.
3. End-to-end ``Collection.search`` latency (embed query + index + FTS) per mode.

    .venv/bin/python benchmarks/retrieval_speed.py [--sizes 10000,100000] [--course PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DIM = 384


def pct(values: list[float], q: float) -> float:
    """The q-quantile of values (nearest rank)."""
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ingest_ratio(course: Path, include: list[str], workdir: Path) -> Path:
    """Time ingest versus raw encode of the same texts; returns the collection path."""
    from jupyter_llm.retrieval.chunking import chunk_sections
    from jupyter_llm.retrieval.collection import Collection
    from jupyter_llm.retrieval.embedders import SentenceTransformerEmbedder
    from jupyter_llm.retrieval.loaders import load_file, walk

    emb = SentenceTransformerEmbedder()
    emb.embed(["warm up the model"] * 8)
    files = list(walk(course, include=include))
    coll_path = workdir / "speed.sqlite"
    coll = Collection.create(coll_path, embedder=emb)
    texts = []
    for f in files:
        doc = load_file(f)
        texts += [c.embedding_text(doc.title)
                  for c in chunk_sections(doc.sections, coll.chunking, emb.count_tokens)]

    def raw() -> float:
        t = time.perf_counter()
        emb.model.encode(texts, batch_size=emb.batch_size, normalize_embeddings=True)
        return time.perf_counter() - t

    raw_before = raw()
    t = time.perf_counter()
    report = coll.ingest(files)
    ingest_s = time.perf_counter() - t
    raw_after = raw()
    raw_s = (raw_before + raw_after) / 2
    print(f"ingest: {len(files)} files, {report.chunks} chunks ({len(texts)} texts)")
    print(f"  raw encode   {raw_s:7.1f} s  {len(texts) / raw_s:6.1f} chunks/s "
          f"(runs {raw_before:.1f} s, {raw_after:.1f} s)")
    print(f"  full ingest  {ingest_s:7.1f} s  {report.chunks / ingest_s:6.1f} chunks/s")
    print(f"  ratio ingest/raw throughput = {raw_s / ingest_s:.2f} (goal >= 0.9)")
    coll.close()
    return coll_path


def latency(sizes: list[int], n_queries: int, workdir: Path) -> None:
    """p50/p95 of k=10 vector queries for vec, vss and numpy at each size."""
    from jupyter_llm.retrieval.db import connect
    from jupyter_llm.retrieval.vectors import open_index

    rng = np.random.default_rng(0)
    print(f"\nvector query latency, k=10, {DIM} dims, {n_queries} queries (ms)")
    print(f"{'chunks':>8} {'backend':8} {'p50':>8} {'p95':>8} {'p50 / numpy':>12} {'build s':>8}")
    for n in sizes:
        x = rng.standard_normal((n, DIM)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        picks = rng.integers(0, n, n_queries)
        noise = rng.standard_normal((n_queries, DIM)).astype(np.float32) / np.sqrt(DIM)
        queries = x[picks] + 0.5 * noise  # a near neighbour of a stored vector
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        times = []
        for q in queries:
            t = time.perf_counter()
            sims = x @ q
            top = np.argpartition(-sims, 10)[:10]
            top[np.argsort(-sims[top])]
            times.append((time.perf_counter() - t) * 1000)
        base = statistics.median(times)
        print(f"{n:8d} {'numpy':8} {base:8.2f} {pct(times, 0.95):8.2f} {1.0:12.2f} {0:8.1f}")
        for backend in ("vec", "vss"):
            path = workdir / f"lat_{backend}_{n}.sqlite"
            db = connect(path)
            index = open_index(backend, db, DIM)
            t = time.perf_counter()
            with db.transaction():
                index.create()
            for i in range(0, n, 10_000):
                with db.transaction():
                    index.add(range(i + 1, min(i + 10_000, n) + 1), x[i:i + 10_000])
            build = time.perf_counter() - t
            index.search(queries[0], 10)
            times = []
            agree = 0
            for q in queries:
                t = time.perf_counter()
                hits = index.search(q, 10)
                times.append((time.perf_counter() - t) * 1000)
                agree += hits[0][0] - 1 == int(np.argmax(x @ q))
            p50 = statistics.median(times)
            print(f"{n:8d} {backend:8} {p50:8.2f} {pct(times, 0.95):8.2f} {p50 / base:12.2f} "
                  f"{build:8.1f}   top-1 agrees with numpy: {agree}/{n_queries}")
            db.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


def search_latency(coll_path: Path, n_queries: int) -> None:
    """End-to-end Collection.search latency per mode."""
    from jupyter_llm.retrieval.collection import Collection

    coll = Collection.open(coll_path)
    questions = ["How do I undo the last commit?", "what is a merge conflict",
                 "push changes to a remote repository", "ignore build files",
                 "how to see differences between versions"]
    coll.search(questions[0])
    print(f"\nCollection.search end to end ({coll.info()['chunks']} chunks, k=5), ms")
    for mode in ("dense", "lexical", "hybrid"):
        times = []
        for i in range(n_queries):
            t = time.perf_counter()
            coll.search(questions[i % len(questions)], k=5, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        print(f"  {mode:8} p50 {statistics.median(times):7.1f}  p95 {pct(times, 0.95):7.1f}")
    coll.close()


def main() -> None:
    """Run the three measurements."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--course", default=os.environ.get(
        "JUPYTER_LLM_COURSE", str(REPO.parent / "shared/eval/course")))
    ap.add_argument("--include", default="git-novice/episodes/*",
                    help="glob of course files for the ingest measurement")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        coll_path = None
        if not args.skip_ingest:
            coll_path = ingest_ratio(Path(args.course), [args.include], work)
        latency([int(s) for s in args.sizes.split(",") if s], args.queries, work)
        if coll_path is not None:
            search_latency(coll_path, 30)


if __name__ == "__main__":
    main()
