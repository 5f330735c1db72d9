"""The model layer: ``Model`` streams an execution; ``Response`` wraps the stream with text,
usage and timings; ``Conversation`` continues a chat."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import InvalidRequest, hint
from .options import Options, validate_options

if TYPE_CHECKING:
    from .registry import ModelSpec

__all__ = ["Model", "EmbeddingModel", "Backend", "Request", "Finish", "Queued", "Usage",
           "Response", "Conversation", "Message", "replace_hint"]

Message = dict[str, Any]


@dataclass
class Usage:
    """Token counts of one execution."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        """OpenAI-style usage dict (``prompt_tokens_details.cached_tokens`` on a cache hit)."""
        out: dict[str, Any] = {"prompt_tokens": self.prompt_tokens,
                               "completion_tokens": self.completion_tokens,
                               "total_tokens": self.total_tokens}
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out


@dataclass
class Finish:
    """The last event of an execution: why it stopped, the token counts, and warnings for the
    user (``{"type", "message", "details"}``, e.g. turns left out to fit the context)."""

    reason: str = "stop"
    usage: Usage | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Queued:
    """A request waits for its model: its place in line (1 = next) and the expected wait in
    seconds; a stream sends one when the request starts waiting, again when either changes,
    and ``Queued(0, 0.0)`` when its turn comes."""

    position: int
    expected_wait_s: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape every API sends: ``{"position", "expected_wait_s"}``."""
        return asdict(self)

    def describe(self) -> str:
        """A status line for people: ``Waiting: 3rd in line, about 12 s``."""
        n = self.position
        if n <= 0:
            return "Your turn: starting"
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"Waiting: {n}{suffix} in line, about {max(1, round(self.expected_wait_s))} s"


@dataclass
class Request:
    """What to execute: chat ``messages`` or a raw completion ``prompt``, with validated options."""

    messages: list[Message] | None = None
    prompt: str | None = None
    options: Options = field(default_factory=Options)

    @property
    def is_chat(self) -> bool:
        """True for chat requests (messages), False for raw completions."""
        return self.messages is not None

    def prompt_tokens_estimate(self) -> int:
        """About how many tokens the whole prompt has (four characters a token)."""
        if self.prompt is not None:
            chars = len(self.prompt)
        else:
            chars = sum(len(str(m.get("content") or "")) for m in self.messages or [])
        return chars // 4

    def prompt_text(self) -> str:
        """The user-visible prompt: the raw prompt or the last user message."""
        if self.prompt is not None:
            return self.prompt
        for msg in reversed(self.messages or []):
            if msg.get("role") == "user":
                return str(msg.get("content", ""))
        return ""


def check_messages(messages: Any) -> list[Message]:
    """Validate chat messages: a non-empty list of ``{"role", "content"}`` dicts."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest('messages must be a non-empty list of {"role": ..., "content": ...}.')
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest(
                f"messages[{i}] needs a role of system, user or assistant, and a content string.",
                details={"field": f"messages[{i}]"})
        if not isinstance(msg.get("content", ""), str):
            raise InvalidRequest(f"messages[{i}].content must be a string.",
                                 details={"field": f"messages[{i}].content"})
    return messages


def replace_hint(model_id: str, spec: ModelSpec | None, path: Path) -> str:
    """How to replace a bad model file: pull it again for registry models, else name the file."""
    if spec is not None and spec.url and not (spec.model_extra or {}).get("path"):
        return f"delete the model {model_id!r} and pull it again"
    return f"re-create or re-download the file {path}"


class Model(ABC):
    """A model that can run a prompt. Subclasses implement one method, :meth:`execute`."""

    Options: ClassVar[type[Options]] = Options
    backend: ClassVar[str] = "custom"

    def __init__(self, model_id: str, spec: ModelSpec | None = None) -> None:
        self.model_id = model_id
        self.spec = spec

    @abstractmethod
    def execute(self, request: Request) -> Iterator[str | Finish]:
        """Stream the text of one execution, ending with an optional ``Finish`` event."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Return one vector per text; only embedding models implement this."""
        raise InvalidRequest(
            f"Model {self.model_id!r} cannot make embeddings; choose a model tagged EMBEDDING.",
            details={"model": self.model_id, **hint("list_models")})

    def load(self, n_ctx: int | None = None, n_threads: int | None = None) -> Any:  # noqa: B027
        """Load the weights now (models of an ``in_worker`` backend); a no-op by default."""

    @property
    def context_size(self) -> int | None:
        """The context size of the loaded weights (local models); None when unknown."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Free the resources of this model (memory, connections)."""

    def options(self, values: dict[str, Any] | None = None) -> Options:
        """Validate option values for this model, with the registry's defaults under them."""
        defaults = dict(self.spec.default_options) if self.spec else {}
        return validate_options(self.Options, {**defaults, **(values or {})})

    def prompt(self, prompt: str | None = None, *, messages: list[Message] | None = None,
               system: str | None = None, stream: bool = True, **options: Any) -> Response:
        """Run a prompt (chat by default) and return a streaming ``Response``."""
        if messages is None:
            if prompt is None:
                raise InvalidRequest("Give a prompt or messages.")
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}]
        elif system:
            messages = [{"role": "system", "content": system}, *messages]
        request = Request(messages=check_messages(messages), options=self.options(options))
        return self.run(request)

    def complete(self, prompt: str, **options: Any) -> Response:
        """Run a raw completion (no chat template) and return a streaming ``Response``."""
        return self.run(Request(prompt=prompt, options=self.options(options)))

    def run(self, request: Request) -> Response:
        """Execute a prepared request and wrap the stream in a ``Response``."""
        return Response(self.execute(request), model_id=self.model_id, request=request)

    def conversation(self, system: str | None = None) -> Conversation:
        """Start a conversation that keeps the messages between prompts."""
        return Conversation(self, system=system)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_id!r}>"


