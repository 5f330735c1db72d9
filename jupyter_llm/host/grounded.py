"""Grounded answers on the host: the chat model ``retrieval.answer.ask`` expects, one prepared
``AskRun``, and the JSON shapes of search results and answers shared by every face."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..retrieval.answer import Answer
    from ..retrieval.collection import Collection
    from ..retrieval.search import SearchResults

__all__ = ["AskRun", "HostChat", "search_dict", "answer_dict", "stream_answer"]


def search_dict(results: SearchResults) -> dict[str, Any]:
    """JSON-ready search results, each with its file ``path`` as well as its ``source``."""
    out = results.to_dict()
    for row, r in zip(out["results"], results.results, strict=True):
        row["path"] = r.path
    return out


def answer_dict(answer: Answer, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready answer fields shared by the streamed final line and the one-shot answer."""
    return {"model": answer.model, **(summary or {}), "supported": answer.supported,
            "retrieval_only": answer.retrieval_only, "note": answer.note, "cited": answer.cited,
            "citations": [c.to_dict() for c in answer.citations], "answer": answer.text,
            "citation_check": (answer.citation_check.to_dict()
                               if answer.citation_check is not None else None)}


class HostChat:
    """The chat model ``retrieval.answer.ask`` expects: ``prompt(messages=, stream=)`` on the host."""

    def __init__(self, host: Any, model_id: str, **chat_kwargs: Any) -> None:
        self.host = host
        self.model_id = model_id
        self.chat_kwargs = chat_kwargs
        self.response: Any = None
        self.on_queued: Callable[[Any], None] | None = None  # gets the chat's Queued events
        self._cancelled = threading.Event()
        self._spec: Any = None

    @property
    def spec(self) -> Any:
        """The registry entry of the model (its ``backend`` and ``default_options``)."""
        if self._spec is None:
            try:
                self._spec = self.host.resolve(self.model_id)
            except Exception:  # noqa: BLE001 - unknown here: the chat itself will say why
                return None
        return self._spec

    def prompt(self, *, messages: list[dict[str, Any]], stream: bool = True,
               **options: Any) -> Any:
        """Start the chat on the host and return its streaming ``Response``."""
        if self._cancelled.is_set():
            return iter(())
        self.response = self.host.chat(messages, self.model_id, **self.chat_kwargs, **options)
        self.response.on_queued = self.on_queued
        if self._cancelled.is_set():
            self.response.cancel()
        return self.response

    def cancel(self) -> None:
        """Stop the generation (thread-safe)."""
        self._cancelled.set()
        if self.response is not None:
            self.response.cancel()

    def summary(self) -> dict[str, Any]:
        """``finish_reason``, ``usage`` and ``timings`` of the chat, once it ended."""
        r = self.response
        if r is None:
            return {"finish_reason": None, "usage": None, "timings": None}
        return {"finish_reason": r.finish_reason or "stop",
                "usage": r.usage.to_dict() if r.usage else None, "timings": r.timings}


class AskRun:
    """One prepared grounded answer: the collection is open and the chat model resolved."""

    def __init__(self, display: Callable[[Collection, str], str], coll: Collection,
                 question: str, chat: HostChat | None, note: str | None, k: int, mode: str,
                 source: str | None, options: dict[str, Any],
                 threshold: float | None = None) -> None:
        self.display, self.coll, self.question = display, coll, question
        self.chat, self.note = chat, note
        self.k, self.mode, self.source, self.options = k, mode, source, options
        self.threshold = threshold
        self.answer: Answer | None = None

    def run(self, on_text: Callable[[str], None] | None = None,
            on_queued: Callable[[Any], None] | None = None) -> Answer:
        """Search, then answer with the chat model (or retrieval only); blocking.
        ``on_queued`` gets the chat's ``Queued`` events while it waits for its model."""
        if self.chat is not None:
            self.chat.on_queued = on_queued
        answer = self.coll.ask(self.question, model=self.chat, k=self.k, mode=self.mode,
                               source=self.source, threshold=self.threshold, on_text=on_text,
                               **self.options)
        if self.note and not answer.note:
            answer.note = self.note
        for c in answer.citations:
            c.source = self.display(self.coll, c.source)
        if answer.results is not None:
            for r in answer.results.results:
                r.source = self.display(self.coll, r.source)
        self.answer = answer
        return answer

    def cancel(self) -> None:
        """Stop the chat model's generation, if one runs."""
        if self.chat is not None:
            self.chat.cancel()

    def summary(self) -> dict[str, Any]:
        """``finish_reason``, ``usage``, ``timings`` (chat fields) of the finished answer."""
        answer = self.answer
        if answer is not None and not answer.supported:
            return {"finish_reason": "not_covered", "usage": None, "timings": None}
        if answer is None or answer.retrieval_only or self.chat is None:
            return {"finish_reason": "retrieval_only", "usage": None, "timings": None}
        summary = self.chat.summary()
        check = answer.citation_check
        if check is not None and check.reason == "repetition":
            summary["finish_reason"] = "repetition"
        return summary


def stream_answer(run: AskRun) -> Any:
    """A ``Response`` streaming ``run``'s text; when it ends, ``response.answer`` holds the
    ``Answer`` and ``response.citations`` its citations. Closing it early stops the model."""
    import queue

    from ..errors import Cancelled
    from ..models import Finish, Response, Usage

    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    end = object()
    stop = threading.Event()

    def on_text(text: str) -> None:
        if stop.is_set():
            raise Cancelled("The answer was cancelled.")
        events.put(text)

    def work() -> None:
        try:
            run.run(on_text=on_text, on_queued=events.put)
        except BaseException as e:  # re-raised in the reading thread
            events.put(e)
        finally:
            events.put(end)

    def pieces() -> Any:
        threading.Thread(target=work, daemon=True, name="jupyter-llm-ask").start()
        finished = False
        try:
            while (event := events.get()) is not end:
                if isinstance(event, BaseException):
                    raise event
                yield event
            finished = True
        finally:
            if not finished:
                stop.set()
                run.cancel()
        answer = run.answer
        assert answer is not None
        response.answer = answer
        response.citations = answer.citations
        response.model_id = answer.model or response.model_id
        summary = run.summary()
        usage = summary.get("usage") or {}
        yield Finish(summary.get("finish_reason") or "stop",
                     Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
                     if usage else None)

    response = Response(pieces(), model_id=run.chat.model_id if run.chat else "retrieval")
    return response
