"""One prompt of the library: variables with defaults, a system message, a ``{{var}}``
template, target models or tags, and default options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import InvalidRequest

__all__ = ["PromptTemplate", "PromptVariable", "INPUT", "placeholders"]

INPUT = "input"
"""The variable that receives the cell's text (or the prompt given to ``render``)."""

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(text: str | None) -> list[str]:
    """The ``{{name}}`` placeholders of ``text``, in order of first use."""
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text or ""):
        if name not in seen:
            seen.append(name)
    return seen


class PromptVariable(BaseModel):
    """A template variable: its default (None: required) and what it means."""

    model_config = ConfigDict(extra="forbid")

    default: str | None = None
    description: str = ""

    @field_validator("default", mode="before")
    @classmethod
    def _scalar_as_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float, bool)):
            return str(value)
        return value


class PromptTemplate(BaseModel):
    """A prompt from a YAML file of the library."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="What `-t NAME` and `%llm templates` call it.")
    description: str = ""
    variables: dict[str, PromptVariable] = Field(default_factory=dict)
    system: str | None = None
    template: str = "{{input}}"
    models: list[str] = Field(default_factory=list, description="Preferred model ids, best first.")
    tags: list[str] = Field(default_factory=list, description="Capability tags of suitable models.")
    options: dict[str, Any] = Field(default_factory=dict, description="Default generation options.")
    origin: str = Field("builtin", description="builtin, user or notebook (set by the loader).")
    source: str | None = Field(None, description="The file it came from (set by the loader).")

    @field_validator("variables", mode="before")
    @classmethod
    def _shorthand_defaults(cls, value: Any) -> Any:
        """Accept ``level: beginner`` as shorthand for ``level: {default: beginner}``."""
        if not isinstance(value, Mapping):
            return value
        return {k: v if isinstance(v, Mapping) else {"default": v} for k, v in value.items()}

    @field_validator("tags")
    @classmethod
    def _upper_tags(cls, tags: list[str]) -> list[str]:
        return [t.strip().upper() for t in tags if t.strip()]

    @model_validator(mode="after")
    def _placeholders_are_declared(self) -> PromptTemplate:
        for field in ("system", "template"):
            for name in placeholders(getattr(self, field)):
                if name != INPUT and name not in self.variables:
                    raise ValueError(
                        f"{field} uses {{{{{name}}}}} but variables does not declare {name!r}")
        return self

    def required(self) -> list[str]:
        """Variables without a default (besides ``input``)."""
        return [k for k, v in self.variables.items() if v.default is None and k != INPUT]

    def render(self, text: str = "", values: Mapping[str, Any] | None = None) -> tuple[str | None, str]:
        """Fill the placeholders; return ``(system, user_message)``.

        ``text`` fills ``{{input}}``; ``values`` fill the other variables over their defaults.
        A required variable with no value raises ``InvalidRequest`` naming it.
        """
        filled: dict[str, str] = {k: v.default for k, v in self.variables.items()
                                  if v.default is not None}
        filled.update({k: str(v) for k, v in (values or {}).items() if v is not None})
        filled[INPUT] = text
        missing = [k for k in self.required() if k not in filled]
        if missing:
            names = ", ".join(missing)
            example = missing[0]
            raise InvalidRequest(
                f"Prompt {self.name!r} needs {names}: define `{example} = ...` in the notebook "
                f"or pass `--var {example}=...`.",
                details={"prompt": self.name, "missing": missing})

        def fill(source: str | None) -> str | None:
            if source is None:
                return None
            return _PLACEHOLDER.sub(lambda m: filled.get(m.group(1), m.group(0)), source).strip()

        user = fill(self.template) or ""
        if INPUT not in placeholders(self.template) and text.strip():
            user = f"{user}\n\n{text}" if user.strip() else text
        return fill(self.system), user

    def summary(self) -> dict[str, Any]:
        """Name, description, variables with defaults, origin and source file."""
        return {"name": self.name, "description": self.description,
                "variables": {k: v.default for k, v in self.variables.items()},
                "models": self.models, "tags": self.tags, "options": self.options,
                "origin": self.origin, "source": self.source}
