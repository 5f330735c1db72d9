"""The classroom API: who am I, the history as the policy lets each role see it (students their
own, instructors everyone's, with export), feedback on answers, and named API tokens (admins)."""

from __future__ import annotations

import io
import time
from typing import Any

from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel, ConfigDict, Field
from tornado import web

from ..errors import Forbidden, InvalidRequest, NotFound
from .base import LLMHandler

__all__ = ["default_handlers", "FeedbackBody", "TokenBody"]


class FeedbackBody(BaseModel):
    """``POST llm/api/history/{id}/feedback``."""

    model_config = ConfigDict(extra="forbid")

    rating: int | None = Field(None, description="1 thumbs up, -1 thumbs down, 0 none.")
    score: float | None = Field(None, ge=0, le=10, description="An optional score from 0 to 10.")
    comment: str | None = Field(None, max_length=4000, description="An optional comment.")


class TokenBody(BaseModel):
    """``POST llm/api/tokens``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The user the token identifies (stable across requests).")
    role: str = Field("student", description="A role of the policy.")


class ClassroomHandler(LLMHandler):
    """Resolves the caller's identity and role against the host's policy."""

    async def caller(self) -> tuple[Any, Any, Any]:
        """``(host, identity, role)`` of this request."""
        host = await self.host()
        identity = host.classroom.identify(self.identity())
        return host, identity, host.classroom.policy.policy.roles[identity.role]

    def _number(self, name: str, *, integer: bool = False) -> Any:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            raise InvalidRequest(f"{name} must be a number, not {raw[:40]!r}.",
                                 details={"field": name}) from None
        if integer and not 1 <= value <= 1_000_000:
            raise InvalidRequest(f"{name} must be from 1 to 1000000.", details={"field": name})
        return value

    async def _tokens(self) -> Any:
        """``(host, TokenStore)`` for a caller whose role may manage tokens."""
        host, identity, role = await self.caller()
        if not role.manage_tokens:
            raise Forbidden("Only an admin can manage API tokens.", details={"role": identity.role})
        from ..host.tokens import TokenStore

        return host, TokenStore()

    def filters(self, identity: Any, role: Any) -> dict[str, Any]:
        """The history filters of the query string, narrowed to what ``role`` may see."""
        if role.history == "none":
            raise Forbidden(f"The {identity.role} role has no access to the history.",
                            details={"role": identity.role})
        user = self.get_argument("user", None)
        if role.history == "own":
            if user not in (None, "", identity.name):
                raise Forbidden("You can only see your own history.", details={"user": user})
            user = identity.name
        return {"user": user or None, "model": self.get_argument("model", None) or None,
                "collection": self.get_argument("collection", None) or None,
                "since": self._number("since"), "until": self._number("until")}


class MeHandler(ClassroomHandler):
    """``GET llm/api/me``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The caller's name and role, what the role may do, and the usage of its limits."""
        host, identity, role = await self.caller()
        self.write_json({"name": identity.name, "role": identity.role,
                         "history": role.history, "export": role.export,
                         "manage_tokens": role.manage_tokens,
                         "tutoring_guard": role.tutoring_guard and not role.sees_guarded,
                         "models": role.models, "usage": host.classroom.gate.usage(identity),
                         "policy_error": host.classroom.policy.error if role.manage_tokens else None})


class HistoryHandler(ClassroomHandler):
    """``GET llm/api/history[?limit&model&user&collection&since&until]``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The most recent requests the caller may see, newest first."""
        _, identity, role = await self.caller()
        limit = self._number("limit", integer=True) or 20
        filters = self.filters(identity, role)
        history = await self.run_blocking(lambda: self.llm.history_log)
        self.write_json({"entries": await self.run_blocking(history.entries, limit, **filters)})


class HistoryStatsHandler(ClassroomHandler):
    """``GET llm/api/history/stats[?by=model|user&...]``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Requests, errors, refusals, tokens, speed and feedback per model or per user."""
        _, identity, role = await self.caller()
        filters = self.filters(identity, role)
        filters.pop("model")
        history = await self.run_blocking(lambda: self.llm.history_log)
        by = self.get_argument("by", "model")
        self.write_json(await self.run_blocking(history.stats, by=by, **filters))


class HistoryExportHandler(ClassroomHandler):
    """``GET llm/api/history/export?format=csv|jsonl[&filters]`` (roles with ``export``)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The filtered history as a CSV or JSONL download."""
        _, identity, role = await self.caller()
        if not role.export:
            raise Forbidden(f"The {identity.role} role cannot export the history; ask an "
                            "instructor.", details={"role": identity.role})
        fmt = self.get_argument("format", "jsonl")
        filters = self.filters(identity, role)
        history = await self.run_blocking(lambda: self.llm.history_log)
        out = io.StringIO()
        await self.run_blocking(history.export, out, fmt, **filters)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        content_type = ("text/csv; charset=utf-8" if fmt == "csv"
                        else "application/x-ndjson; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="history-{stamp}.{fmt}"')
        self.finish(out.getvalue(), set_content_type=content_type)  # APIHandler forces JSON


class FeedbackHandler(ClassroomHandler):
    """``POST llm/api/history/{id}/feedback`` (the entry's id, or the ``request_id`` that its
    response carried)."""

    @web.authenticated
    @authorized
    async def post(self, entry_id: str) -> None:
        """Thumbs up or down, a score and a comment on one of the caller's answers."""
        _, identity, role = await self.caller()
        body = self.parse(FeedbackBody)
        history = await self.run_blocking(lambda: self.llm.history_log)
        entry = await self.run_blocking(history.get, entry_id)
        if entry is None or (role.history != "all" and entry.get("user") != identity.name):
            raise NotFound(f"No history entry {entry_id} of yours.", details={"id": entry_id})
        updated = await self.run_blocking(history.feedback, entry["id"], rating=body.rating,
                                          score=body.score, comment=body.comment)
        self.write_json(updated)


class TokensHandler(ClassroomHandler):
    """``GET``/``POST llm/api/tokens`` (roles with ``manage_tokens``)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every token's name, role and creation time (never the token)."""
        _, tokens = await self._tokens()
        self.write_json({"tokens": await self.run_blocking(tokens.list)})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Issue a token; the answer is the only place it is ever shown."""
        host, tokens = await self._tokens()
        body = self.parse(TokenBody)
        roles = host.classroom.policy.policy.roles
        if body.role not in roles:
            raise InvalidRequest(f"Unknown role {body.role!r}; the roles are "
                                 f"{', '.join(sorted(roles))}.",
                                 details={"field": "role"})
        token = await self.run_blocking(tokens.add, body.name, body.role)
        self.write_json({"name": body.name, "role": body.role, "token": token}, status=201)


class TokenHandler(ClassroomHandler):
    """``DELETE llm/api/tokens/{name}``."""

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        """Revoke a token."""
        _, tokens = await self._tokens()
        self.write_json({"revoked": await self.run_blocking(tokens.revoke, name)})


default_handlers = [
    (r"/llm/api/me", MeHandler),
    (r"/llm/api/history", HistoryHandler),
    (r"/llm/api/history/stats", HistoryStatsHandler),
    (r"/llm/api/history/export", HistoryExportHandler),
    (r"/llm/api/history/([0-9a-f]+)/feedback", FeedbackHandler),
    (r"/llm/api/tokens", TokensHandler),
    (r"/llm/api/tokens/([^/]+)", TokenHandler),
]
