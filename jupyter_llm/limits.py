"""Size limits, checked at the edge before any work starts: request bodies, prompt
characters and embedding inputs (settings ``max_body_mb``, ``max_prompt_chars``,
``max_embed_inputs``), plus text that cannot be encoded (a lone surrogate)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import InvalidRequest, TooLarge

__all__ = ["check_body_size", "check_texts", "check_json_depth", "MAX_JSON_DEPTH"]

MB = 1 << 20
MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects a request body may have."""


def check_body_size(size: int, settings: Any) -> None:
    """Refuse a body over ``max_body_mb`` with 413 and the numbers."""
    limit = int(settings.max_body_mb * MB)
    if size > limit:
        raise TooLarge(
            f"The request body is {size / MB:.1f} MB; this server accepts at most "
            f"{settings.max_body_mb:g} MB (max_body_mb). Send less text, or ask the operator "
            "to raise JUPYTER_LLM_MAX_BODY_MB.",
            details={"size_bytes": size, "limit_bytes": limit, "setting": "max_body_mb"})


def check_texts(texts: Iterable[str], settings: Any, *, what: str = "prompt",
                embedding: bool = False) -> None:
    """Refuse text that cannot be encoded, more than ``max_prompt_chars`` characters in all,
    or (for embeddings) more than ``max_embed_inputs`` inputs: a fast 400 with the numbers."""
    total = count = 0
    for i, text in enumerate(texts):
        count += 1
        total += len(text)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidRequest(
                f"The {what} holds a character that is not valid Unicode (a lone surrogate at "
                f"position {e.start} of item {i}); send valid UTF-8 text.",
                details={"item": i, "position": e.start}) from None
    if embedding and count > settings.max_embed_inputs:
        raise InvalidRequest(
            f"{count} inputs to embed; this server embeds at most {settings.max_embed_inputs} "
            "per request (max_embed_inputs). Send them in several requests.",
            details={"inputs": count, "limit": settings.max_embed_inputs,
                     "setting": "max_embed_inputs"})
    if total > settings.max_prompt_chars:
        raise InvalidRequest(
            f"The {what} has {total:,} characters; this server accepts at most "
            f"{settings.max_prompt_chars:,} (max_prompt_chars). Shorten it, or split the work.",
            details={"characters": total, "limit": settings.max_prompt_chars,
                     "setting": "max_prompt_chars"})


def check_json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise InvalidRequest(f"The request body is nested more than {limit} levels "
                                     "deep; send a flatter JSON document.",
                                     details={"limit": limit})
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
