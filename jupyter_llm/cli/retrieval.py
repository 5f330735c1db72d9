"""``jupyter llm ingest | search | ask``: build and query retrieval collections from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from ..errors import InvalidRequest, NotFound

__all__ = ["register"]


class _IngestBar:
    """A one-line file progress bar on stderr (redrawn on a terminal, quiet otherwise)."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()

    def __call__(self, event: Any) -> None:
        if event.status == "skipped":
            self._clear()
            print(f"jupyter llm: skipped {event.path}: {event.error}", file=self.stream)
        if not self.tty or not event.total:
            return
        frac = min(1.0, event.done / event.total)
        filled = int(frac * self.width)
        name = event.path if len(event.path) < 50 else "…" + event.path[-49:]
        self.stream.write(f"\ringest [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{event.done}/{event.total} {event.status:<9} {name}".ljust(110))
        self.stream.flush()

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")

    def close(self) -> None:
        """End the bar's line."""
        self._clear()


_HOSTS: list[Any] = []
"""The in-process model host of this command, if it needed one (closed when it ends)."""


def _host() -> Any:
    if not _HOSTS:
        from ..client.local import LocalClient

        _HOSTS.append(LocalClient().host)
    return _HOSTS[0]


def _collections() -> Any:
    """Collections by name or path; registry (GGUF) embedders and chat models run in an
    in-process host, started only when one is needed."""
    from ..client.collections import HostCollections

    return HostCollections(_host)


def _closing(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run ``command``, then stop the host's workers it started."""
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        finally:
            while _HOSTS:
                _HOSTS.pop().close()

    return run


def _open(name: str) -> Any:
    collections = _collections()
    return collections.attach(collections.manager.open(name))


def _cmd_ingest(args: argparse.Namespace) -> int:
    from ..retrieval.chunking import ChunkerSettings

    chunking = None
    if args.chunk_size or args.chunk_overlap is not None:
        try:
            chunking = ChunkerSettings(chunk_size=args.chunk_size or 200,
                                       chunk_overlap=32 if args.chunk_overlap is None
                                       else args.chunk_overlap)
        except ValueError as e:
            raise InvalidRequest(f"Invalid chunking settings: {e}") from e
    collections = _collections()
    coll = collections.attach(collections.manager.create(
        args.collection, embedder=collections.embedder(args.embedder),
        vector_backend=args.vector_backend, chunking=chunking))
    bar = _IngestBar()
    try:
        report = coll.ingest(args.paths, include=args.include or (), exclude=args.exclude or (),
                             progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps({"collection": str(coll.path), **report.to_dict()}))
    else:
        print(f"{coll.path}: {report.summary()}")
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
    coll = _open(args.collection)
    if args.queries is not None:
        for item in _read_queries(args.queries):
            res = coll.search(item["question"], k=args.k, mode=args.mode, source=args.source,
                              threshold=args.threshold)
            print(json.dumps({"id": item["id"], "query": item["question"],
                              "supported": res.supported,
                              "results": [_result_row(r) for r in res]}), flush=True)
        return 0
    res = coll.search(args.query, k=args.k, mode=args.mode, source=args.source,
                      threshold=args.threshold)
    if args.json:
        print(json.dumps(res.to_dict()))
        return 0
    if not res.supported:
        print("(the collection does not seem to cover this query; "
              f"best similarity {res.top_similarity or 0:.2f} < {res.threshold:.2f})")
    for c, r in zip(res.citations(), res, strict=True):
        snippet = " ".join(r.text.split())
        print(f"[{c.n}] {c.label()}  (score {r.score:.3f})\n    {snippet[:300]}")
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    stream = None if args.json else (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    if args.retrieval_only:
        answer = _open(args.collection).ask(args.question, k=args.k, mode=args.mode,
                                            source=args.source)
        stream = None
    else:  # the named or default chat model runs in a worker of an in-process host;
        # with no chat model installed the answer is the cited passages, with a note
        answer = _collections().prepare_ask(
            args.collection, args.question, model=args.model, k=args.k, mode=args.mode,
            source=args.source, face="cli").run(on_text=stream)
    if args.json:
        print(json.dumps(answer.to_dict()))
        return 0
    if stream is None:
        print(answer.text)
    else:
        print()
    if answer.note:
        print(f"({answer.note})", file=sys.stderr)
    cited = set(answer.cited) or {c.n for c in answer.citations}
    print("\nSources:")
    for c in answer.citations:
        if c.n in cited:
            print(f"  [{c.n}] {c.label()}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``ingest``, ``search`` and ``ask`` commands."""
    coll_help = "a collection name (in the collections folder) or a path to a .sqlite file"
    p = subparsers.add_parser("ingest", help="add files and folders to a retrieval collection",
                              description="Add, update and remove documents of a collection "
                              "(idempotent: unchanged files are skipped by content hash).")
    p.add_argument("collection", help=coll_help)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to ingest")
    p.add_argument("--vector-backend", choices=["vec", "vss"], default="vec",
                   help="vector index for a new collection (default: vec)")
    p.add_argument("--include", action="append", metavar="GLOB", help="only matching files")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip matching files")
    p.add_argument("--embedder", default=None,
                   help="embedding model for a new collection (default: all-MiniLM-L6-v2; "
                   "a registry embedding model id such as bge-small-en-v1.5-q8_0, run in a "
                   "worker; a sentence-transformers name or folder; or openai:MODEL@BASE_URL)")
    p.add_argument("--chunk-size", type=int, default=None, help="tokens per chunk (200)")
    p.add_argument("--chunk-overlap", type=int, default=None, help="overlap in tokens (32)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_closing(_cmd_ingest))

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
        q.add_argument("--mode", choices=["dense", "lexical", "hybrid"], default="hybrid")
        q.add_argument("--source", default=None, help="only files under this path or glob")
        q.add_argument("--json", action="store_true", help="print JSON")

    s = subparsers.add_parser("search", help="search a retrieval collection")
    s.add_argument("collection", help=coll_help)
    s.add_argument("query", nargs="?", help="the query text")
    s.add_argument("--queries", metavar="FILE.jsonl",
                   help='batch: one {"id", "question"} per line; prints one JSON line each')
    s.add_argument("--threshold", type=float, default=None,
                   help="support threshold (best cosine similarity) for 'supported'")
    common(s)
    s.set_defaults(func=_closing(_cmd_search))

    a = subparsers.add_parser("ask", help="answer a question from a collection, with citations")
    a.add_argument("collection", help=coll_help)
    a.add_argument("question")
    a.add_argument("-m", "--model", default=None,
                   help="chat model id (default: JUPYTER_LLM_DEFAULT_MODEL or the first installed "
                   "chat model; with none installed, the answer is the cited passages)")
    a.add_argument("--retrieval-only", action="store_true",
                   help="do not run a chat model: answer with the cited passages")
    common(a)
    a.set_defaults(func=_closing(_cmd_ask))
