"""The classroom policy as the host applies it to every request: who is asking, whether they
may (allowlist and limits), whether the request is logged, and whether the tutoring guard
steers the answer. ``ModelHost`` owns one ``Classroom``; every face goes through the host."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from ..config import Settings
from ..errors import JupyterLLMError, ModelNotAllowed, RateLimited
from .limits import Admission, Gate
from .policy import Identity, PolicySource
from .tutoring import CodeGuard, guard_messages

__all__ = ["Classroom"]

log = logging.getLogger(__name__)


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "local"


class Classroom:
    """Identities, the policy in force, and its gate."""

    def __init__(self, settings: Settings, history: Callable[[], Any]) -> None:
        self.settings = settings
        self.policy = PolicySource(settings.policy_file, inline=settings.policy)
        self.gate = Gate(self.policy)
        self._history = history

    def identify(self, user: str | Identity | None) -> Identity:
        """The ``Identity`` of a caller: given by the server, or a name whose role the policy
        tells (in-process callers are the OS user)."""
        policy = self.policy.policy
        if isinstance(user, Identity):
            return user if user.role in policy.roles else user.model_copy(
                update={"role": policy.role_name(user.name, user.groups)})
        name = user or _os_user()
        return Identity(name=name, role=policy.role_name(name))

    def allowed(self, identity: Identity, model_id: str) -> bool:
        """Whether ``identity``'s role may use ``model_id``."""
        return self.gate.allowed(identity, model_id)

    def admit(self, identity: Identity, model_id: str, face: str) -> Admission:
        """Pass the policy's gate, or record the refusal (for the instructor's stats) and raise."""
        try:
            return self.gate.admit(identity, model_id)
        except (RateLimited, ModelNotAllowed) as e:
            history = self._history() if self.settings.history else None
            if history is not None:
                try:
                    history.record(model=model_id, face=face, user=identity.name,
                                   error=f"refused: {e.message}")
                except JupyterLLMError as failed:
                    log.warning("Could not record a refusal in the history log: %s", failed)
            raise

    def log_fields(self, log: bool, face: str, identity: Identity) -> dict[str, Any] | None:
        """What the history records of a request, or None when it is not logged: a caller may
        opt out only where the policy lets its role."""
        if not self.settings.history:
            return None
        policy = self.policy.policy
        if not log and policy.logging_opt_out and policy.roles[identity.role].log_opt_out:
            return None
        return {"face": face, "user": identity.name, "request_id": uuid.uuid4().hex}

    def guard(self, identity: Identity, messages: list[Any], *,
              requested: bool = False) -> tuple[list[Any], CodeGuard | None]:
        """The conversation as the model sees it, and the tutoring guard for the answer: on
        for a role the policy guards, or where the material asks for it (``requested``: a
        collection or notebook set by the instructor); never for a role that sees guarded
        answers (instructor, admin)."""
        policy = self.policy.policy
        role = policy.roles[identity.role]
        if not (role.tutoring_guard or requested) or role.sees_guarded:
            return messages, None
        return (guard_messages(messages, policy.tutoring.system_prompt),
                CodeGuard(policy.tutoring.max_code_lines))
