"""The ``llama_cpp`` backend: local GGUF files through llama-cpp-python (imported lazily).

This module runs a model in the current process. The model host runs it inside a worker
process, so a llama.cpp abort never takes the Jupyter server down.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..errors import (
    Cancelled,
    ContextLengthExceeded,
    InvalidOptions,
    InvalidRequest,
    MissingDependency,
    ModelLoadError,
    ModelNotReady,
    hint,
)
from ..gguf_meta import read_gguf_metadata, trained_context_length
from ..hookspecs import hookimpl
from ..models import Backend, Finish, Message, Model, Request, Usage, replace_hint
from ..options import Options
from .chat_format import (
    BUILTIN_TEMPLATES,
    ChatTemplate,
    choose_template,
    plain_transcript,
    says_chat_tuned,
)

if TYPE_CHECKING:
    from ..registry import ModelSpec

__all__ = ["LlamaCppOptions", "LlamaCppModel", "LlamaCppBackend", "DEFAULT_N_CTX",
           "effective_n_ctx", "schema_grammar"]

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 512
_POOLING = {"none": 0, "mean": 1, "cls": 2, "last": 3, "rank": 4}
_EMBED_BATCH = 64


def effective_n_ctx(requested: int | None, trained: int | None) -> int | None:
    """The context a model really runs with: the request, never beyond the trained length."""
    if requested and trained:
        return min(requested, trained)
    return requested


class LlamaCppOptions(Options):
    """Options for local GGUF models, on top of the common ones."""

    min_p: float | None = Field(None, ge=0.0, le=1.0, description="Minimum token probability relative to the top one.")
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, description="Penalty for tokens already present.")
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, description="Penalty proportional to token frequency.")
    n_threads: int | None = Field(None, ge=1, le=512, description="CPU threads (set at load).")


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as e:
        raise MissingDependency.from_package("llama-cpp-python", "Running local GGUF models", "llama") from e
    return llama_cpp


class LlamaCppModel(Model):
    """A GGUF model run by llama.cpp in this process; loaded on first use."""

    Options = LlamaCppOptions
    backend = "llama_cpp"

    def __init__(self, model_id: str, spec: ModelSpec | None = None, *, path: str | Path,
                 n_ctx: int | None = None, n_threads: int | None = None,
                 embedding: bool | None = None, parallel: int | None = None) -> None:
        super().__init__(model_id, spec)
        self.path = Path(path)
        self.n_ctx = n_ctx or _env_int("JUPYTER_LLM_N_CTX")
        self.n_threads = n_threads or _env_int("JUPYTER_LLM_N_THREADS")
        self.embedding = bool(spec and spec.is_embedding) if embedding is None else embedding
        # sequences decoded together (``llama_batch``); 1: the single-sequence Llama path
        self.parallel = 1 if self.embedding else max(1, parallel or 1)
        self._engine: Any = None  # a BatchEngine when parallel > 1
        self._llama: Any = None
        self._embedder: Any = None  # a chat model asked for embeddings: a second, pooled context
        self._loaded_n_ctx: int | None = None
        self._asked_ctx: int | None = None
        self._trained_ctx: int | None = None
        self._meta: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._formatter: Any = None
        self._template: ChatTemplate | None = None
        self.should_stop: Callable[[], bool] | None = None
        """Set by the worker: True once the running request is cancelled (checked while a
        long input is tokenised and between embedding batches)."""

    @classmethod
    def from_path(cls, path: str | Path, **kwargs: Any) -> LlamaCppModel:
        """A model for a GGUF file that is not in any registry."""
        path = Path(path).expanduser()
        return cls(path.stem, None, path=path, **kwargs)

    # -- loading -------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        """True when the weights are in memory."""
        return self._llama is not None

    def load(self, n_ctx: int | None = None, n_threads: int | None = None) -> Any:
        """Load the weights (again, if ``n_ctx`` or ``n_threads`` changed) and return the Llama.

        The context is the request's ``n_ctx``, else the model's, else the registry's
        ``default_options`` / ``DEFAULT_N_CTX``; never more than the trained length."""
        with self._lock:
            if n_threads:
                self.n_threads = n_threads
            if self._llama is not None and not n_threads and (
                    not n_ctx or effective_n_ctx(n_ctx, self._trained_ctx) == self._asked_ctx):
                return self._llama
            self.close()
            if not self.path.is_file():
                raise ModelNotReady(
                    f"Model {self.model_id!r} is not installed (no file at {self.path}); "
                    "download it first.", details=hint("pull", model=self.model_id))
            meta = read_gguf_metadata(self.path)  # clear errors for empty/truncated/foreign files
            self._meta, self._trained_ctx = meta, trained_context_length(meta)
            want_ctx = effective_n_ctx(n_ctx or self.n_ctx or self._default_n_ctx(),
                                       self._trained_ctx)
            if self.parallel > 1:  # the Llama only tokenizes; the engine's context decodes
                self._llama = self._new_llama(_TOKENIZER_N_CTX, False)
                self._engine = self._new_engine(want_ctx or DEFAULT_N_CTX)
                self._loaded_n_ctx = self._engine.n_ctx
            else:
                self._llama = self._new_llama(want_ctx, self.embedding)
                self._loaded_n_ctx = _ctx_limit(self._llama)
            self._asked_ctx = want_ctx
            self._formatter = self._template = None
            return self._llama

    def _new_engine(self, n_ctx: int) -> Any:
        from .llama_batch import BatchEngine

        llama = self._llama
        try:
            return BatchEngine(llama._model, n_ctx=n_ctx, parallel=self.parallel,
                               n_threads=llama.context_params.n_threads)
        except (ValueError, RuntimeError) as e:
            raise ModelLoadError(
                f"llama.cpp could not create a context of {self.parallel} x {n_ctx} tokens for "
                f"model {self.model_id!r}: {e}. Lower parallel or n_ctx.",
                details={"model": self.model_id}) from e

    def _new_llama(self, n_ctx: int | None, embedding: bool) -> Any:
        llama_cpp = _import_llama_cpp()
        os.environ.setdefault("GGML_NO_BACKTRACE", "1")
        kwargs: dict[str, Any] = {}
        if embedding:  # an embedding input must fit one batch; pool even files that say none
            kwargs = {"n_batch": n_ctx or 512, "n_ubatch": n_ctx or 512,
                      "pooling_type": self._pooling_type()}
        try:
            return llama_cpp.Llama(
                model_path=str(self.path), n_ctx=n_ctx, n_threads=self.n_threads,
                embedding=embedding, verbose=False, seed=0, **kwargs)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(
                f"llama.cpp could not load {self.path.name} for model {self.model_id!r}: {e}. "
                f"The file may be truncated or corrupt; {replace_hint(self.model_id, self.spec, self.path)}.",
                details={"model": self.model_id}) from e

    def _pooling_type(self) -> int:
        """The registry's ``pooling``, else the file's, else mean (a chat GGUF can embed)."""
        wanted = str((self.spec.model_extra or {}).get("pooling") or "") if self.spec else ""
        if wanted.lower() in _POOLING:
            return _POOLING[wanted.lower()]
        arch = self._meta.get("general.architecture")
        found = self._meta.get(f"{arch}.pooling_type")
        return found if isinstance(found, int) and found > 0 else _POOLING["mean"]

    @property
    def context_size(self) -> int | None:
        """The context the loaded model really holds (None before loading)."""
        return self._loaded_n_ctx

    def _default_n_ctx(self) -> int:
        configured = (self.spec.default_options or {}).get("n_ctx") if self.spec else None
        trained = self.spec.context_length if self.spec and self.spec.context_length else None
        base = configured if isinstance(configured, int) and configured > 0 else DEFAULT_N_CTX
        return min(base, trained) if trained else base

    def close(self) -> None:
        """Free the weights and the context."""
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None
            for llama in (self._llama, self._embedder):
                if llama is not None:
                    try:
                        llama.close()
                    except Exception:  # pragma: no cover - best effort
                        pass
            self._llama = self._embedder = None
            self._loaded_n_ctx = None

    # -- prompting -----------------------------------------------------------------------
    @property
    def chat_template(self) -> ChatTemplate:
        """Which chat format this model uses (loads the model; see ``chat_format``)."""
        llama = self.load()
        if self._template is None:
            def single(marker: str) -> bool:
                return len(llama.tokenize(marker.encode("utf-8"), add_bos=False, special=True)) == 1

            meta = self._meta
            self._template = choose_template(
                self.model_id, gguf_template=llama.metadata.get("tokenizer.chat_template"),
                registry_template=self.spec.chat_template if self.spec else None,
                architecture=meta.get("general.architecture"), is_single_token=single,
                chat_tuned=says_chat_tuned(meta.get("general.finetune"), meta.get("general.name"),
                                           self.path.name))
            if self._template.warning:
                log.warning("%s", self._template.warning)
        return self._template

    @property
    def chat_template_info(self) -> dict[str, Any] | None:
        """``chat_template`` as a dict (source, name, architecture, warning) for ``ps``; None
        for embedding models."""
        return None if self.embedding else self.chat_template.to_dict()

    def format_chat(self, messages: list[Message]) -> tuple[str, list[str]]:
        """Render messages as the prompt text (BOS included) and the stop strings, with the
        GGUF's template, the registry's, a llama.cpp built-in, or a plain transcript."""
        llama = self.load()
        template = self.chat_template
        bos = self._bos_text(llama)
        if not template.applies:
            prompt, stops = plain_transcript(messages)
            return bos + prompt, stops
        if template.name is not None:  # a llama.cpp built-in
            return bos + _apply_builtin(template.name, messages), list(
                BUILTIN_TEMPLATES[template.name][1])
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            source = (llama.metadata.get("tokenizer.chat_template") if template.source == "gguf"
                      else self.spec.chat_template if self.spec else None)
            vocab = llama._model
            eos_id = llama.token_eos()
            eos = vocab.token_get_text(eos_id) if eos_id >= 0 else ""
            self._formatter = Jinja2ChatFormatter(template=source or "", eos_token=eos,
                                                  bos_token=self._bos_text(llama, always=True),
                                                  stop_token_ids=[eos_id] if eos_id >= 0 else None)
        try:
            result = self._formatter(messages=messages)
        except Exception as e:  # jinja2 errors, and raise_exception() in the template
            raise InvalidRequest(
                f"The chat template of model {self.model_id!r} refused these messages: {e}. "
                "Some templates allow no system message, or need user and assistant turns to "
                "alternate.", details={"model": self.model_id}) from None
        stops = result.stop if isinstance(result.stop, list) else ([result.stop] if result.stop else [])
        return result.prompt, [s for s in stops if s]

    @staticmethod
    def _bos_text(llama: Any, *, always: bool = False) -> str:
        """The BOS token's text when the vocabulary adds one (or ``always``), else ''."""
        bos_id = llama.token_bos()
        if bos_id < 0 or not (always or llama._model.add_bos_token()):
            return ""
        return llama._model.token_get_text(bos_id)

    def prepare_chat(self, request: Request) -> tuple[list[int], list[str], list[dict[str, Any]]]:
        """Prompt tokens and stops of a chat request, fitted to the context: with the
        ``trim_history`` option the oldest turns are dropped (and a warning says so)."""
        llama = self.load()
        messages = list(request.messages or [])
        opts = request.options
        n_ctx = self._ctx_tokens()
        reserve = min(opts.max_tokens or DEFAULT_MAX_TOKENS, max(1, n_ctx // 4))
        dropped = 0
        while True:
            prompt, stops = self.format_chat(messages)
            try:
                tokens = self._tokenize_within(llama, prompt, n_ctx, add_bos=False,
                                               special=True)
            except ContextLengthExceeded:
                if not opts.trim_history:
                    raise
                tokens = None
            if tokens is not None and (not opts.trim_history or len(tokens) + reserve <= n_ctx):
                break
            first = next((i for i, m in enumerate(messages) if m.get("role") != "system"), None)
            if first is None or first >= len(messages) - 1:
                if tokens is None:  # only the last message is left, and it alone is too long
                    tokens = self._tokenize_within(llama, prompt, n_ctx, add_bos=False,
                                                   special=True)
                break  # only the last message is left: it cannot fit
            end = first + 1  # drop one turn: a user message with the answer that followed it
            while end < len(messages) - 1 and messages[end].get("role") == "assistant":
                end += 1
            dropped += end - first
            del messages[first:end]
        warnings = []
        if dropped:
            warnings.append({"type": "context_trimmed", "message": (
                f"The conversation did not fit the context window of {self.model_id} "
                f"({n_ctx} tokens): the oldest {dropped} message(s) were left out."),
                "details": {"dropped_messages": dropped, "n_ctx": n_ctx,
                            "model": self.model_id}})
        return tokens, stops, warnings

    def _ctx_tokens(self, llama: Any = None) -> int:
        """Tokens one sequence may hold: a batch slot's context, or the Llama's."""
        if llama is None and self._engine is not None:
            return self._engine.n_ctx
        return _ctx_limit(llama or self._llama)

    def _stop_point(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("The request was cancelled.")

    def _tokenize_within(self, llama: Any, text: str, limit: int, *, add_bos: bool,
                         special: bool) -> list[int]:
        """The tokens of ``text``; ContextLengthExceeded once it surely takes ``limit`` or more.

        A text longer than ``limit`` bytes is first counted in pieces of about ``2 * limit``
        bytes (1–64 KB, cut before a space), so a huge input is refused, or cancelled, after
        about ``limit`` tokens of work instead of after tokenising all of it.
        """
        data = text.encode("utf-8")
        if len(data) + 2 > limit:
            counted = pieces = 0
            for piece in _pieces(data, min(max(2 * limit, 1024), 65536)):
                self._stop_point()
                counted += len(llama.tokenize(piece, add_bos=False, special=special))
                pieces += 1
                if counted - pieces >= limit:  # a cut can add at most one token per piece
                    raise ContextLengthExceeded.from_counts(
                        self.model_id, counted - pieces, limit, trained=self._trained_ctx,
                        at_least=True)
        self._stop_point()
        return llama.tokenize(data, add_bos=add_bos, special=special)

    def _check_fits(self, n_tokens: int, llama: Any = None) -> None:
        limit = self._ctx_tokens(llama)
        if n_tokens >= limit:
            raise ContextLengthExceeded.from_counts(self.model_id, n_tokens, limit,
                                                    trained=self._trained_ctx)

    def _prompt_tokens(self, request: Request) -> tuple[list[int], list[str], list[dict[str, Any]]]:
        """The prompt's tokens, the template's stop strings and warnings (checked to fit)."""
        llama = self._llama
        warnings: list[dict[str, Any]] = []
        if request.is_chat:
            tokens, stops, warnings = self.prepare_chat(request)
        else:
            stops = []
            tokens = self._tokenize_within(llama, request.prompt or "", self._ctx_tokens(),
                                           add_bos=True, special=True)
        self._check_fits(len(tokens))
        return tokens, stops, warnings

    def execute(self, request: Request) -> Iterator[str | Finish]:
        """Stream tokens from llama.cpp; one text piece per generated token."""
        opts = request.options
        with self._lock:
            llama = self.load(opts.n_ctx, getattr(opts, "n_threads", None))
            if self._engine is not None:
                yield from self._execute_batched(request)
                return
            tokens, stops, warnings = self._prompt_tokens(request)
            kwargs = self._completion_kwargs(opts, stops, llama)
            kwargs["max_tokens"] = min(kwargs["max_tokens"], _ctx_limit(llama) - len(tokens))
            if opts.temperature == 0 or opts.seed is not None:
                # A reused prompt prefix is evaluated in other batch sizes, which shifts the
                # logits slightly: a reproducible request starts from an empty context.
                llama.reset()
            count = 0
            reason = "stop"
            for chunk in llama.create_completion(prompt=tokens, stream=True, **kwargs):
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if text:
                    count += 1
                    yield text
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
            yield Finish(reason, Usage(prompt_tokens=len(tokens), completion_tokens=count),
                         warnings=warnings)

    # -- batched generation (parallel > 1) ----------------------------------------------
    def needs_reload(self, request: Request) -> bool:
        """True when ``request`` asks for another context size or thread count than loaded."""
        opts = request.options
        n_threads = getattr(opts, "n_threads", None)
        return self._llama is None or bool(n_threads and n_threads != self.n_threads) or bool(
            opts.n_ctx and effective_n_ctx(opts.n_ctx, self._trained_ctx) != self._asked_ctx)

    def submit(self, rid: Any, request: Request) -> bool:
        """Start ``request`` in the batch (see ``BatchEngine``); False when it needs a reload
        (another ``n_ctx``/``n_threads``) while other sequences run: submit it again later."""
        opts = request.options
        with self._lock:
            if self.needs_reload(request):
                if self._engine is not None and self._engine.active:
                    return False
                self.load(opts.n_ctx, getattr(opts, "n_threads", None))
            tokens, stops, warnings = self._prompt_tokens(request)
            kwargs = self._completion_kwargs(opts, stops, self._llama)
            self._engine.submit(
                rid, tokens, max_tokens=max(1, min(kwargs.pop("max_tokens"),
                                                   self._engine.n_ctx - len(tokens))),
                stops=kwargs.pop("stop") or [], params=_sampling_params(kwargs),
                warnings=warnings)
            return True

    def step(self) -> list[tuple[Any, str | Finish]]:
        """One decode of the batch: the text pieces and finishes, per request id."""
        with self._lock:
            return self._engine.step()

    def cancel(self, rid: Any) -> None:
        """Stop a batched request at the next step."""
        with self._lock:
            if self._engine is not None:
                self._engine.cancel(rid)

    def reset_batch(self) -> list[Any]:
        """Drop every running sequence (after a failed decode); their ids."""
        with self._lock:
            if self._engine is None:
                return []
            ids = self._engine.running_ids()
            self._engine.close()
            self._engine = self._new_engine(self._loaded_n_ctx or DEFAULT_N_CTX)
            return ids

    @property
    def batching(self) -> bool:
        """True when requests run batched (``submit``/``step``) rather than ``execute``."""
        return self.parallel > 1 and not self.embedding

    @property
    def free_slots(self) -> int:
        """Slots a new request can take now."""
        return self._engine.free_slots if self._engine is not None else (0 if self._llama else 1)

    @property
    def active(self) -> bool:
        """True while batched sequences run."""
        return self._engine is not None and self._engine.active

    def batch_stats(self) -> dict[str, Any] | None:
        """Slots and prefix-cache counters (None on the single-sequence path)."""
        return self._engine.stats() if self._engine is not None else None

    def _execute_batched(self, request: Request) -> Iterator[str | Finish]:
        """``execute`` through the engine, in this process (the lock is held)."""
        rid = object()
        self.submit(rid, request)
        done = False
        try:
            while not done:
                for owner, event in self._engine.step():
                    if owner is rid:
                        done = done or isinstance(event, Finish)
                        yield event
        finally:
            if not done:
                self._engine.cancel(rid)
                self._engine.step()

    def _completion_kwargs(self, opts: Options, stops: list[str], llama: Any) -> dict[str, Any]:
        values = opts.set_options()
        kwargs: dict[str, Any] = {
            "max_tokens": values.get("max_tokens", DEFAULT_MAX_TOKENS),
            "stop": stops + list(values.get("stop", [])) or None,
        }
        for key in ("temperature", "top_p", "top_k", "seed", "repeat_penalty", "min_p",
                    "presence_penalty", "frequency_penalty"):
            if key in values:
                kwargs[key] = values[key]
        grammar = values.get("grammar")
        if values.get("json_schema") is not None and not grammar:
            grammar = schema_grammar(values["json_schema"])
        if opts.json_mode and not grammar:
            from llama_cpp.llama_grammar import JSON_GBNF

            grammar = JSON_GBNF
        if grammar:
            kwargs["grammar"] = _compile_grammar(grammar, llama)
        return kwargs

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Return one L2-normalised vector per text (pooled as the registry or file says, else
        mean-pooled, so a chat GGUF can embed too)."""
        return self.embed_with_usage(texts)[0]

    def embed_with_usage(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """The vectors and how many tokens the texts took."""
        with self._lock:
            llama = self.load()
            if not texts:
                return [], 0
            embedder = llama if self.embedding else self._chat_embedder()
            limit = self._ctx_tokens(embedder)
            counts = [len(self._tokenize_within(embedder, t, limit, add_bos=True, special=False))
                      for t in texts]
            for count in counts:
                self._check_fits(count, embedder)
            vectors: list[list[float]] = []
            for start in range(0, len(texts), _EMBED_BATCH):  # a cancel stops between batches
                self._stop_point()
                batch = embedder.embed(list(texts[start:start + _EMBED_BATCH]), normalize=True)
                vectors.extend(list(map(float, v)) for v in batch)
            return vectors, sum(counts)

    def _chat_embedder(self) -> Any:
        """A second context of a chat model made for embeddings (mean-pooled by default)."""
        if self._embedder is None:
            self._embedder = self._new_llama(min(self._loaded_n_ctx or 512, 2048), True)
        return self._embedder

    def token_count(self, text: str) -> int:
        """How many tokens ``text`` takes for this model."""
        with self._lock:
            return len(self.load().tokenize(text.encode("utf-8"), add_bos=False, special=True))


_TOKENIZER_N_CTX = 256  # the Llama of a batched model only tokenizes


def _sampling_params(kwargs: dict[str, Any]) -> Any:
    """``create_completion`` keyword arguments as the engine's ``SamplingParams``."""
    from .llama_batch import SamplingParams

    return SamplingParams(**{k: v for k, v in kwargs.items() if v is not None})


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of about ``size`` bytes, each cut before a space or newline when one
    is near (never inside a UTF-8 character)."""
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        if end < len(data):
            cut = max(data.rfind(b" ", start + 1, end), data.rfind(b"\n", start + 1, end))
            if cut > start:
                end = cut
            else:
                while end > start + 1 and 0x80 <= data[end] < 0xC0:
                    end -= 1
        yield data[start:end]
        start = end


def _ctx_limit(llama: Any) -> int:
    """Tokens a context holds: llama.cpp may round n_ctx up, llama-cpp-python's buffers not."""
    return min(llama.n_ctx(), len(llama.input_ids))


def schema_grammar(schema: Any) -> str:
    """A GBNF grammar (llama.cpp's converter) for a JSON schema; InvalidOptions if it cannot."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    if not isinstance(schema, dict):
        raise InvalidOptions("json_schema: must be a JSON schema object.",
                             details={"fields": [{"field": "json_schema", "message": "not an object"}]})
    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except Exception as e:  # noqa: BLE001 - the converter raises plain exceptions
        raise InvalidOptions(
            f"json_schema: llama.cpp cannot turn this schema into a grammar ({e}). Simplify it "
            "(plain objects, arrays, strings, numbers, enums and $defs work).",
            details={"fields": [{"field": "json_schema", "message": str(e)}]}) from None


def _apply_builtin(name: str, messages: list[Message]) -> str:
    """Render messages with a llama.cpp built-in template (``llama_chat_apply_template``)."""
    import ctypes

    import llama_cpp

    items = [llama_cpp.llama_chat_message(role=str(m.get("role") or "user").encode("utf-8"),
                                          content=str(m.get("content") or "").encode("utf-8"))
             for m in messages]
    chat = (llama_cpp.llama_chat_message * len(items))(*items)
    size = 256 + sum(len(m.content) + 64 for m in items)
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_chat_apply_template(name.encode(), chat, len(items), True, buf, size)
        if n < 0:
            raise InvalidRequest(f"llama.cpp's {name!r} chat template cannot render these "
                                 "messages.", details={"template": name})
        if n <= size:
            return buf.raw[:n].decode("utf-8", errors="replace")
        size = n + 1
    raise InvalidRequest(f"llama.cpp's {name!r} chat template failed.")  # pragma: no cover


def _compile_grammar(grammar: str, llama: Any) -> Any:
    """Check a GBNF grammar with llama.cpp's own parser (an invalid one would crash the
    sampler), then wrap it for ``create_completion``."""
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    root = b"root"
    sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, grammar.encode("utf-8"), root)
    if not sampler:
        raise InvalidOptions(
            "grammar: not a valid GBNF grammar (it needs a `root ::= ...` rule; see "
            "llama.cpp's grammars/README.md).",
            details={"fields": [{"field": "grammar", "message": "invalid GBNF grammar"}]})
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(grammar, verbose=False)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


class LlamaCppBackend(Backend):
    """Creates ``LlamaCppModel`` objects; the host runs each in a worker process."""

    name = "llama_cpp"
    in_worker = True
    Options = LlamaCppOptions

    batching = True  # create() takes ``parallel``

    def create(self, spec: ModelSpec, *, path: str | Path,  # type: ignore[override]
               n_ctx: int | None = None, n_threads: int | None = None,
               parallel: int | None = None) -> LlamaCppModel:
        """A model reading the GGUF file at ``path`` (the host passes the one in its store)."""
        return LlamaCppModel(spec.id, spec, path=path, n_ctx=n_ctx, n_threads=n_threads,
                             parallel=parallel)


@hookimpl
def register_models(register: Any) -> None:
    """Register the llama.cpp backend."""
    register(LlamaCppBackend())
