"""``RemoteClient``: the ``Client`` interface over a jupyter_llm server's native API (HTTP).

Kernels started by a Jupyter server with the extension get ``JUPYTER_LLM_URL`` and
``JUPYTER_LLM_TOKEN``; ``connect()`` then returns a ``RemoteClient`` so every kernel shares
the server's loaded models. Errors arrive in the one JSON shape and are raised again as the
same ``jupyter_llm.errors`` classes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from .. import errors
from ..models import Finish, Message, Queued, Request, Response, Usage
from .base import Client, ProgressCallback

if TYPE_CHECKING:
    from ..retrieval.answer import Answer
    from ..retrieval.evaluate import EvalItem
    from ..retrieval.questions import Question
    from ..retrieval.search import SearchResults

__all__ = ["RemoteClient", "error_from_body"]

TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def _error_classes() -> dict[str, type[errors.JupyterLLMError]]:
    found: dict[str, type[errors.JupyterLLMError]] = {}
    pending: list[type[errors.JupyterLLMError]] = [errors.JupyterLLMError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.type, cls)
        pending.extend(cls.__subclasses__())
    return found


def error_from_body(body: Any, status: int = 500,
                    headers: httpx.Headers | None = None) -> errors.JupyterLLMError:
    """Rebuild the ``errors`` class named by a ``{"error": {"type", "message", "details"}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        text = body if isinstance(body, str) else json.dumps(body)
        exc = errors.BackendError(f"The jupyter-llm server answered {status}: {text[:300]}")
        exc.status = status
        return exc
    cls = _error_classes().get(str(err.get("type")))
    message = str(err.get("message") or f"HTTP {status}")
    if cls is None:  # a type this client does not know (e.g. forbidden from auth): keep status
        cls = {400: errors.InvalidRequest, 403: errors.Forbidden, 404: errors.NotFound,
               409: errors.Conflict, 503: errors.Busy}.get(status, errors.BackendError)
    if issubclass(cls, errors.Busy):
        retry = headers.get("Retry-After") if headers is not None else None
        return cls(message, details=err.get("details"),
                   retry_after=int(retry) if retry and retry.isdigit() else 1)
    return cls(message, details=err.get("details"))


class RemoteClient(Client):
    """Talks to a jupyter_llm server (``JUPYTER_LLM_URL``) with its token."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 transport: httpx.BaseTransport | None = None,
                 timeout: httpx.Timeout | float = TIMEOUT) -> None:
        url = url or os.environ.get("JUPYTER_LLM_URL")
        if not url:
            raise errors.InvalidRequest(
                "RemoteClient needs a server URL: pass url= or set JUPYTER_LLM_URL (a "
                "jupyter-llm server prints its URL when it starts).")
        self.url = url.rstrip("/") + "/"
        if token is None:  # behind JupyterHub, the user's own hub token identifies them
            token = os.environ.get("JUPYTER_LLM_TOKEN") or os.environ.get(
                "JUPYTERHUB_API_TOKEN", "")
        headers = {"Authorization": f"token {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url + "llm/api/", headers=headers,
                                  timeout=timeout, transport=transport)

    def __repr__(self) -> str:
        return f"<RemoteClient {self.url}>"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    # -- plumbing --------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise errors.BackendError(
                f"Cannot reach the jupyter-llm server at {self.url}: {e}. Is it running? "
                "(check JUPYTER_LLM_URL)", details={"url": self.url}) from e
        return self._json(response)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise error_from_body(body, response.status_code, response.headers)
        return body

    def _lines(self, path: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST and yield the NDJSON lines; closing the iterator closes the connection."""
        try:
            with self._http.stream("POST", path, json=payload) as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as e:
            raise errors.BackendError(
                f"The connection to the jupyter-llm server at {self.url} failed: {e}.",
                details={"url": self.url}) from e

    # -- the Client interface --------------------------------------------------------------
    def models(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Every registry model of the server with its state."""
        return self._call("GET", "models", params={"tag": tag} if tag else None)["models"]

    def pull(self, model_id: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Download a model on the server, calling ``progress`` with each progress dict."""
        for event in self._lines("pull", {"model": model_id, "stream": True}):
            if event.get("status") == "error":
                raise error_from_body(event)
            if progress is not None:
                progress(event)
            if event.get("status") == "done" and "manifest" in event:
                return event["manifest"]
        raise errors.BackendError(f"The server ended the download of {model_id!r} without a "
                                  "result; try again.", details={"model": model_id})

    def cancel_pull(self, model_id: str) -> bool:
        """Cancel a running download on the server."""
        return bool(self._call("POST", "pull/cancel", json={"model": model_id})["cancelled"])

    def remove(self, model_id: str) -> bool:
        """Delete an installed model on the server."""
        return bool(self._call("DELETE", "models/" + quote(model_id, safe=""))["removed"])

    def load(self, model_id: str, **options: Any) -> dict[str, Any]:
        """Load a model on the server."""
        return self._call("POST", "load", json={"model": model_id, "options": options})

    def unload(self, model_id: str) -> bool:
        """Unload a model on the server."""
        return bool(self._call("POST", "unload", json={"model": model_id})["unloaded"])

    def ps(self) -> list[dict[str, Any]]:
        """The server's loaded models."""
        return self._call("GET", "ps")["models"]

    def _run(self, path: str, payload: dict[str, Any], model: str | None, stream: bool,
             request: Request) -> Response:
        if not stream:
            body = self._call("POST", path, json={**payload, "stream": False})
            text = body["message"]["content"] if "message" in body else body.get("text", "")

            def once() -> Iterator[str | Finish]:
                yield text
                yield _finish(body)

            return Response(once(), model_id=body.get("model") or model or "", request=request,
                            request_id=body.get("request_id"))
        lines = self._lines(path, {**payload, "stream": True})
        response: Response

        def events() -> Iterator[str | Finish | Queued]:
            try:
                for event in lines:
                    if "delta" in event:
                        yield event["delta"]
                    elif "queued" in event:
                        yield _queued(event)
                    elif event.get("done"):
                        response.model_id = event.get("model") or response.model_id
                        response.request_id = event.get("request_id")
                        yield _finish(event)
                        return
                    elif "error" in event:
                        raise error_from_body(event)
            finally:
                lines.close()  # closes the HTTP stream: the server cancels the generation

        response = Response(events(), model_id=model or "", request=request)
        return response

    def chat(self, messages: list[Message], model: str | None = None, *, stream: bool = True,
             log: bool = True, tutoring: bool = False, **options: Any) -> Response:
        """Chat on the server; iterate the Response for streamed text."""
        payload = {"model": model, "messages": messages, "options": options, "log": log,
                   "tutoring": tutoring}
        return self._run("chat", payload, model, stream, Request(messages=messages))

    def generate(self, prompt: str, model: str | None = None, *, stream: bool = True,
                 log: bool = True, **options: Any) -> Response:
        """Raw completion on the server."""
        payload = {"model": model, "prompt": prompt, "options": options, "log": log}
        return self._run("generate", payload, model, stream, Request(prompt=prompt))

    def embed(self, texts: list[str], model: str | None = None) -> list[list[float]]:
        """Embeddings from the server."""
        return self._call("POST", "embed", json={"model": model, "input": list(texts)})["embeddings"]

    # -- the classroom ------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """This token's name, role and usage on the server."""
        return self._call("GET", "me")

    def feedback(self, entry: int | str, *, rating: int | None = None,
                 score: float | None = None, comment: str | None = None) -> dict[str, Any]:
        """Rate one of your history entries on the server."""
        body = {k: v for k, v in (("rating", rating), ("score", score), ("comment", comment))
                if v is not None}
        return self._call("POST", f"history/{entry}/feedback", json=body)

    def export_history(self, fmt: str = "jsonl", **filters: Any) -> str:
        """The server's history as CSV or JSONL (instructors)."""
        params = {k: v for k, v in filters.items() if v is not None}
        try:
            response = self._http.get("history/export", params={**params, "format": fmt})
        except httpx.HTTPError as e:
            raise errors.BackendError(f"Cannot reach the jupyter-llm server at {self.url}: {e}.",
                                      details={"url": self.url}) from e
        if response.status_code >= 400:
            self._json(response)  # raises the server's error
        return response.text

    def tokens(self) -> list[dict[str, Any]]:
        """The server's named tokens (admins)."""
        return self._call("GET", "tokens")["tokens"]

    def add_token(self, name: str, role: str = "student") -> dict[str, Any]:
        """Issue a named token on the server (admins)."""
        return self._call("POST", "tokens", json={"name": name, "role": role})

    def revoke_token(self, name: str) -> bool:
        """Revoke a named token on the server (admins)."""
        return bool(self._call("DELETE", f"tokens/{name}")["revoked"])

    def history(self, limit: int = 20, *, model: str | None = None, user: str | None = None,
                collection: str | None = None, since: float | None = None,
                until: float | None = None) -> list[dict[str, Any]]:
        """The server's most recent requests, newest first."""
        params = _filters(model=model, user=user, collection=collection, since=since,
                          until=until)
        return self._call("GET", "history", params={"limit": limit, **params})["entries"]

    def history_stats(self, *, by: str = "model", user: str | None = None,
                      collection: str | None = None, since: float | None = None,
                      until: float | None = None) -> dict[str, Any]:
        """The server's request statistics (as the caller's role may see them)."""
        return self._call("GET", "history/stats", params=_filters(
            by=by, user=user, collection=collection, since=since, until=until))

    # -- retrieval collections ----------------------------------------------------------------
    def collections(self) -> list[dict[str, Any]]:
        """The server's collections."""
        return self._call("GET", "collections")["collections"]

    def create_collection(self, name: str, vector_backend: str | None = None, *,
                          embedding_model: str | None = None, chunk_size: int | None = None,
                          chunk_overlap: int | None = None) -> dict[str, Any]:
        """Create a collection on the server (or return a matching existing one)."""
        return self._call("POST", "collections", json={
            "name": name, "vector_backend": vector_backend, "embedding_model": embedding_model,
            "chunk_size": chunk_size, "chunk_overlap": chunk_overlap})

    def conversations(self) -> list[dict[str, Any]]:
        """Your saved conversations on the server."""
        return list(self._call("GET", "conversations")["conversations"])

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """One of your saved conversations on the server, with its messages."""
        return self._call("GET", f"conversations/{quote(conversation_id, safe='')}")

    def save_conversation(self, messages: list[dict[str, Any]], *,
                          conversation_id: str | None = None, title: str | None = None,
                          model: str | None = None,
                          collection: str | None = None) -> dict[str, Any]:
        """Save a conversation on the server (PUT to its id to replace it)."""
        body = {"messages": messages, "title": title, "model": model, "collection": collection}
        if conversation_id is None:
            return self._call("POST", "conversations", json=body)
        return self._call("PUT", f"conversations/{quote(conversation_id, safe='')}", json=body)

    def delete_conversation(self, conversation_id: str) -> bool:
        """Delete one of your saved conversations on the server."""
        return bool(self._call("DELETE",
                               f"conversations/{quote(conversation_id, safe='')}")["deleted"])

    def export_conversation(self, conversation_id: str, path: str | None = None) -> str:
        """Write a saved conversation as a notebook in the server's root folder."""
        return str(self._call("POST", f"conversations/{quote(conversation_id, safe='')}/export",
                              json={"path": path})["path"])

    def collection_documents(self, name: str) -> list[dict[str, Any]]:
        """The documents of a collection on the server."""
        return list(self._call("GET", _coll(name, "documents"))["documents"])

    def delete_collection(self, name: str) -> bool:
        """Delete a collection on the server."""
        return bool(self._call("DELETE", _coll(name))["removed"])

    def collection(self, name: str) -> dict[str, Any]:
        """One collection's summary from the server."""
        return self._call("GET", _coll(name))

    def configure_collection(self, name: str, *,
                             tutoring_guard: bool | None = None) -> dict[str, Any]:
        """Change a collection's settings on the server."""
        return self._call("PATCH", _coll(name), json={"tutoring_guard": tutoring_guard})

    def ingest(self, name: str, paths: Sequence[str], include: Sequence[str] = (),
               exclude: Sequence[str] = (),
               progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Ingest files and folders on the server (paths relative to its root_dir)."""
        payload = {"paths": [paths] if isinstance(paths, str) else list(paths),
                   "include": list(include), "exclude": list(exclude)}
        for event in self._lines(_coll(name, "ingest"), payload):
            if isinstance(event.get("error"), dict):  # the stream failed (not a skipped file)
                raise error_from_body(event)
            if event.get("done") is True:
                return event
            if progress is not None:
                progress(event)
        raise errors.BackendError(f"The server ended the ingest into {name!r} without a "
                                  "summary; run it again (finished files are kept).",
                                  details={"collection": name})

    def search(self, name: str, query: str, k: int = 5, mode: str = "hybrid", *,
               source: str | None = None, threshold: float | None = None) -> SearchResults:
        """Search a collection on the server."""
        body = self._call("POST", _coll(name, "search"), json={
            "query": query, "k": k, "mode": mode, "source": source, "threshold": threshold})
        return _search_results(body)

    def search_many(self, name: str, queries: Sequence[str], k: int = 5, mode: str = "hybrid",
                    *, source: str | None = None,
                    threshold: float | None = None) -> list[SearchResults]:
        """Search several queries on the server in one request."""
        body = self._call("POST", _coll(name, "search"), json={
            "queries": list(queries), "k": k, "mode": mode, "source": source,
            "threshold": threshold})
        return [_search_results(item) for item in body["searches"]]

    def ask(self, name: str, question: str, model: str | None = None, stream: bool = False, *,
            k: int = 5, mode: str = "hybrid", source: str | None = None,
            threshold: float | None = None, retrieval_only: bool = False, log: bool = True,
            **options: Any) -> Answer | Response:
        """A grounded answer from the server (streamed as a ``Response`` with ``stream``)."""
        payload = {"question": question, "model": model, "k": k, "mode": mode,
                   "source": source, "threshold": threshold, "retrieval_only": retrieval_only,
                   "options": options, "log": log}
        if not stream:
            body = self._call("POST", _coll(name, "ask"), json={**payload, "stream": False})
            return _answer(question, body, body["message"]["content"])
        lines = self._lines(_coll(name, "ask"), {**payload, "stream": True})
        pieces: list[str] = []
        response: Response

        def events() -> Iterator[str | Finish | Queued]:
            try:
                for event in lines:
                    if "delta" in event:
                        pieces.append(event["delta"])
                        yield event["delta"]
                    elif "queued" in event:
                        yield _queued(event)
                    elif event.get("done"):
                        answer = _answer(question, event, "".join(pieces))
                        response.answer = answer
                        response.citations = answer.citations
                        response.model_id = answer.model or response.model_id
                        yield _finish(event)
                        return
                    elif "error" in event:
                        raise error_from_body(event)
            finally:
                lines.close()  # closes the HTTP stream: the server cancels the generation

        response = Response(events(), model_id=model or "", request=Request(prompt=question))
        return response


    def evaluate_items(self, name: str, questions: Sequence[Question],
                       models: Sequence[str | None] = (), *, k: int = 5, mode: str = "hybrid",
                       threshold: float | None = None,
                       options: dict[str, Any] | None = None) -> Iterator[EvalItem]:
        """Measure on the server, one NDJSON item at a time (closing stops the server's run)."""
        from ..retrieval.evaluate import EvalItem

        qs = list(questions)
        lines = self._lines(_coll(name, "evaluate"), {
            "questions": [q.to_dict() for q in qs], "models": list(models), "k": k,
            "mode": mode, "threshold": threshold, "options": dict(options or {})})

        def items() -> Iterator[EvalItem]:
            n = 0
            try:
                for event in lines:
                    if "item" in event:
                        item = EvalItem.from_dict(event["item"])
                        item.line = qs[n % len(qs)].line  # the line in the caller's file
                        n += 1
                        yield item
                    elif event.get("done") is True:
                        return
                    elif "error" in event:
                        raise error_from_body(event)
            finally:
                lines.close()  # closes the HTTP stream: the server stops measuring

        return items()


def _filters(**filters: Any) -> dict[str, str]:
    """Query parameters for the filters that are set."""
    return {key: str(value) for key, value in filters.items() if value is not None}


def _coll(name: str, action: str | None = None) -> str:
    path = "collections/" + quote(name, safe="")
    return f"{path}/{action}" if action else path


def _search_results(body: dict[str, Any]) -> SearchResults:
    from ..retrieval.search import SearchResult, SearchResults

    results = [SearchResult(r.get("chunk_id", 0), r["text"], r["score"], r["source"],
                            r.get("path") or r["source"], r.get("title") or "",
                            r.get("heading") or "", r.get("start_line"), r.get("end_line"),
                            r.get("cell_index"), r.get("page"), r.get("similarity"))
               for r in body.get("results", [])]
    return SearchResults(body.get("query", ""), body.get("mode", ""), results,
                         bool(body.get("supported")), body.get("top_similarity"),
                         body.get("threshold") or 0.0, body.get("reason"),
                         list(body.get("missing_terms") or []))


def _answer(question: str, body: dict[str, Any], text: str) -> Answer:
    from ..retrieval.answer import Answer
    from ..retrieval.citations import Citation, CitationCheck

    citations = [Citation(**c) for c in body.get("citations", [])]
    check = body.get("citation_check")
    # the shown text: a model's answer that failed the citation check was replaced
    return Answer(question, body.get("answer") or text, citations, bool(body.get("supported")),
                  bool(body.get("retrieval_only")), body.get("model"), body.get("note"),
                  citation_check=CitationCheck(**check) if isinstance(check, dict) else None)


def _queued(event: dict[str, Any]) -> Queued:
    place = event["queued"]
    return Queued(int(place["position"]), float(place["expected_wait_s"]))


def _finish(body: dict[str, Any]) -> Finish:
    usage = body.get("usage") or {}
    return Finish(body.get("finish_reason") or "stop",
                  Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                        (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)),
                  list(body.get("warnings") or []))
