"""The one redaction step: secrets never reach an error message, a log line, a history entry
or an API response.

What is redacted (replaced by ``***``):

- the value of every configured key: environment variables named by a registry entry's
  ``api_key_env``, ``OPENAI_API_KEY``, ``HF_TOKEN``, the Jupyter token, and any variable whose
  name ends in ``_KEY``, ``_TOKEN``, ``_SECRET`` or ``_PASSWORD`` (values of 8+ characters),
  plus values registered with :func:`add_secret`, even when a remote API echoes them back;
- ``Authorization`` header values (``Bearer …``, ``token …``, ``Basic …``) and ``api_key=…``;
- credentials in URLs (``http://user:key@host`` becomes ``http://***@host``);
- internal paths of installed code (``/…/vendor/llama.cpp/src/llama.cpp:123`` becomes
  ``llama.cpp:123``), which tell a client nothing it can act on.

:func:`install_log_redaction` makes every log record of the process pass through it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import traceback
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact", "redact_obj", "add_secret", "add_secret_env", "add_url_credentials",
           "strip_userinfo",
           "install_log_redaction", "MASK"]

MASK = "***"
MIN_SECRET = 8

_KEY_ENV = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)
_ALWAYS_ENV = {"OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "JUPYTER_TOKEN",
               "JUPYTER_LLM_TOKEN", "ANTHROPIC_API_KEY"}
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/\s@?#]+)@")
_AUTH = re.compile(r"(?P<kind>\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|token|basic)\s+)?"
                   r"|\b(?:Bearer|Basic)\s+)(?P<value>[^\s\"',;}]{6,})", re.IGNORECASE)
_KEY_PARAM = re.compile(r"(?P<name>\b(?:api[_-]?key|access[_-]?token|token|password|secret)"
                        r"[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"'&,;}]{6,})", re.IGNORECASE)
_LOOKS_LIKE_KEY = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}\b|\bhf_[A-Za-z0-9]{20,}\b")

_INTERNAL_PATH = re.compile(
    r"(?:[A-Za-z]:)?[/\\][^\s'\"()]*?[/\\](?:vendor[/\\]llama\.cpp|llama\.cpp|site-packages|"
    r"dist-packages)[/\\](?P<rest>[^\s'\"():]+)")

_lock = threading.Lock()
_secrets: set[str] = set()
_env_names: set[str] = set()


def add_secret(value: str | None) -> None:
    """Redact this value from now on (a key given in code, a server token)."""
    if value and len(value) >= MIN_SECRET:
        with _lock:
            _secrets.add(value)


def add_url_credentials(url: str | None) -> None:
    """Redact the password of a URL with credentials, and its Basic-auth form."""
    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        add_secret(unquote(parts.password))
        user = unquote(parts.username or "")
        add_secret(base64.b64encode(f"{user}:{unquote(parts.password)}".encode()).decode())


def add_secret_env(name: str | None) -> None:
    """Redact the value of this environment variable (a registry entry's ``api_key_env``)."""
    if name:
        with _lock:
            _env_names.add(name)


def _current_secrets() -> list[str]:
    """Every secret known now, longest first (so a key's prefix never hides the rest)."""
    found = set(_secrets)
    for name, value in os.environ.items():
        if value and len(value) >= MIN_SECRET and (
                name in _env_names or name in _ALWAYS_ENV or _KEY_ENV.search(name)):
            found.add(value)
    return sorted(found, key=len, reverse=True)


def strip_userinfo(url: str | None) -> str | None:
    """The URL without ``user:password@`` (shown as ``***@``)."""
    if not url or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))


def redact(text: Any, *, internal_paths: bool = True) -> Any:
    """The text with every known secret, credential URL and Authorization value masked (and,
    unless ``internal_paths`` is False, paths into installed code cut to the file name)."""
    if not isinstance(text, str) or not text:
        return text
    for secret in _current_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", text)
    text = _AUTH.sub(lambda m: m["kind"] + MASK, text)
    text = _KEY_PARAM.sub(lambda m: m["name"] + MASK, text)
    if internal_paths:
        text = _INTERNAL_PATH.sub(lambda m: m["rest"].replace("\\", "/").rsplit("/", 1)[-1], text)
    return _LOOKS_LIKE_KEY.sub(MASK, text)


def redact_obj(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON-like value with every string redacted."""
    if _depth > 64:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v, _depth + 1) for v in value]
    return value


_installed = False


def install_log_redaction() -> None:
    """Make every log record in this process redacted: its message, arguments and traceback."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to the handler
            return record
        cleaned = redact(message, internal_paths=False)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            trace = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_text = redact(trace, internal_paths=False)
        return record

    logging.setLogRecordFactory(factory)
