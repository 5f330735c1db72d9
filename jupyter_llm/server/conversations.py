"""Saved conversations ``llm/api/conversations…``: each user lists, reads, saves, deletes and
exports (as a notebook in the server's root folder) only their own; the user is the identity
the host resolves (the Jupyter or hub user, or a named token)."""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel, ConfigDict, Field
from tornado import web

from .classroom import ClassroomHandler

__all__ = ["default_handlers", "ConversationBody", "ExportBody"]


class ConversationBody(BaseModel):
    """``POST llm/api/conversations`` and ``PUT llm/api/conversations/{id}``."""

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(
        description="The turns: {role: user|assistant|system, content} and optional fields "
                    "(model, citations, request_id, rating, note).")
    title: str | None = Field(None, description="Shown in the list (default: the first question).")
    model: str | None = Field(None, description="The model the conversation used.")
    collection: str | None = Field(None, description="The collection it was grounded on.")


class ExportBody(BaseModel):
    """``POST llm/api/conversations/{id}/export``."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="A new .ipynb file relative to the server's root "
                                               "(default: a name from the title).")


class _ConversationHandler(ClassroomHandler):
    async def store(self) -> tuple[Any, str]:
        """``(Conversations, user name)`` of this request."""
        _, identity, _ = await self.caller()
        return self.llm.conversations, identity.name


class ConversationsHandler(_ConversationHandler):
    """``GET``/``POST llm/api/conversations``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Your saved conversations, most recent first (without their messages)."""
        store, user = await self.store()
        self.write_json({"conversations": await self.run_blocking(store.list, user)})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Save a new conversation; answers it with its id."""
        store, user = await self.store()
        body = self.parse(ConversationBody)
        saved = await self.run_blocking(store.save, user, body.messages, title=body.title,
                                        model=body.model, collection=body.collection)
        self.write_json(saved, status=201)


class ConversationHandler(_ConversationHandler):
    """``GET``/``PUT``/``DELETE llm/api/conversations/{id}``."""

    @web.authenticated
    @authorized
    async def get(self, conversation_id: str) -> None:
        """One of your conversations with its messages (404 for anyone else's)."""
        store, user = await self.store()
        self.write_json(await self.run_blocking(store.get, user, conversation_id))

    @web.authenticated
    @authorized
    async def put(self, conversation_id: str) -> None:
        """Replace the messages (and title) of one of your conversations."""
        store, user = await self.store()
        body = self.parse(ConversationBody)
        saved = await self.run_blocking(store.save, user, body.messages,
                                        conversation_id=conversation_id, title=body.title,
                                        model=body.model, collection=body.collection)
        self.write_json(saved)

    @web.authenticated
    @authorized
    async def delete(self, conversation_id: str) -> None:
        """Delete one of your conversations."""
        store, user = await self.store()
        self.write_json({"deleted": await self.run_blocking(store.delete, user, conversation_id)})


class ConversationExportHandler(_ConversationHandler):
    """``POST llm/api/conversations/{id}/export``."""

    @web.authenticated
    @authorized
    async def post(self, conversation_id: str) -> None:
        """Write one of your conversations as a notebook in the server's root folder."""
        from ..host.conversations import write_notebook

        store, user = await self.store()
        body = self.parse(ExportBody)
        conversation = await self.run_blocking(store.get, user, conversation_id)
        root = self.llm.root_dir()
        written = await self.run_blocking(write_notebook, conversation, root, body.path)
        self.write_json({"path": os.path.relpath(written, os.path.realpath(root)).replace(
            os.sep, "/")}, status=201)


default_handlers = [
    (r"/llm/api/conversations", ConversationsHandler),
    (r"/llm/api/conversations/([^/]+)", ConversationHandler),
    (r"/llm/api/conversations/([^/]+)/export", ConversationExportHandler),
]