class EmbeddingModel(ABC):
    """A model that only embeds; plugins register these with ``register_embedding_models``."""

    batch_size: ClassVar[int] = 32

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        """Embed one batch of texts."""

    def embed(self, texts: Iterable[str]) -> list[list[float]]:
        """Embed any number of texts, in batches."""
        texts = list(texts)
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(self.embed_batch(texts[start:start + self.batch_size]))
        return out


class Backend(ABC):
    """Creates models for registry entries whose ``backend`` is this backend's ``name``.

    A backend whose models hold weights in memory sets ``in_worker = True``: the host then
    runs each of its models in a worker process of its own (created there by name, through
    the plugins), under the memory budget and keep-alive, and calls
    ``create(spec, path=..., n_ctx=..., n_threads=...)`` with the model file from its store.
    Other backends (remote APIs) run in the host's process and get ``create(spec)``.
    """

    name: ClassVar[str]
    in_worker: ClassVar[bool] = False
    Options: ClassVar[type[Options]] = Options
    """The options its models accept (a worker's stand-in in the host validates with them)."""

    @abstractmethod
    def create(self, spec: ModelSpec, **load: Any) -> Model:
        """Return a model object for ``spec`` (not yet loaded); see the class docstring."""

    def setup_hint(self, spec: ModelSpec) -> dict[str, Any] | None:
        """What must be set up before ``spec`` can answer (a structured hint such as
        ``{"action": "set_key", "env": ..., "model": ...}``), or None when it is usable."""
        return None


