"""``{var}`` interpolation of a cell from the user namespace (``{{`` and ``}}`` are literal
braces), with ``In[n]``, ``Out[n]`` and ``{last_error}`` for the last exception."""

from __future__ import annotations

import re
import string
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest

__all__ = ["interpolate", "error_text", "LAST_ERROR"]

LAST_ERROR = "last_error"
"""The name that expands to the last exception (with its short traceback)."""

_INT = re.compile(r"-?\d+")
_IPYTHON_DIR = str(Path(__import__("IPython").__file__).parent)


class _Formatter(string.Formatter):
    """``str.format`` over a namespace, where ``[−1]`` is an int index and names are checked."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        import _string

        first, rest = _string.formatter_field_name_split(field_name)
        if first == "" or isinstance(first, int):
            raise InvalidRequest(
                f"'{{{field_name}}}' in the cell is not a variable name. Write '{{{{' and '}}}}' "
                "for literal braces.", details={"field": field_name})
        if first not in self.namespace:
            raise InvalidRequest(
                f"The cell uses {{{first}}} but {first!r} is not defined. Define it in a cell "
                f"above, or write {{{{{first}}}}} for literal braces.", details={"variable": first})
        obj = self.namespace[first]
        for is_attr, key in rest:
            if not is_attr and isinstance(key, str) and _INT.fullmatch(key):
                key = int(key)
            try:
                obj = getattr(obj, key) if is_attr else obj[key]
            except (AttributeError, KeyError, IndexError, TypeError) as e:
                raise InvalidRequest(
                    f"Cannot expand {{{field_name}}} in the cell: {type(e).__name__}: {e}.",
                    details={"field": field_name}) from None
        return obj, first


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Expand ``{name}``, ``{name.attr}``, ``{In[3]}``, ``{Out[-1]}`` and ``{x:.2f}`` in ``text``."""
    if "{" not in text and "}" not in text:
        return text
    try:
        return _Formatter(namespace).vformat(text, (), {})
    except ValueError as e:  # unbalanced braces, bad format spec
        raise InvalidRequest(
            f"Cannot expand the cell's {{variables}}: {e}. Write '{{{{' and '}}}}' for literal "
            "braces (e.g. in JSON or code).", details={"reason": str(e)}) from None


def error_text(exc: BaseException | None, code: str | None = None, limit: int = 4000) -> str:
    """The last exception as text: the failing cell (when known) and a short traceback
    without IPython's own frames."""
    if exc is None:
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_IPYTHON_DIR)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    tb = "Traceback (most recent call last):\n" + "".join(lines) if frames else "".join(lines)
    tb = tb.strip()
    if len(tb) > limit:
        tb = "...\n" + tb[-limit:]
    if code:
        return f"Code:\n```python\n{code.strip()}\n```\n\nError:\n```\n{tb}\n```"
    return tb
