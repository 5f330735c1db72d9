"""The classroom policy: roles, per-user limits over time windows, model allowlists, history
access, logging opt-out and the tutoring guard, read from ``c.JupyterLLM.policy`` or a policy
file (YAML or JSON) that is reloaded when it changes.

    roles:
      student:
        limits: {requests: 30, tokens: 20000, window: 1h, concurrent: 1}
        models: [smollm2-*, qwen2.5-0.5b*]
        tutoring_guard: true
      instructor: {history: all, export: true, sees_guarded: true}
    default_role: student
    users:
      ada: instructor
      bob: {role: student, limits: {requests: 60}}
    groups: {teachers: instructor}

Without any policy, everyone is ``admin`` (a personal server): no limits, every model, all
history. A malformed file names the line and the problem, and the last good policy stays in force.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InvalidOptions

__all__ = ["Identity", "Limits", "Role", "UserRule", "Policy", "PolicySource", "BUILTIN_ROLES",
           "load_policy", "parse_window"]

log = logging.getLogger("jupyter_llm.policy")

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hour|hours|d|day|days)?\s*$")
_UNIT_S = {"s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hour": 3600,
           "hours": 3600, "d": 86400, "day": 86400, "days": 86400}


def parse_window(value: Any) -> float:
    """Seconds in a window given as a number of seconds or a string such as ``90s``, ``1h``."""
    if isinstance(value, bool):
        raise ValueError("a window is a duration such as 3600, '30m', '1h' or '1d'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _WINDOW.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 3600, '30m', '1h' or '1d'")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a window must be longer than 0 seconds")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Strict):
    """Requests and tokens per time window, and concurrent requests (None: unlimited)."""

    requests: int | None = Field(None, ge=0, description="Requests per window.")
    tokens: int | None = Field(None, ge=0, description="Prompt + completion tokens per window.")
    window: float = Field(3600.0, description="The window: seconds, or '30m', '1h', '1d'.")
    concurrent: int | None = Field(None, ge=1, description="Requests running at once.")

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> float:
        return parse_window(value)

    def merged(self, override: Limits | None) -> Limits:
        """These limits with the fields ``override`` sets replacing them."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_unset=True))


class Role(_Strict):
    """What the members of a role may do."""

    limits: Limits = Field(default_factory=Limits)
    models: list[str] = Field(default_factory=lambda: ["*"],
                              description="Model ids (globs) this role may use.")
    history: Literal["own", "all", "none"] = "own"
    export: bool = Field(False, description="May export the history (CSV, JSONL).")
    manage_tokens: bool = Field(False, description="May issue and revoke API tokens.")
    log_opt_out: bool = Field(True, description="May ask for a request not to be logged.")
    tutoring_guard: bool = Field(False, description="Steer answers away from full solutions.")
    sees_guarded: bool = Field(False, description="Sees full answers, with a note when the guard acted.")

    def may_use(self, model_id: str) -> bool:
        """Whether this role's allowlist admits ``model_id``."""
        return any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.models)


BUILTIN_ROLES: dict[str, Role] = {
    "admin": Role(history="all", export=True, manage_tokens=True, sees_guarded=True),
    "instructor": Role(history="all", export=True, sees_guarded=True),
    "student": Role(),
}


class UserRule(_Strict):
    """One user's role, and limits that replace the role's."""

    role: str
    limits: Limits | None = None


class TutoringSettings(_Strict):
    """How the tutoring guard steers answers."""

    system_prompt: str = Field(
        "You are a tutor. Help the student understand and take the next step themselves. "
        "Explain ideas, ask guiding questions and point to the relevant concept, but never "
        "write a complete solution or a complete program for an exercise.",
        description="Prepended to conversations of guarded roles.")
    max_code_lines: int = Field(6, ge=0, description="Longer code blocks are collapsed for guarded roles.")


