"""Per-user limits over sliding time windows: requests, tokens, and requests running at once.

    gate = Gate(source)                       # a PolicySource
    admission = gate.admit(identity, "smollm2")   # raises RateLimited (429) or ModelNotAllowed
    ...                                       # run the request
    admission.finish(tokens=123)              # counts the tokens, frees the concurrency slot
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import ModelNotAllowed, RateLimited
from .policy import Identity, Limits, PolicySource

__all__ = ["Gate", "Admission", "UsageWindow"]

_CONCURRENT_RETRY_S = 5


def _duration(seconds: float) -> str:
    seconds = max(1, round(seconds))
    if seconds < 90:
        return f"{seconds} seconds"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} hours".replace(".0 ", " ")
    return f"{round(seconds / 86400)} days"


def _window_name(seconds: float) -> str:
    names = {60: "minute", 3600: "hour", 86400: "day", 604800: "week"}
    return f"per {names[int(seconds)]}" if int(seconds) in names else f"per {_duration(seconds)}"


@dataclass
class UsageWindow:
    """One user's requests in the current window: (time, tokens) pairs, and those running."""

    events: deque[list[float]] = field(default_factory=deque)
    running: int = 0

    def trim(self, now: float, window: float) -> None:
        """Forget what is older than the window."""
        while self.events and self.events[0][0] <= now - window:
            self.events.popleft()


class Admission:
    """A request that passed the gate; ``finish`` counts its tokens and frees its slot."""

    def __init__(self, gate: Gate, key: str, event: list[float]) -> None:
        self._gate, self._key, self._event = gate, key, event
        self._done = False

    def finish(self, tokens: int = 0) -> None:
        """Count the request's tokens (prompt + completion) and end it (idempotent)."""
        if self._done:
            return
        self._done = True
        self._gate._finish(self._key, self._event, tokens)


class Gate:
    """Admits or refuses requests by the policy: the model allowlist, then the limits."""

    def __init__(self, source: PolicySource, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.clock = clock
        self._lock = threading.Lock()
        self._usage: dict[str, UsageWindow] = {}
        self.refusals: dict[str, int] = {}

    def allowed(self, identity: Identity, model_id: str) -> bool:
        """Whether ``identity``'s role may use ``model_id``."""
        policy = self.source.policy
        role = policy.roles.get(identity.role) or policy.roles[policy.default_role]
        return role.may_use(model_id)

    def check_model(self, identity: Identity, model_id: str) -> None:
        """Raise ``ModelNotAllowed`` when the role's allowlist excludes ``model_id``."""
        if not self.allowed(identity, model_id):
            self._refused(identity)
            role = self.source.policy.roles.get(identity.role)
            allowed = ", ".join(role.models) if role else "none"
            raise ModelNotAllowed(
                f"The model {model_id!r} is not available to the {identity.role} role. "
                f"Models you may use: {allowed}. Ask your instructor if you need another one.",
                details={"model": model_id, "role": identity.role})

    def admit(self, identity: Identity, model_id: str | None = None) -> Admission:
        """Admit one request of ``identity`` (for ``model_id``) or raise with a clear reason."""
        if model_id is not None:
            self.check_model(identity, model_id)
        limits = self.source.policy.limits_for(identity)
        key = identity.name or "anonymous"
        now = self.clock()
        with self._lock:
            usage = self._usage.setdefault(key, UsageWindow())
            usage.trim(now, limits.window)
            refusal = self._over(usage, limits, now)
            if refusal is None:
                event = [now, 0.0]
                usage.events.append(event)
                usage.running += 1
                return Admission(self, key, event)
        self._refused(identity)
        message, retry_after, details = refusal
        raise RateLimited(message, retry_after=retry_after, details=details)

    def _over(self, usage: UsageWindow, limits: Limits,
              now: float) -> tuple[str, int, dict[str, object]] | None:
        if limits.concurrent is not None and usage.running >= limits.concurrent:
            return (f"You already have {usage.running} request(s) running; the limit is "
                    f"{limits.concurrent} at a time. Wait for the answer, then ask again.",
                    _CONCURRENT_RETRY_S,
                    {"action": "retry", "retry_after": _CONCURRENT_RETRY_S, "limit": "concurrent",
                     "max": limits.concurrent, "used": usage.running})
        per = _window_name(limits.window)
        for kind, limit in (("requests", limits.requests), ("tokens", limits.tokens)):
            if limit == 0:  # a role (or user) the policy keeps off the models
                wait = max(1, int(limits.window))
                return (f"Your limit is 0 {kind} {per}, so you cannot use the models here; "
                        "ask your instructor to change the policy.", wait,
                        {"retry_after": wait, "limit": kind, "max": 0, "used": 0})
        if limits.requests is not None and len(usage.events) >= limits.requests:
            oldest_needed = usage.events[len(usage.events) - limits.requests][0]
            reset = oldest_needed + limits.window
            return self._refusal("requests", f"{limits.requests} requests {per}",
                                 limits.requests, len(usage.events), reset, now)
        used_tokens = int(sum(e[1] for e in usage.events))
        if limits.tokens is not None and used_tokens >= limits.tokens:
            # the limit frees up as the oldest requests leave the window
            reset, freed = now + limits.window, 0.0
            for when, tokens in usage.events:
                freed += tokens
                if used_tokens - freed < limits.tokens:
                    reset = when + limits.window
                    break
            return self._refusal("tokens", f"{limits.tokens} tokens {per}",
                                 limits.tokens, used_tokens, reset, now)
        return None

    @staticmethod
    def _refusal(kind: str, what: str, maximum: int, used: int, reset: float,
                 now: float) -> tuple[str, int, dict[str, object]]:
        wait = max(1, int(reset - now + 0.999))
        at = datetime.fromtimestamp(reset, timezone.utc).strftime("%H:%M UTC")
        message = (f"You have reached your limit of {what} ({used} used). "
                   f"It resets at {at}, in {_duration(wait)}.")
        return message, wait, {"action": "retry", "retry_after": wait, "limit": kind,
                               "max": maximum, "used": used,
                               "resets_at": datetime.fromtimestamp(reset, timezone.utc).isoformat()}

    def _refused(self, identity: Identity) -> None:
        with self._lock:
            key = identity.name or "anonymous"
            self.refusals[key] = self.refusals.get(key, 0) + 1

    def _finish(self, key: str, event: list[float], tokens: int) -> None:
        with self._lock:
            event[1] = float(tokens or 0)
            usage = self._usage.get(key)
            if usage is not None and usage.running > 0:
                usage.running -= 1

    def usage(self, identity: Identity) -> dict[str, object]:
        """What ``identity`` used in the current window, and its limits (for ``me`` views)."""
        limits = self.source.policy.limits_for(identity)
        now = self.clock()
        with self._lock:
            usage = self._usage.get(identity.name or "anonymous", UsageWindow())
            usage.trim(now, limits.window)
            return {"requests": len(usage.events), "tokens": int(sum(e[1] for e in usage.events)),
                    "running": usage.running, "limits": limits.model_dump()}
