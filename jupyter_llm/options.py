"""Generation options: one pydantic model, ``extra="forbid"``, validated at every edge."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidOptions, options_error_from_pydantic

__all__ = ["Options", "parse_option_pairs", "validate_options"]


class Options(BaseModel):
    """Options every backend understands; backends subclass it to add their own."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling probability mass.")
    top_k: int | None = Field(None, ge=0, description="Sample from the k most likely tokens (0: all).")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate.")
    stop: list[str] | None = Field(None, description="Strings that end generation.")
    seed: int | None = Field(None, description="Random seed, for reproducible sampling.")
    repeat_penalty: float | None = Field(None, gt=0.0, le=5.0, description="Penalty for repeated tokens (1: none).")
    json_mode: bool = Field(False, description="Constrain the output to a JSON object.")
    json_schema: dict[str, Any] | None = Field(None, description="Constrain the output to JSON matching this schema.")
    grammar: str | None = Field(None, description="A GBNF grammar constraining the output (local models).")
    trim_history: bool = Field(False, description="Chat: leave out the oldest turns when the conversation does not fit the context.")
    n_ctx: int | None = Field(None, ge=16, description="Context window in tokens (local models; set at load).")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return value

    def set_options(self) -> dict[str, Any]:
        """The options the user set, without defaults."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


def validate_options(options_class: type[Options], values: dict[str, Any]) -> Options:
    """Validate ``values`` as ``options_class``; raise ``InvalidOptions`` naming each bad field."""
    try:
        return options_class.model_validate(values)
    except ValidationError as e:
        err = options_error_from_pydantic(e)
        allowed = list(options_class.model_fields)
        raise InvalidOptions(f"{err.message}. Known options: {', '.join(allowed)}.",
                             details={**err.details, "allowed": allowed}) from None


def parse_option_pairs(pairs: list[str] | None) -> dict[str, Any]:
    """Turn CLI/magic ``key=value`` strings into a dict, parsing JSON values where possible."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidOptions(
                f"Option {pair!r} is not of the form key=value, e.g. -o temperature=0.2.",
                details={"fields": [{"field": pair, "message": "expected key=value"}]})
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out