class Response:
    """A streaming result: iterate for text chunks, or call :meth:`text`.

    After the stream ends it holds ``usage``, ``finish_reason`` and ``timings``
    (time to first token, duration, tokens per second). ``citations`` is filled by
    grounded answers.
    """

    def __init__(self, stream: Iterator[str | Finish | Queued], *, model_id: str,
                 request: Request | None = None, request_id: str | None = None) -> None:
        self.model_id = model_id
        self.request = request
        self.request_id = request_id  # the history's key for this request (for feedback)
        self._stream = stream
        self._chunks: list[str] = []
        self._done = False
        self._started = time.perf_counter()
        self._first: float | None = None
        self._ended: float | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.citations: list[Any] = []
        self.answer: Any = None
        """A grounded answer's ``Answer`` once the stream ended (its text is what is shown)."""
        self.warnings: list[dict[str, Any]] = []
        """What every face shows besides the text (``{"type", "message", "details"}``)."""
        self.error: BaseException | None = None
        self.queued: Queued | None = None
        """While the request waits for its model: its latest place in line."""
        self.on_queued: Callable[[Queued], None] | None = None
        """Called with each ``Queued`` event (a face shows "Waiting: 2nd in line")."""
        self._cancelled = threading.Event()
        self._state_lock = threading.Lock()
        self._iterating = False

    def __iter__(self) -> Iterator[str]:
        events = self.events()
        try:
            for event in events:
                if isinstance(event, str):
                    yield event
        finally:
            events.close()

    def events(self) -> Iterator[str | Queued]:
        """The text pieces, and a ``Queued`` event whenever the request's place in line
        changes while it waits for its model (also passed to ``on_queued``)."""
        yield from list(self._chunks)
        with self._state_lock:
            if self._done or self._iterating:
                return
            self._iterating = True
        stoppable = callable(getattr(self._stream, "cancel", None))
        exhausted = False
        try:
            for event in self._stream:
                if isinstance(event, Finish):
                    self.finish_reason = event.reason
                    self.usage = event.usage
                    self.warnings.extend(w for w in event.warnings if w not in self.warnings)
                    continue
                if isinstance(event, Queued):
                    self.queued = event
                    if self.on_queued is not None:
                        self.on_queued(event)
                    if not self._cancelled.is_set():
                        yield event
                    continue
                if self._cancelled.is_set():
                    if stoppable:
                        continue  # the stream stops within a token; wait for its Finish
                    break
                if not event:
                    continue
                if self._first is None:
                    self._first = time.perf_counter()
                    self.queued = None
                self._chunks.append(event)
                yield event
            else:
                exhausted = True
        except BaseException as e:
            if not isinstance(e, GeneratorExit):
                self.error = e
            raise
        finally:
            if not exhausted and self.error is None:
                self._stop_stream(stoppable)  # abandoned or cancelled: free the model
            with self._state_lock:
                self._iterating = False
                self._finish()

    def text(self) -> str:
        """Consume the stream and return the whole text."""
        for _ in self:
            pass
        if self.answer is not None:  # a grounded answer may show other text than it streamed
            return str(self.answer.text)
        return "".join(self._chunks)

    def cancel(self) -> None:
        """Stop the generation early, from any thread; the text so far is kept.

        A stream with its own thread-safe ``cancel()`` (a worker's) stops within about a
        token; any other stream is closed after its next piece (or now, when no thread is
        reading it).
        """
        self._cancelled.set()
        stop = getattr(self._stream, "cancel", None)
        if callable(stop):
            stop()
        with self._state_lock:
            if self._iterating or self._done:
                return  # the reading thread sees the flag after the next event
            self._iterating = True  # nobody may start reading a cancelled stream now
        try:
            self._stop_stream(callable(stop))
        finally:
            with self._state_lock:
                self._iterating = False
                self._finish()

    def _stop_stream(self, stoppable: bool) -> None:
        """Nobody reads the stream any more: stop it (a host stream also finishes its
        bookkeeping, such as the history entry, without a reader)."""
        abandon = getattr(self._stream, "abandon", None)
        if callable(abandon):
            abandon()
            return
        if stoppable:
            self._stream.cancel()  # type: ignore[attr-defined]
            return
        close = getattr(self._stream, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # pragma: no cover - running in another thread right now
                pass

    def _finish(self) -> None:
        """Mark the stream ended (call with ``_state_lock`` held)."""
        if self._done:
            return
        self._done = True
        self._ended = time.perf_counter()
        if self._cancelled.is_set() and self.finish_reason in (None, "stop"):
            self.finish_reason = "cancelled"
        if self.usage is None:
            self.usage = Usage(completion_tokens=len(self._chunks))

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancelled.is_set()

    @property
    def done(self) -> bool:
        """True once the stream has ended."""
        return self._done

    @property
    def timings(self) -> dict[str, float | None]:
        """Time to first token, total duration (seconds) and completion tokens per second."""
        end = self._ended or time.perf_counter()
        ttft = None if self._first is None else self._first - self._started
        duration = end - self._started
        tokens = self.usage.completion_tokens if self.usage else len(self._chunks)
        gen_time = end - (self._first or self._started)
        tps = tokens / gen_time if tokens and gen_time > 0 else None
        return {"time_to_first_token_s": ttft, "duration_s": duration, "tokens_per_s": tps}

    def summary(self) -> dict[str, Any]:
        """``model``, ``finish_reason``, ``usage``, ``timings`` and ``warnings`` (the one
        summary of a generation that every face and API answers with; complete once the
        stream ended)."""
        summary = {"model": self.model_id, "finish_reason": self.finish_reason or "stop",
                   "usage": self.usage.to_dict() if self.usage else None, "timings": self.timings,
                   "warnings": list(self.warnings)}
        if self.request_id is not None:
            summary["request_id"] = self.request_id
        return summary

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready result: the text, the ``summary()`` and the citations."""
        text = self.text()
        return {"text": text, **self.summary(),
                "citations": [c.to_dict() if hasattr(c, "to_dict") else c for c in self.citations]}

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        state = "done" if self._done else "streaming"
        return f"<Response {self.model_id!r} {state} {len(''.join(self._chunks))} chars>"

    def _repr_markdown_(self) -> str:
        text = self.text()
        if self.answer is not None:
            return str(self.answer.to_markdown())
        if self.citations:
            refs = "\n".join(
                f"{i}. {c.to_markdown() if hasattr(c, 'to_markdown') else c}"
                for i, c in enumerate(self.citations, 1))
            text += "\n\n**Sources**\n\n" + refs
        return text


class Conversation:
    """A chat that remembers its messages; each ``prompt`` continues it."""

    def __init__(self, model: Model, system: str | None = None) -> None:
        self.model = model
        self.messages: list[Message] = [{"role": "system", "content": system}] if system else []
        self.responses: list[Response] = []

    def prompt(self, text: str, **options: Any) -> Response:
        """Send a user message with the history so far; the reply joins the history."""
        self.messages.append({"role": "user", "content": text})
        response = self.model.prompt(messages=list(self.messages), **options)
        self.responses.append(response)
        conversation = self

        def recorded() -> Iterator[str | Finish]:
            yield from response
            conversation.messages.append({"role": "assistant", "content": response.text()})
            yield Finish(response.finish_reason or "stop", response.usage, list(response.warnings))

        return Response(recorded(), model_id=response.model_id, request=response.request)

