"""Who is asking: the identity of a request, stable across requests.

- Inside a Jupyter server, the user is the server's authenticated identity (behind JupyterHub,
  the hub user); a token-authenticated request without a login cookie is the server's owner,
  not a new random "Anonymous" user each time.
- ``jupyter llm serve`` uses ``LLMIdentityProvider``: the server token is the admin, named
  tokens (``jupyter llm tokens add NAME --role ROLE``) are their user with their role, and as
  a JupyterHub service (``JUPYTERHUB_API_URL`` set) a hub user's API token is that hub user.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User

from ..host.policy import Identity

__all__ = ["LLMIdentityProvider", "LLMUser", "identity_of"]

_ANONYMOUS = re.compile(r"^[0-9a-f]{32}$")
_HUB_CACHE_S = 60.0


@dataclass
class LLMUser(User):
    """A jupyter_server user with the role a named token gave it, and its hub groups."""

    role: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    named_token: bool = False  # identified by a named token (its cookie ends when it is revoked)


def owner_name() -> str:
    """The name of the server's owner: the OS user."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "owner"


def identity_of(user: Any) -> Identity:
    """The ``Identity`` of a jupyter_server ``current_user`` (role left for the policy to tell
    unless a named token set it)."""
    if isinstance(user, LLMUser):
        return Identity(name=user.username, role=user.role, groups=user.groups)
    name = getattr(user, "username", None) or (user if isinstance(user, str) else None)
    groups: tuple[str, ...] = ()
    hub_user = getattr(user, "hub_user", None)  # JupyterHub's single-user server
    if isinstance(hub_user, dict):
        name = hub_user.get("name") or name
        groups = tuple(hub_user.get("groups") or ())
    elif name and _ANONYMOUS.match(name) and str(getattr(user, "name", "")).startswith("Anonymous"):
        name = owner_name()  # the token of a personal server: its owner
    return Identity(name=name, role="", groups=groups)


class LLMIdentityProvider(IdentityProvider):
    """Token identities for ``jupyter llm serve``: the server token, named tokens, hub tokens."""

    _hub_cache: dict[str, tuple[float, LLMUser | None]]

    def generate_anonymous_user(self, handler: Any) -> User:
        """The server token identifies the server's admin (stable, not a random name)."""
        return LLMUser(username=owner_name(), role="admin")

    async def get_user_token(self, handler: Any) -> User | None:
        """The admin for the server token, the user of a named token or of a hub token."""
        token = self.get_token(handler)
        if not token:
            return None
        if self.token and secrets.compare_digest(token, self.token):
            return LLMUser(username=owner_name(), role="admin")
        from ..host.tokens import TokenStore

        named = TokenStore().identify(token)
        if named is not None:
            return LLMUser(username=named[0], role=named[1], named_token=True)
        return await self._hub_user(token)

    def user_to_cookie(self, user: User) -> str:
        """Keep a token's role in the (signed) login cookie."""
        return json.dumps(dataclasses.asdict(user))

    def user_from_cookie(self, cookie_value: str) -> User | None:
        """The user (with its role) of a login cookie."""
        data = json.loads(cookie_value)
        fields = {f.name for f in dataclasses.fields(LLMUser)}
        data = {k: tuple(v) if k == "groups" else v for k, v in data.items() if k in fields}
        user = LLMUser(**data)
        if user.named_token:
            from ..host.tokens import TokenStore

            if TokenStore().role_of(user.username) != user.role:
                return None  # the token was revoked (or re-issued with another role)
        return user

    async def _hub_user(self, token: str) -> LLMUser | None:
        api = os.environ.get("JUPYTERHUB_API_URL")
        if not api:
            return None
        if not hasattr(self, "_hub_cache"):
            self._hub_cache = {}
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        cached = self._hub_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        user = await asyncio.get_running_loop().run_in_executor(None, _ask_hub, api, token)
        self._hub_cache[key] = (time.monotonic() + _HUB_CACHE_S, user)
        return user


def _ask_hub(api: str, token: str) -> LLMUser | None:
    """Ask JupyterHub whose token this is (any token may identify its own user)."""
    import httpx

    try:
        reply = httpx.get(api.rstrip("/") + "/user", timeout=10,
                          headers={"Authorization": f"token {token}"})
    except httpx.HTTPError:
        return None
    if reply.status_code != 200:
        return None
    model = reply.json()
    name = model.get("name")
    if not name or model.get("kind", "user") != "user":
        return None
    return LLMUser(username=name, role="admin" if model.get("admin") else "",
                   groups=tuple(model.get("groups") or ()))