class Policy(_Strict):
    """Roles, who has which, and the classroom settings."""

    default_role: str = "admin"
    roles: dict[str, Role] = Field(default_factory=dict)
    users: dict[str, UserRule] = Field(default_factory=dict)
    groups: dict[str, str] = Field(default_factory=dict, description="JupyterHub group -> role.")
    logging_opt_out: bool = Field(True, description="Whether any role may turn logging off.")
    tutoring: TutoringSettings = Field(default_factory=TutoringSettings)

    @field_validator("users", mode="before")
    @classmethod
    def _users(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"role": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _known_roles(self) -> Policy:
        self.roles = {**BUILTIN_ROLES, **self.roles}
        known = sorted(self.roles)
        wanted = [("default_role", self.default_role)]
        wanted += [(f"users.{name}.role", rule.role) for name, rule in self.users.items()]
        wanted += [(f"groups.{group}", role) for group, role in self.groups.items()]
        for where, role in wanted:
            if role not in self.roles:
                raise ValueError(f"{where}: unknown role {role!r}; the roles are {', '.join(known)}")
        return self

    def role_name(self, user: str | None, groups: tuple[str, ...] = (),
                  given: str | None = None) -> str:
        """The role of a user: a token's own role, else the user entry, a group, the default."""
        if given and given in self.roles:
            return given
        if user and user in self.users:
            return self.users[user].role
        for group in groups:
            if group in self.groups:
                return self.groups[group]
        return self.default_role

    def limits_for(self, identity: Identity) -> Limits:
        """The limits that apply to ``identity`` (its role's, with its user overrides)."""
        rule = self.users.get(identity.name or "")
        return self.roles[identity.role].limits.merged(rule.limits if rule else None)


class Identity(BaseModel):
    """Who sends a request: a stable name and a role (resolved against the policy)."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    role: str = ""  # empty: the policy tells (users, groups, default_role)
    groups: tuple[str, ...] = ()

    def describe(self) -> str:
        """A short label for messages: ``ada (student)``."""
        return f"{self.name or 'anonymous'} ({self.role})"


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (a pydantic error location)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == str(key)), None)
            if found is None:
                break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def load_policy(source: str | Path | dict[str, Any]) -> Policy:
    """Parse a policy from a file (YAML or JSON) or a dict; errors name the line and field."""
    if isinstance(source, dict):
        text, where = json.dumps(source), "the policy setting"
    else:
        where = str(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidOptions(f"Cannot read the policy file {where}: {e}.",
                                 details={"path": where}) from None
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InvalidOptions(
            f"{where}, line {line}: not valid YAML or JSON ({getattr(e, 'problem', e)}).",
            details={"path": where, "line": line}) from None
    if not isinstance(data, dict):
        raise InvalidOptions(f"{where}: a policy is a mapping with roles, users, ...",
                             details={"path": where, "line": 1})
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err.get("loc", ()))
        line = _line_of(text, loc) if not isinstance(source, dict) else None
        field = ".".join(str(p) for p in loc) or "(policy)"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        at = f", line {line}" if line else ""
        raise InvalidOptions(f"{where}{at}: {field}: {message}.",
                             details={"path": where, "line": line, "field": field}) from None


class PolicySource:
    """The policy in force: from a dict or a file re-read when it changes (last good kept)."""

    def __init__(self, path: str | Path | None = None, inline: dict[str, Any] | None = None,
                 *, check_every_s: float = 1.0) -> None:
        self.path = Path(path).expanduser() if path else None
        self.check_every_s = check_every_s
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        base = load_policy(inline) if inline else Policy()
        self._inline = inline
        self._policy = base
        if self.path is not None:
            self._policy = load_policy(self.path)  # a bad file at start-up is an error
            self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path) if self.path else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size) if st else None

    @property
    def policy(self) -> Policy:
        """The current policy, re-reading the file when it changed."""
        if self.path is None:
            return self._policy
        now = time.monotonic()
        if now - self._checked < self.check_every_s:
            return self._policy
        with self._lock:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._policy = load_policy(self.path)
                    self.error = None
                    log.info("Reloaded the policy file %s", self.path)
                except InvalidOptions as e:
                    self.error = e.message
                    log.error("%s The last good policy stays in force.", e.message)
        return self._policy
