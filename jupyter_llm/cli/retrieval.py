"""``jupyter llm ingest | search | ask``: build and query retrieval collections from a terminal,
through the ``Client`` (a server when ``JUPYTER_LLM_URL`` is set, else an in-process host)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..display import IngestBar
from ..errors import InvalidRequest, NotFound

__all__ = ["register"]

BATCH = 64
"""Queries of a ``--queries`` file sent in one request (results print as each batch ends)."""


def _client() -> Any:
    from ..client import connect

    return connect()


def _cmd_ingest(args: argparse.Namespace) -> int:
    client = _client()
    info = client.create_collection(args.collection, args.vector_backend,
                                    embedding_model=args.embedder, chunk_size=args.chunk_size,
                                    chunk_overlap=args.chunk_overlap)
    bar = IngestBar()
    try:
        summary = client.ingest(args.collection, [os.path.abspath(p) for p in args.paths],
                                include=args.include or (), exclude=args.exclude or (),
                                progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary.get('path') or info.get('path')}: {summary['summary']}")
    return 0


def _result_row(r: Any) -> dict[str, Any]:
    return {"source": r.source, "text": r.text, "score": r.score, "heading": r.heading,
            "start_line": r.start_line, "end_line": r.end_line}


def _read_queries(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [(n, line) for n, line in enumerate(f, start=1) if line.strip()]
    except OSError as e:
        raise NotFound(f"Cannot read the queries file {path}: {e.strerror}.") from e
    out = []
    for n, line in lines:
        try:
            item = json.loads(line)
            out.append({"id": item.get("id", n), "question": str(item["question"])})
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InvalidRequest(f"{path}:{n}: each line must be JSON like "
                                 '{"id": "q1", "question": "..."}' f" ({e}).") from e
    return out


def _cmd_search(args: argparse.Namespace) -> int:
    if args.queries is None and not args.query:
        raise InvalidRequest("Give a QUERY, or --queries FILE.jsonl for a batch search.")
    client = _client()
    params = {"k": args.k, "mode": args.mode, "source": args.source, "threshold": args.threshold}
    if args.queries is not None:
        items = _read_queries(args.queries)
        for start in range(0, len(items), BATCH):
            batch = items[start:start + BATCH]
            found = client.search_many(args.collection, [i["question"] for i in batch],
                                       **params)
            for item, res in zip(batch, found, strict=True):
                print(json.dumps({"id": item["id"], "query": item["question"],
                                  "supported": res.supported,
                                  "results": [_result_row(r) for r in res]}), flush=True)
        return 0
    res = client.search(args.collection, args.query, **params)
    if args.json:
        print(json.dumps(res.to_dict()))
        return 0
    if not res.supported:
        why = res.reason or (f"best similarity {res.top_similarity or 0:.2f} < "
                             f"{res.threshold:.2f}")
        print(f"(the collection does not seem to cover this query: {why})")
    for c, r in zip(res.citations(), res, strict=True):
        snippet = " ".join(r.text.split())
        print(f"[{c.n}] {c.label()}  (score {r.score:.3f})\n    {snippet[:300]}")
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    # the named or default chat model runs on the host; with none installed (or with
    # --retrieval-only) the answer is the cited passages, with a note
    params = {"k": args.k, "mode": args.mode, "source": args.source,
              "threshold": args.threshold, "retrieval_only": args.retrieval_only}
    client = _client()
    if args.json:
        answer = client.ask(args.collection, args.question, args.model, **params)
        print(json.dumps(answer.to_dict()))
        return 0
    response = client.ask(args.collection, args.question, args.model, stream=True, **params)
    for piece in response:
        sys.stdout.write(piece)
        sys.stdout.flush()
    print()
    answer = response.answer
    check = answer.citation_check
    if check is not None and check.action != "kept":
        # the streamed answer failed the citation check: say why, then what replaces it
        print(f"\n({answer.note})\n\n{answer.text}")
    elif check is not None and check.model_text and answer.text.startswith(
            check.model_text.rstrip()) and answer.text != check.model_text:
        # the model's answer was kept: show the excerpt of the passages it cites after it
        print("\n" + answer.text[len(check.model_text.rstrip()):].strip())
    elif answer.note:
        print(f"({answer.note})", file=sys.stderr)
    cited = set(answer.cited) or {c.n for c in answer.citations}
    print("\nSources:")
    for c in answer.citations:
        if c.n in cited:
            print(f"  [{c.n}] {c.label()}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``ingest``, ``search`` and ``ask`` commands."""
    coll_help = ("a collection name (in the collections folder) or, without a server, a path "
                 "to a .sqlite file")
    p = subparsers.add_parser("ingest", help="add files and folders to a retrieval collection",
                              description="Add, update and remove documents of a collection "
                              "(idempotent: unchanged files are skipped by content hash).")
    p.add_argument("collection", help=coll_help)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to ingest")
    p.add_argument("--vector-backend", choices=["vec", "vss"], default=None,
                   help="vector index for a new collection (default: vec)")
    p.add_argument("--include", action="append", metavar="GLOB", help="only matching files")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip matching files")
    p.add_argument("--embedder", default=None,
                   help="embedding model for a new collection (default: all-MiniLM-L6-v2; "
                   "a registry embedding model id such as bge-small-en-v1.5-q8_0, run in a "
                   "worker; a sentence-transformers name or folder; or openai:MODEL@BASE_URL)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="tokens per chunk of a new collection (200)")
    p.add_argument("--chunk-overlap", type=int, default=None,
                   help="tokens two chunks share, for a new collection (32)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_ingest)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
        q.add_argument("--mode", choices=["dense", "lexical", "hybrid"], default="hybrid")
        q.add_argument("--source", default=None, help="only files under this path or glob")
        q.add_argument("--threshold", type=float, default=None,
                       help="support threshold: the best cosine similarity (-1 to 1) that "
                       "counts as covered (default: the collection's own)")
        q.add_argument("--json", action="store_true", help="print JSON")

    s = subparsers.add_parser("search", help="search a retrieval collection")
    s.add_argument("collection", help=coll_help)
    s.add_argument("query", nargs="?", help="the query text")
    s.add_argument("--queries", metavar="FILE.jsonl",
                   help='batch: one {"id", "question"} per line; prints one JSON line each')
    common(s)
    s.set_defaults(func=_cmd_search)

    a = subparsers.add_parser("ask", help="answer a question from a collection, with citations")
    a.add_argument("collection", help=coll_help)
    a.add_argument("question")
    a.add_argument("-m", "--model", default=None,
                   help="chat model id (default: JUPYTER_LLM_DEFAULT_MODEL or the first installed "
                   "chat model; with none installed, the answer is the cited passages)")
    a.add_argument("--retrieval-only", action="store_true",
                   help="do not run a chat model: answer with the cited passages")
    common(a)
    a.set_defaults(func=_cmd_ask)
