"""What the magics remember between cells: the client, the default model, aliases, the
conversation, the last response and the last error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UnknownModel

if TYPE_CHECKING:
    from ..client.base import Client
    from ..models import Message, Response

__all__ = ["Session"]


@dataclass
class Session:
    """The state of ``%llm`` in one IPython shell."""

    client_: Client | None = None
    default_model: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    conversation_model: str | None = None
    last_response: Response | None = None
    last_error: BaseException | None = None
    last_error_cell: str | None = None
    live: bool | None = None
    """Stream into an updated display (True), print chunks (False), or decide (None)."""
    interval: float = 0.1
    """Seconds between two updates of the streamed output (the throttle)."""
    panel: Any = None

    @property
    def client(self) -> Client:
        """The client: ``jupyter_llm.client.connect()`` (remote server or in-process host)."""
        if self.client_ is None:
            from ..client import connect

            return connect()
        return self.client_

    def resolve(self, model: str | None) -> str | None:
        """Apply the session's aliases to a model name (ids and tags: queries pass through)."""
        if model is None:
            return None
        seen: set[str] = set()
        while model in self.aliases and model not in seen:
            seen.add(model)
            model = self.aliases[model]
        return model

    def check_model(self, model: str) -> dict[str, Any] | None:
        """The client's entry for ``model`` (id or registry alias); None for tags: queries.

        Raises ``UnknownModel`` with suggestions for a name the host does not know.
        """
        model = self.resolve(model) or model
        if model.startswith("tags:") or model.endswith(".gguf"):
            return None
        entries = self.client.models()
        for entry in entries:
            if entry.get("id") == model or model in (entry.get("aliases") or []):
                return entry
        known = [e["id"] for e in entries] + [a for e in entries for a in e.get("aliases") or []]
        raise UnknownModel.from_id(model, known)

    def use(self, model: str | None) -> None:
        """Set (or with None, clear) the default model of the magics, the panel and ``fix``."""
        self.default_model = model
        if self.panel is not None:
            self.panel.default_model = model or ""

    def forget_conversation(self) -> None:
        """Start the next ``-c`` cell from a fresh conversation."""
        self.messages = []
        self.conversation_model = None
