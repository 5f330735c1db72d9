"""The ``llama_cpp`` backend: local GGUF files through llama-cpp-python (imported lazily).

This module runs a model in the current process. The model host runs it inside a worker
process, so a llama.cpp abort never takes the Jupyter server down.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..errors import InvalidOptions, MissingDependency, ModelLoadError, ModelNotReady
from ..gguf_meta import read_gguf_metadata, trained_context_length
from ..hookspecs import hookimpl
from ..models import Backend, Finish, Message, Model, Request, Usage, replace_hint
from ..options import Options

if TYPE_CHECKING:
    from ..registry import ModelSpec

__all__ = ["LlamaCppOptions", "LlamaCppModel", "LlamaCppBackend", "DEFAULT_N_CTX"]

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 4096
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


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
                 embedding: bool | None = None) -> None:
        super().__init__(model_id, spec)
        self.path = Path(path)
        self.n_ctx = n_ctx or _env_int("JUPYTER_LLM_N_CTX")
        self.n_threads = n_threads or _env_int("JUPYTER_LLM_N_THREADS")
        self.embedding = bool(spec and spec.is_embedding) if embedding is None else embedding
        self._llama: Any = None
        self._loaded_n_ctx: int | None = None
        self._lock = threading.RLock()
        self._formatter: Any = None

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
        """Load the weights (again, if ``n_ctx`` or ``n_threads`` changed) and return the Llama."""
        with self._lock:
            want_ctx = n_ctx or self.n_ctx or self._default_n_ctx()
            if n_threads:
                self.n_threads = n_threads
            if self._llama is not None and not n_threads and (
                    want_ctx == self._loaded_n_ctx or not (n_ctx or self.n_ctx)):
                return self._llama
            self.close()
            if not self.path.is_file():
                raise ModelNotReady(
                    f"Model {self.model_id!r} is not installed (no file at {self.path}). "
                    f"Run `jupyter llm pull {self.model_id}`.", details={"model": self.model_id})
            meta = read_gguf_metadata(self.path)  # clear errors for empty/truncated/foreign files
            trained = trained_context_length(meta)
            if trained and not (n_ctx or self.n_ctx):
                want_ctx = min(want_ctx, trained)  # never exceed what the model was trained on
            llama_cpp = _import_llama_cpp()
            os.environ.setdefault("GGML_NO_BACKTRACE", "1")
            try:
                self._llama = llama_cpp.Llama(
                    model_path=str(self.path), n_ctx=want_ctx, n_threads=self.n_threads,
                    embedding=self.embedding, verbose=False, seed=0)
            except (ValueError, RuntimeError, OSError) as e:
                raise ModelLoadError(
                    f"llama.cpp could not load {self.path.name} for model {self.model_id!r}: {e}. "
                    f"The file may be truncated or corrupt; {replace_hint(self.model_id, self.spec, self.path)}.",
                    details={"model": self.model_id}) from e
            self._loaded_n_ctx = want_ctx
            self._formatter = None
            return self._llama

    @property
    def context_size(self) -> int | None:
        """The context size llama.cpp allocated (None before loading)."""
        llama = self._llama
        return llama.n_ctx() if llama is not None else None

    def _default_n_ctx(self) -> int:
        trained = self.spec.context_length if self.spec and self.spec.context_length else None
        return min(DEFAULT_N_CTX, trained) if trained else DEFAULT_N_CTX

    def close(self) -> None:
        """Free the weights and the context."""
        with self._lock:
            if self._llama is not None:
                try:
                    self._llama.close()
                except Exception:  # pragma: no cover - best effort
                    pass
                self._llama = None
                self._loaded_n_ctx = None

    # -- prompting -----------------------------------------------------------------------
    def format_chat(self, messages: list[Message]) -> tuple[str, list[str]]:
        """Render messages with the GGUF's chat template (or the registry's, or ChatML)."""
        llama = self.load()
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            meta = llama.metadata
            template = (self.spec.chat_template if self.spec and self.spec.chat_template else None)
            template = template or meta.get("tokenizer.chat_template") or CHATML_TEMPLATE
            vocab = llama._model
            eos_id, bos_id = llama.token_eos(), llama.token_bos()
            eos = vocab.token_get_text(eos_id) if eos_id >= 0 else ""
            bos = vocab.token_get_text(bos_id) if bos_id >= 0 else ""
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                                  stop_token_ids=[eos_id] if eos_id >= 0 else None)
        result = self._formatter(messages=messages)
        stops = result.stop if isinstance(result.stop, list) else ([result.stop] if result.stop else [])
        return result.prompt, [s for s in stops if s]

    def execute(self, request: Request) -> Iterator[str | Finish]:
        """Stream tokens from llama.cpp; one text piece per generated token."""
        opts = request.options
        with self._lock:
            llama = self.load(opts.n_ctx, getattr(opts, "n_threads", None))
            if request.is_chat:
                prompt, stops = self.format_chat(request.messages or [])
                tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            else:
                stops = []
                tokens = llama.tokenize((request.prompt or "").encode("utf-8"), add_bos=True,
                                        special=True)
            kwargs = self._completion_kwargs(opts, stops, llama)
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
            yield Finish(reason, Usage(prompt_tokens=len(tokens), completion_tokens=count))

    def _completion_kwargs(self, opts: Options, stops: list[str], llama: Any) -> dict[str, Any]:
        values = opts.set_options()
        kwargs: dict[str, Any] = {
            "max_tokens": values.get("max_tokens", 512),
            "stop": stops + list(values.get("stop", [])) or None,
        }
        for key in ("temperature", "top_p", "top_k", "seed", "repeat_penalty", "min_p",
                    "presence_penalty", "frequency_penalty"):
            if key in values:
                kwargs[key] = values[key]
        grammar = values.get("grammar")
        if opts.json_mode and not grammar:
            from llama_cpp.llama_grammar import JSON_GBNF

            grammar = JSON_GBNF
        if grammar:
            kwargs["grammar"] = _compile_grammar(grammar, llama)
        return kwargs

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Return one L2-normalised vector per text (models with pooling, e.g. MEAN)."""
        if not self.embedding:
            return super().embed(texts)
        with self._lock:
            llama = self.load()
            if not texts:
                return []
            vectors = llama.embed(list(texts), normalize=True)
            return [list(map(float, v)) for v in vectors]

    def token_count(self, text: str) -> int:
        """How many tokens ``text`` takes for this model."""
        with self._lock:
            return len(self.load().tokenize(text.encode("utf-8"), add_bos=False, special=True))


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

    def create(self, spec: ModelSpec, *, path: str | Path,  # type: ignore[override]
               n_ctx: int | None = None, n_threads: int | None = None) -> LlamaCppModel:
        """A model reading the GGUF file at ``path`` (the host passes the one in its store)."""
        return LlamaCppModel(spec.id, spec, path=path, n_ctx=n_ctx, n_threads=n_threads)


@hookimpl
def register_models(register: Any) -> None:
    """Register the llama.cpp backend."""
    register(LlamaCppBackend())
