"""The model registry: ``ModelSpec`` entries from JSON files, lookup by id or alias, and
selection by capability tags with Pantry's fallback modes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import paths
from .confine import escape_id, safe_file_name
from .errors import ModelNotReady, RegistryError, UnknownModel, hint
from .redact import add_secret_env, add_url_credentials, strip_userinfo

__all__ = ["ModelSpec", "Registry", "RegistryProblem", "FallbackMode", "KNOWN_TAGS", "select_model"]

log = logging.getLogger(__name__)

KNOWN_TAGS = (
    "CONVERSATIONAL", "INSTRUCT", "EMBEDDING", "CODE", "MULTILINGUAL",
    "2024_BASIC", "2024_MED", "2024_ADV",
)

FallbackMode = Literal["none", "requirements", "requirements_load", "load"]
FALLBACK_MODES: tuple[str, ...] = ("none", "requirements", "requirements_load", "load")


class ModelSpec(BaseModel):
    """One registry entry. Unknown extra fields are kept, so registries can carry more."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    name: str = ""
    backend: str = Field(min_length=1, description="llama_cpp, openai, or a plugin's backend")
    tags: list[str] = Field(default_factory=list)
    url: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    size_bytes: int | None = Field(default=None, ge=0)
    context_length: int | None = Field(default=None, ge=0)
    license: str | None = None
    description: str = ""
    family: str | None = None
    aliases: list[str] = Field(default_factory=list)
    filename: str | None = None
    quantization: str | None = None
    chat_template: str | None = None
    default_options: dict[str, Any] = Field(default_factory=dict)
    ram_bytes: int | None = Field(default=None, ge=0)
    embedding_dimensions: int | None = Field(default=None, ge=1)
    # remote (openai backend) fields
    api_base: str | None = None
    api_model: str | None = None
    api_key_env: str | None = None
    # where the entry came from (set by the loader)
    source: str | None = None

    @field_validator("filename")
    @classmethod
    def _plain_filename(cls, name: str | None) -> str | None:
        if name is not None and not safe_file_name(name):
            raise ValueError(f"{name!r} is not a plain file name (no folders, '..', leading '.' "
                             "or control characters)")
        return name

    @field_validator("tags")
    @classmethod
    def _upper_tags(cls, tags: list[str]) -> list[str]:
        return [t.strip().upper() for t in tags if t.strip()]

    @property
    def is_remote(self) -> bool:
        """True when the model runs behind an API and has no local file."""
        return self.url is None and self.backend != "llama_cpp"

    @property
    def is_embedding(self) -> bool:
        """True for models tagged EMBEDDING."""
        return "EMBEDDING" in self.tags

    @property
    def file_name(self) -> str:
        """The name of the installed file: ``filename`` or the last part of ``url``."""
        if self.filename:
            return self.filename
        if self.url:
            name = self.url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            if safe_file_name(name):
                return name
        return f"{escape_id(self.id)}.gguf"

    def download_url(self) -> str | None:
        """The URL to fetch, with Hugging Face URLs rewritten to ``$HF_ENDPOINT`` when set."""
        if not self.url:
            return None
        endpoint = os.environ.get("HF_ENDPOINT")
        if endpoint and self.url.startswith("https://huggingface.co/"):
            return endpoint.rstrip("/") + self.url[len("https://huggingface.co"):]
        return self.url

    def remote_configured(self) -> bool:
        """True for a remote model whose API key variable is set in the environment."""
        return bool(self.is_remote and self.api_key_env and os.environ.get(self.api_key_env))

    def origin(self) -> dict[str, Any]:
        """``own``: whether the entry comes from the user's registry rather than the built-in
        one (faces list those first)."""
        builtin = paths.builtin_registry_dir().resolve()
        return {"own": bool(self.source)
                and not Path(str(self.source)).resolve().is_relative_to(builtin)}

    def has_tags(self, required: Iterable[str]) -> bool:
        """True when the model carries every tag in ``required``."""
        return set(t.upper() for t in required) <= set(self.tags)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the entry (without internal fields; ``api_base`` without
        credentials)."""
        data = self.model_dump(exclude_none=True)
        if data.get("api_base"):
            data["api_base"] = strip_userinfo(data["api_base"])
        return data


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    models: list[dict[str, Any]]


@dataclass
class RegistryProblem:
    """A malformed registry file or entry, reported while every other entry still loads."""

    path: str
    entry: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}" + (f" (entry {self.entry})" if self.entry else "")
        return f"{where}: {self.message}"


@dataclass
class Registry:
    """All known models, from the built-in registry plus user registries."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    problems: list[RegistryProblem] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def default_paths(cls) -> list[Path]:
        """Built-in registry, then the data directory's ``registries/``, then
        ``$JUPYTER_LLM_REGISTRY_PATH``; later entries override earlier ones with the same id."""
        found = [paths.builtin_registry_dir(), paths.registries_dir()]
        extra = os.environ.get("JUPYTER_LLM_REGISTRY_PATH", "")
        found += [Path(p).expanduser() for p in extra.split(os.pathsep) if p.strip()]
        return found

    @classmethod
    def load(cls, sources: Sequence[str | Path] | None = None) -> Registry:
        """Load registries from files or folders (``*.json``); problems are collected, not raised."""
        registry = cls()
        optional = {paths.registries_dir()} if sources is None else set()
        for src in cls.default_paths() if sources is None else [Path(s) for s in sources]:
            if src.is_dir():
                for file in sorted(src.glob("*.json")):
                    registry.add_file(file)
            elif src.is_file():
                registry.add_file(src)
            elif src not in optional:
                registry.problems.append(RegistryProblem(str(src), None, "no such file or folder"))
        for problem in registry.problems:
            log.warning("Registry problem: %s (fix or remove it; every other entry still loads)",
                        problem)
        return registry

    def add_file(self, path: Path) -> None:
        """Add every valid entry of one registry file, recording problems for the rest."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            self.problems.append(RegistryProblem(str(path), None, f"cannot read: {e}"))
            return
        except json.JSONDecodeError as e:
            self.problems.append(RegistryProblem(
                str(path), None, f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"))
            return
        try:
            doc = _RegistryFile.model_validate(data)
        except ValidationError:
            self.problems.append(RegistryProblem(
                str(path), None, 'expected an object {"models": [ ... ]}'))
            return
        for index, entry in enumerate(doc.models):
            label = str(entry.get("id") or f"#{index}") if isinstance(entry, dict) else f"#{index}"
            try:
                spec = ModelSpec.model_validate({**entry, "source": str(path)})
            except ValidationError as e:
                detail = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
                self.problems.append(RegistryProblem(str(path), label, detail))
                continue
            unknown = [t for t in spec.tags if t not in KNOWN_TAGS]
            if unknown:
                self.problems.append(RegistryProblem(
                    str(path), label, f"unknown tags {unknown} (known: {', '.join(KNOWN_TAGS)}); "
                    "the entry is loaded, but selection by these tags is probably a typo"))
            self.add(spec)

    def add(self, spec: ModelSpec) -> None:
        """Add or replace one entry (and its aliases; a replaced entry's aliases go)."""
        old = self.models.get(spec.id)
        if old is not None:
            for alias in old.aliases:
                if self.aliases.get(alias) == spec.id:
                    del self.aliases[alias]
        self.models[spec.id] = spec
        add_secret_env(spec.api_key_env)
        add_url_credentials(spec.api_base)
        for alias in spec.aliases:
            self.aliases[alias] = spec.id

    def get(self, model_id: str) -> ModelSpec:
        """Return the entry with this id or alias, or raise ``UnknownModel`` with suggestions."""
        if model_id in self.models:
            return self.models[model_id]
        if model_id in self.aliases:
            return self.models[self.aliases[model_id]]
        lowered = {k.lower(): k for k in self.models}
        if model_id.lower() in lowered:
            return self.models[lowered[model_id.lower()]]
        raise UnknownModel.from_id(model_id, list(self.models) + list(self.aliases))

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and (model_id in self.models or model_id in self.aliases)

    def __iter__(self):
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def with_tags(self, tags: Iterable[str]) -> list[ModelSpec]:
        """Every entry that carries all ``tags``."""
        tags = list(tags)
        return [m for m in self.models.values() if m.has_tags(tags)]

    def select(self, *, preferred: str | None = None, tags: Iterable[str] = (),
               fallback_mode: str = "requirements_load", installed: Iterable[str] = (),
               loaded: Iterable[str] = ()) -> ModelSpec:
        """Choose a model by preference and capability; see :func:`select_model`."""
        return select_model(self, preferred=preferred, tags=tags, fallback_mode=fallback_mode,
                            installed=installed, loaded=loaded)


def parse_model_query(query: str) -> tuple[str | None, list[str]]:
    """Split ``"tags:CONVERSATIONAL,2024_MED"`` into ``(None, tags)``; a plain id gives ``(id, [])``."""
    if query.startswith("tags:"):
        return None, [t.strip().upper() for t in query[5:].split(",") if t.strip()]
    return query, []


def select_model(registry: Registry, *, preferred: str | None = None, tags: Iterable[str] = (),
                 fallback_mode: str = "requirements_load", installed: Iterable[str] = (),
                 loaded: Iterable[str] = ()) -> ModelSpec:
    """Choose a model with Pantry's fallback modes.

    - ``none``: only the preferred model, and it must be loaded.
    - ``requirements``: the preferred model if loaded, else any *loaded* model with ``tags``.
    - ``requirements_load``: as ``requirements``, else any *installed* model with ``tags``
      (the caller loads it).
    - ``load``: the preferred model if installed (the caller loads it), else as
      ``requirements_load``.

    Local models come before remote ones; among those, registry order expresses preference.
    A remote model counts as installed and loaded only when its ``api_key_env`` variable is
    set, so automatic selection never picks an API the user cannot call (name it explicitly
    to use a keyless server such as Ollama).
    """
    if fallback_mode not in FALLBACK_MODES:
        raise RegistryError(
            f"Unknown fallback_mode {fallback_mode!r}; use one of {', '.join(FALLBACK_MODES)}.",
            details={"field": "fallback_mode", "allowed": list(FALLBACK_MODES)})
    tags = [t.upper() for t in tags]
    installed_ids = set(installed)
    loaded_ids = set(loaded)

    def is_loaded(m: ModelSpec) -> bool:
        return m.id in loaded_ids or (m.is_remote and m.remote_configured())

    def is_installed(m: ModelSpec) -> bool:
        return is_loaded(m) or m.id in installed_ids

    def local_first(specs: list[ModelSpec]) -> list[ModelSpec]:
        return sorted(specs, key=lambda m: m.is_remote)  # stable: registry order within each

    pref = registry.get(preferred) if preferred else None
    if pref is not None and is_loaded(pref):
        return pref
    if fallback_mode == "none":
        if pref is None:
            raise RegistryError("fallback_mode 'none' needs a preferred_model.",
                                details={"field": "preferred_model"})
        raise ModelNotReady(
            f"Model {pref.id!r} is not loaded and fallback_mode is 'none'. Load it first "
            "or use fallback_mode 'load'.", details=hint("load", model=pref.id))
    if fallback_mode == "load" and pref is not None and is_installed(pref):
        return pref
    candidates = local_first(registry.with_tags(tags) if tags else ([] if pref else list(registry)))
    for m in candidates:
        if is_loaded(m):
            return m
    if fallback_mode in ("requirements_load", "load"):
        for m in candidates:
            if is_installed(m):
                return m
    wanted = f"tags {', '.join(tags)}" if tags else (f"model {pref.id!r}" if pref else "a model")
    pull = pref.id if pref else (candidates[0].id if candidates else None)
    advice = f" Download one first, e.g. {pull!r}." if pull else " No registry entry matches."
    raise ModelNotReady(
        f"No {'loaded' if fallback_mode == 'requirements' else 'installed'} model matches "
        f"{wanted} (fallback_mode {fallback_mode!r}).{advice}",
        details={"tags": tags, "preferred_model": preferred, "fallback_mode": fallback_mode,
                 **(hint("pull", model=pull) if pull else {})})
